#!/usr/bin/env bash
# Exact numerics on this machine's GPU: for synthetic models of the types exact numerics take,
# checks that --exact gives the CPU's logits bit for bit (tests/examples/exact_vs_cpu.rs) and
# measures its decode beside the default kernels' (aether bench tg64, median of 3). Figures in
# docs/PERF.md's "Exact numerics".
#
#     cargo build --release -p aether -p aether-tests --example exact_vs_cpu
#     bash tests/scripts/exact_on_gpu.sh [AETHER] [EXACT_VS_CPU]
#
# On a machine the binaries travel to, pass their paths (the device's Vulkan set up first).
set -u
A=${1:-target/release/aether}
X=${2:-target/release/examples/exact_vs_cpu}
for spec in "smollm2-135m q4_1 q8_0 32" "llama3-1b q8_0 q8_0 32" "llama3-1b q4_0 q4_0 24" "llama3-8b q4_1 q8_0 12"; do
  set -- $spec
  m=${TMPDIR:-/tmp}/exact_$1_$2.gguf
  "$A" synth "$m" --shape "$1" --quant "$2" --output-quant "$3" >/dev/null 2>&1 || { echo "synth $spec failed"; continue; }
  echo "== $spec"
  timeout 240 "$X" "$m" "$4" 2>&1 | grep -v "^adapter" | tail -3
  "$A" bench -m "$m" -p 0 -n 64 -r 3 --exact 2>&1 | grep -E "^\| tg" | head -1
  "$A" bench -m "$m" -p 0 -n 64 -r 3 2>&1 | grep -E "^\| tg" | head -1
  rm -f "$m"
done
