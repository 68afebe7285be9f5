#!/usr/bin/env bash
# The browser tests in one command: installs Debian's chromium and playwright-core (pinned in
# package-lock.json, into tests/browser/node_modules), builds the npm package (scripts/
# build-web.sh), packs it, computes the text `aether run --cpu` generates greedily for the prompt
# the tests use, and runs test.mjs against a local server. Needs root or sudo for apt on a fresh
# machine; CHROMIUM=/path overrides the browser.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=tests/browser

sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
need=()
[ -n "${CHROMIUM:-}" ] || command -v chromium >/dev/null || need+=(chromium)
command -v node >/dev/null || need+=(nodejs npm)
if [ ${#need[@]} -gt 0 ]; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
if [ ! -f $here/node_modules/playwright-core/package.json ] ||
  ! grep -q "\"version\": \"$(node -p 'require("./'$here'/package.json").dependencies["playwright-core"]')\"" \
    $here/node_modules/playwright-core/package.json; then
  (cd $here && npm ci --no-audit --no-fund)
fi

bash scripts/fetch-models.sh
t0=$(date +%s)
bash scripts/build-web.sh
t1=$(date +%s)

# The package as a user installs it: `npm pack`, unpacked where tarball.html imports it from.
rm -rf $here/.tarball && mkdir -p $here/.tarball/node_modules/aether-llm
tarball=$(cd web/pkg && npm pack --silent --pack-destination "$PWD/../../$here/.tarball")
tar -xzf "$here/.tarball/$tarball" -C $here/.tarball/node_modules/aether-llm --strip-components=1

# What the browser must reproduce: the CPU reference's greedy text (--cpu: the same on every
# machine, whatever GPU `aether run` would otherwise pick; the browser's WebGPU engine computes it
# bit for bit under exact numerics). The dev profile (built by `cargo test` already) computes the
# same floats as --release: no fast-math, and the same kernels are chosen at run time.
expected=$(mktemp)
trap 'rm -f "$expected"' EXIT
cargo run -q -p aether -- run --cpu -p "The capital of France is" -n 32 --temp 0 >"$expected" 2>/dev/null
t2=$(date +%s)

AETHER_EXPECTED_FILE="$expected" node $here/test.mjs
t3=$(date +%s)
echo "browser tests: package build $((t1 - t0)) s, reference $((t2 - t1)) s, tests $((t3 - t2)) s" >&2
