#!/usr/bin/env bash
# Runs every test on a fresh machine: installs what the tests need (the wasm target, the default
# model and chat templates, Mesa's lavapipe Vulkan driver for the GPU kernel tests), then
# formatting, the workspace tests, the wasm32 build of the core, the server's acceptance tests
# (tests/server/run.sh), the browser tests (the npm package in headless chromium;
# tests/browser/run.sh installs chromium and playwright-core) and the CPU kernels' wasm32 simd128
# tests (scripts/test-wasm-simd.sh, under Node's WASI).
set -euo pipefail
cd "$(dirname "$0")/.."

# Each stage says how long it took, so a slow CI run shows where its time went.
stage() {
  local t0=$SECONDS
  "$@"
  echo "test.sh: '$*' took $((SECONDS - t0)) s" >&2
}

stage bash scripts/fetch-models.sh
rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
# The GPU tests run on lavapipe (a CPU Vulkan driver) when there is no GPU, and fail without any
# adapter unless AETHER_NO_GPU=1 (tests/src/gpu.rs). CI is Debian, as root.
if [ "${AETHER_NO_GPU:-0}" != 1 ] && ! ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends mesa-vulkan-drivers libvulkan1
fi

stage cargo fmt --all --check
# aether-core must stay pure enough for the browser.
cargo check -p aether-core -p aether-web --target wasm32-unknown-unknown
cargo check -p aether-core --features gpu --target wasm32-unknown-unknown
stage cargo test --workspace
# The server's acceptance tests: real `aether serve` processes driven by the openai clients
# (Python and npm), schemathesis, a bad-input table, disconnects, load and shutdown (about 5
# minutes; tests/server/run.sh installs python3-venv, node and the pinned packages), on the
# binary `cargo test` just built (`cargo build` would rebuild it without the dev-dependencies'
# features). AETHER_NO_SERVER_TESTS=1 skips them.
if [ "${AETHER_NO_SERVER_TESTS:-0}" != 1 ]; then
  AETHER_BIN="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/debug/aether" stage bash tests/server/run.sh
fi
# AETHER_NO_BROWSER=1 declares a machine without chromium (or apt) and skips the browser tests.
if [ "${AETHER_NO_BROWSER:-0}" != 1 ]; then
  stage bash tests/browser/run.sh
fi
# The CPU matmul's simd128 kernels (the set the browser package runs) against the scalar reference,
# bit for bit: the simd tests built for wasm32-wasip1 and run under Node's WASI (node comes with
# the browser tests; scripts/test-wasm-simd.sh adds the target).
if command -v node >/dev/null; then
  stage bash scripts/test-wasm-simd.sh
else
  echo "test.sh: no node, so the wasm32 simd128 kernel tests were skipped" >&2
fi
