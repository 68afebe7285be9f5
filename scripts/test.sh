#!/usr/bin/env bash
# Runs every test on a fresh machine: installs what the tests need (the wasm target, the default
# model and chat templates), then formatting, the workspace tests and the wasm32 build of the core.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/fetch-models.sh
rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

cargo fmt --all --check
# aether-core must stay pure enough for the browser.
cargo check -p aether-core -p aether-web --target wasm32-unknown-unknown
cargo test --workspace
