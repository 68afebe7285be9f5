#!/usr/bin/env bash
# Runs every test on a fresh machine: installs what the tests need (the wasm target, the default
# model and chat templates, Mesa's lavapipe Vulkan driver for the GPU kernel tests), then
# formatting, the workspace tests and the wasm32 build of the core.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/fetch-models.sh
rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
# The GPU tests run on lavapipe (a CPU Vulkan driver) when there is no GPU, and fail without any
# adapter unless AETHER_NO_GPU=1 (tests/src/gpu.rs). CI is Debian, as root.
if [ "${AETHER_NO_GPU:-0}" != 1 ] && ! ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends mesa-vulkan-drivers libvulkan1
fi

cargo fmt --all --check
# aether-core must stay pure enough for the browser.
cargo check -p aether-core -p aether-web --target wasm32-unknown-unknown
cargo check -p aether-core --features gpu --target wasm32-unknown-unknown
cargo test --workspace
