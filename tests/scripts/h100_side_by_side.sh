#!/usr/bin/env bash
# The performance issue's side by side: llama.cpp's CUDA backend and aether on the same synthetic
# models (written by `aether synth` on the device), same machine, one run, both engines' figures
# and their ratio as the `## H100 side by side` table of docs/PERF.md.
#
#   bash tests/scripts/h100_side_by_side.sh prepare   # here: fills .device/ (git-ignored)
#   bash .device/side_by_side.sh                      # on the device, .device carried
#   RUNS=2 bash .device/side_by_side.sh               # the table twice, each from its own runs
#
# `prepare` builds aether (release), downloads the pinned llama-cpp-python sdist (the same pin as
# the goldens' scripts) and keeps only the llama.cpp sources the two peer tools need — ggml with
# its CPU and CUDA backends, libllama, common, llama-bench, llama-batched-bench — as a tarball:
# a benchmark peer, never part of the project. On the device the peer is built with CUDA for the
# H100 (sm_90) into /tmp (kept while the machine stays warm, so a second call reuses it) and both
# engines run:
#   llama.cpp: llama-bench -ngl 99 -fa 1 -p 512 -n 128 -r 3;
#              llama-batched-bench -ngl 99 -fa on -npp 128 -ntg 128 -npl 64
#   aether:    aether bench -p 512 -n 128 -r 3; aether bench --concurrent 64 (aggregate decode)
set -euo pipefail
LCP_PKG="llama-cpp-python==0.3.36"

