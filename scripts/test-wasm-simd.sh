#!/usr/bin/env bash
# The CPU matmul's kernel tests (core/src/quant/simd/tests.rs: every kernel set against the scalar
# reference, bit for bit) built for wasm32-wasip1 with simd128, so the `simd128` set the browser
# package runs is checked too; run under Node's WASI (scripts/wasi-run.mjs). Extra arguments go
# to the test harness (default filter: quant::simd). Installs the wasm32-wasip1 target.
#
#   bash scripts/test-wasm-simd.sh              # the simd tests
#   bash scripts/test-wasm-simd.sh quant::      # every quant test
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
command -v node >/dev/null || { echo "test-wasm-simd: needs node (>= 18, for node:wasi)" >&2; exit 1; }
export CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings $PWD/scripts/wasi-run.mjs"
export CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="${CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS:--C target-feature=+simd128}"
[ $# -gt 0 ] || set -- quant::simd
cargo test -p aether-core --target wasm32-wasip1 --lib -- "$@"
