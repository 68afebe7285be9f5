#!/usr/bin/env bash
# Builds the npm package `aether-llm` into web/pkg/ (git-ignored): the web/ crate in release for
# wasm32, wasm-bindgen's JS glue (--target web) under wasm/, and the hand-written JS, types and
# README from web/js/. Installs what it needs: the wasm32 target, and wasm-bindgen-cli at exactly
# the wasm-bindgen version in Cargo.lock (the CLI refuses a module built by another version).
#
#   bash scripts/build-web.sh            # then: cd web/pkg && npm pack
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
[ -n "$want" ] || { echo "build-web: no wasm-bindgen in Cargo.lock" >&2; exit 1; }
have=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)
if [ "$have" != "$want" ]; then
  echo "build-web: installing wasm-bindgen-cli $want (found ${have:-none})" >&2
  # --locked first; a registry mirror missing one of the CLI's locked dependencies gets an
  # unlocked resolve (the CLI's own version stays pinned either way).
  cargo install --locked wasm-bindgen-cli --version "=$want" ||
    cargo install wasm-bindgen-cli --version "=$want"
fi

# simd128 (every current browser has it) lets LLVM vectorize the scalar kernels; float results do
# not change (no reassociation without fast-math).
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="${CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS:--C target-feature=+simd128}"
t0=$(date +%s)
cargo build --release -p aether-web --target wasm32-unknown-unknown
t1=$(date +%s)
echo "build-web: wasm release build took $((t1 - t0)) s" >&2

out=web/pkg
rm -rf "$out"
mkdir -p "$out/wasm"
wasm-bindgen --target web --out-dir "$out/wasm" --out-name aether_web \
  target/wasm32-unknown-unknown/release/aether_web.wasm
rm -f "$out/wasm/.gitignore" "$out/wasm/package.json"
cp web/js/index.js web/js/index.d.ts web/js/errors.js web/js/download.js web/js/worker.js \
  web/js/remote.js web/js/stream.js \
  web/js/README.md "$out/"
version=$(awk -F'"' '/^\[workspace.package\]/ { p = 1 } p && /^version/ { print $2; exit }' Cargo.toml)
sed "s/\"version\": \"0.0.0\"/\"version\": \"$version\"/" web/js/package.json > "$out/package.json"
echo "build-web: $out ($(du -sh "$out/wasm/aether_web_bg.wasm" | cut -f1) wasm), aether-llm@$version" >&2

# The demo site: www/ with the package beside it, in www/dist/ (git-ignored).
rm -rf www/dist && mkdir -p www/dist
cp www/index.html www/app.js www/style.css www/dist/ && cp -r "$out" www/dist/pkg