if [ "${1:-}" = prepare ]; then
  cd "$(dirname "$0")/../.."
  mkdir -p .device
  grep -qx '.device/' .git/info/exclude 2>/dev/null || echo '.device/' >> .git/info/exclude
  cargo build --release -p aether
  cp target/release/aether .device/aether && strip .device/aether
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip install -q cmake scikit-build-core 2>&1 | grep -v "^WARNING: Running pip as" >&2 || true
  python3 -m pip download -q --no-deps --no-binary llama-cpp-python --no-build-isolation "$LCP_PKG" -d "$tmp/sdist"
  tar -xzf "$tmp"/sdist/llama_cpp_python-*.tar.gz -C "$tmp"
  src=$(echo "$tmp"/llama_cpp_python-*/vendor/llama.cpp)
  peer="$tmp/peer"
  mkdir -p "$peer/ggml/src" "$peer/tools"
  cp -r "$src"/{CMakeLists.txt,cmake,include,src,common,vendor,licenses} "$peer/"
  cp -r "$src"/ggml/{CMakeLists.txt,cmake,include,.gitignore} "$peer/ggml/" 2>/dev/null || true
  cp "$src"/ggml/src/*.{c,cpp,h,in,txt} "$peer/ggml/src/" 2>/dev/null || true
  cp -r "$src"/ggml/src/{ggml-cpu,ggml-cuda} "$peer/ggml/src/"
  cp -r "$src"/tools/{llama-bench,batched-bench} "$peer/tools/"
  # Only the two tools: the sources' tools/CMakeLists.txt names every tool.
  printf 'add_subdirectory(llama-bench)\nadd_subdirectory(batched-bench)\n' > "$peer/tools/CMakeLists.txt"
  tar -cJf .device/llama-peer.tar.xz -C "$tmp" peer
  cp "$0" .device/side_by_side.sh
  du -sh .device
  exit 0
fi

# ---- on the device, from the checkout's root
for f in .device/gl/*.deb; do dpkg -x "$f" / >/dev/null 2>&1; done
ldconfig
export VK_DRIVER_FILES=/usr/share/vulkan/icd.d/nvidia_icd.json
export PATH="$PATH:/usr/local/cuda/bin"
A="$PWD/.device/aether"
P=/tmp/peer/build/bin
echo "# $(date -u +%F) $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader); $(nvcc --version | tail -n 2 | head -n 1)"
if [ ! -x "$P/llama-batched-bench" ]; then
  rm -rf /tmp/peer && tar -xJf .device/llama-peer.tar.xz -C /tmp
  cmake -S /tmp/peer -B /tmp/peer/build -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_TOOLS=ON >/tmp/peer-cmake.log 2>&1 \
    || { tail -30 /tmp/peer-cmake.log; exit 1; }
  cmake --build /tmp/peer/build -j "$(nproc)" --target llama-bench llama-batched-bench >/tmp/peer-build.log 2>&1 \
    || { tail -30 /tmp/peer-build.log; exit 1; }
fi
mkdir -p /tmp/m
[ -f /tmp/m/8b.gguf ] || "$A" synth --shape llama3-8b --quant q4_k /tmp/m/8b.gguf >/dev/null
[ -f /tmp/m/1b.gguf ] || "$A" synth --shape llama3-1b --quant q4_k /tmp/m/1b.gguf >/dev/null
[ -f /tmp/m/8b-q8.gguf ] || "$A" synth --shape llama3-8b --quant q8_0 /tmp/m/8b-q8.gguf >/dev/null

# tok/s of llama-bench's csv row with n_prompt=$2, n_gen=$3.
peer_ts() {
  awk -F, -v p="$2" -v g="$3" 'NR == 1 { for (i = 1; i <= NF; i++) { gsub(/"/, "", $i); c[$i] = i }; next }
    { gsub(/"/, ""); if ($c["n_prompt"] == p && $c["n_gen"] == g) printf "%.0f", $c["avg_ts"] }' "$1"
}
# tok/s of aether bench's markdown row named $2.
ours_ts() {
  awk -F'|' -v t="$2" '{ gsub(/ /, "", $2) } $2 == t { gsub(/ /, "", $3); printf "%.0f", $3 }' "$1"
}
row() { # workload, peer, ours
  awk -v w="$1" -v a="$2" -v b="$3" 'BEGIN { r = (a > 0 && b > 0) ? sprintf("%.2f", b / a) : "—";
    printf "| %s | %s | %s | %s |\n", w, (a == "" ? "—" : a), (b == "" ? "—" : b), r }'
}

measure() {
  for m in 8b 1b 8b-q8; do
    "$P/llama-bench" -m /tmp/m/$m.gguf -ngl 99 -fa 1 -p 512 -n 128 -r 3 -o csv >/tmp/peer-$m.csv 2>/dev/null
    "$A" bench -m /tmp/m/$m.gguf -p 512 -n 128 -r 3 >/tmp/ours-$m.md 2>/dev/null
  done
  "$P/llama-batched-bench" -m /tmp/m/8b.gguf -ngl 99 -fa on -npp 128 -ntg 128 -npl 64 >/tmp/peer-batched.txt 2>/dev/null
  peer_batched=$(awk -F'|' '{ gsub(/ /, "") } $4 == "64" { printf "%.0f", $9 }' /tmp/peer-batched.txt)
  ours_batched=""
  if "$A" bench --help 2>/dev/null | grep -q -- --concurrent; then
    "$A" bench -m /tmp/m/8b.gguf --concurrent 64 -p 128 -n 128 -r 1 >/tmp/ours-batched.md 2>/dev/null || true
    ours_batched=$(awk -F'|' '{ gsub(/ /, "", $2) } index($2, "(aggregate)") { gsub(/ /, "", $3); printf "%.0f", $3 }' /tmp/ours-batched.md)
  fi

  echo
  echo "| workload | llama.cpp CUDA tok/s | aether tok/s | ratio |"
  echo "|---|---|---|---|"
  row "decode tg128, llama3-8b shape, Q4_K (Q6_K output)" "$(peer_ts /tmp/peer-8b.csv 0 128)" "$(ours_ts /tmp/ours-8b.md tg128)"
  row "decode tg128, llama3-1b shape, Q4_K" "$(peer_ts /tmp/peer-1b.csv 0 128)" "$(ours_ts /tmp/ours-1b.md tg128)"
  row "decode tg128, llama3-8b shape, Q8_0" "$(peer_ts /tmp/peer-8b-q8.csv 0 128)" "$(ours_ts /tmp/ours-8b-q8.md tg128)"
  row "prefill pp512, llama3-8b shape, Q4_K" "$(peer_ts /tmp/peer-8b.csv 512 0)" "$(ours_ts /tmp/ours-8b.md pp512)"
  row "aggregate decode, 64 concurrent sequences, 8b Q4_K" "$peer_batched" "$ours_batched"
}

for run in $(seq "${RUNS:-1}"); do
  [ "${RUNS:-1}" = 1 ] || echo "## run $run"
  measure
done
