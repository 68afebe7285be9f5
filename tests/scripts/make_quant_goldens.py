#!/usr/bin/env python3
# Makes the quant-format goldens in tests/goldens/quant/, checked by tests/tests/quant_goldens.rs.
#
# What it writes (all little-endian; type names as aether/llama.cpp print them, e.g. q4_K, bf16):
#   dequant/<type>.blocks   random blocks of <type>: random bytes, with every f16 scale field forced
#                           to a finite value (moderate magnitudes, plus a zero, a negative and a
#                           subnormal one) so nothing decodes to NaN/inf; for f32/f16/bf16 random
#                           finite bit patterns (subnormals and -0 included)
#   dequant/<type>.f32      gguf-py's dequantization of those blocks, as f32
#   model_rows.tsv          rows of real tensors of the default model, one per line:
#                           tensor <TAB> type <TAB> row <TAB> n_elements <TAB> offset
#                           (offset: in f32 elements, into model_rows.f32); the Rust test reads the
#                           row's bytes from the model file itself
#   model_rows.f32          gguf-py's dequantization of those rows
#   quantize/<type>.in.f32  f32 input (gaussian blocks at several scales, plus zero, constant,
#                           rounding-tie and, for f16/bf16, overflow/subnormal/NaN values)
#   quantize/<type>.bytes   gguf-py's quantization of that input, for every listed type gguf-py
#                           implements (q4_0, q4_1, q5_0, q5_1, q8_0, f16, bf16); the K-quants have
#                           no quantizer in gguf-py
# Plain binary + TSV, so the Rust test needs no JSON parser. Total size is about 120 kB.
#
# Pinned versions: Python 3.11, gguf==0.19.0, numpy==2.4.6 (any numpy 2.x should give identical
# bytes: everything is IEEE f32/f16 arithmetic).
#
# Run from the repository root, after `bash scripts/fetch-models.sh`:
#   pip install gguf==0.19.0 numpy==2.4.6
#   python3 tests/scripts/make_quant_goldens.py
# It is deterministic (fixed seed), so re-running reproduces the committed files byte for byte.

import os
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFReader
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize, quantize

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "goldens", "quant")
MODEL = os.path.join(os.environ.get("AETHER_MODELS_DIR", os.path.join(ROOT, "models")),
                     "SmolLM2-135M-Instruct.Q4_1.gguf")

# aether name -> (gguf-py type, blocks of random data, byte offsets of f16 fields in a block)
DEQUANT = {
    "f32": (T.F32, 256, []),
    "f16": (T.F16, 256, []),
    "bf16": (T.BF16, 256, []),
    "q4_0": (T.Q4_0, 16, [0]),
    "q4_1": (T.Q4_1, 16, [0, 2]),
    "q5_0": (T.Q5_0, 16, [0]),
    "q5_1": (T.Q5_1, 16, [0, 2]),
    "q8_0": (T.Q8_0, 16, [0]),
    "q2_K": (T.Q2_K, 8, [80, 82]),
    "q3_K": (T.Q3_K, 8, [108]),
    "q4_K": (T.Q4_K, 8, [0, 2]),
    "q5_K": (T.Q5_K, 8, [0, 2]),
    "q6_K": (T.Q6_K, 8, [208]),
}

QUANTIZE = {
    "q4_0": T.Q4_0,
    "q4_1": T.Q4_1,
    "q5_0": T.Q5_0,
    "q5_1": T.Q5_1,
    "q8_0": T.Q8_0,
    "f16": T.F16,
    "bf16": T.BF16,
}

# (tensor, rows): the first, a middle and the last row of one tensor of each type in the file.
MODEL_ROWS = [
    ("blk.0.attn_norm.weight", [0]),            # f32, a single row
    ("output_norm.weight", [0]),                 # f32
    ("blk.0.ffn_down.weight", [0, 288, 575]),    # q4_1, 1536 per row
    ("blk.29.attn_k.weight", [0, 96, 191]),      # q4_1, 576 per row
    ("token_embd.weight", [0, 24576, 49151]),    # q8_0, 576 per row
]

rng = np.random.default_rng(20240611)


def write(path, data: bytes):
    full = os.path.join(OUT, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as f:
        f.write(data)


def scale_values(n):
    """Finite f16 scales: mostly ±[1e-3, 1), plus a zero, a negative and a subnormal one."""
    v = rng.uniform(1e-3, 1.0, n) * rng.choice([-1.0, 1.0], n)
    v[:3] = [0.0, -0.5, 3e-6]  # 3e-6 is an f16 subnormal
    return v.astype(np.float16)


def random_blocks(name):
    ty, n_blocks, f16_fields = DEQUANT[name]
    if ty == T.F32:
        bits = rng.integers(0, 2**32, 2 * n_blocks, dtype=np.uint64).astype(np.uint32)
        bits = bits[(bits & 0x7F800000) != 0x7F800000][:n_blocks]  # drop inf/NaN patterns
        bits[:3] = [0x80000000, 0x00000001, 0x3F800000]  # -0, the smallest subnormal, 1.0
        return bits.astype("<u4").tobytes()
    if ty in (T.F16, T.BF16):
        exp_mask = 0x7C00 if ty == T.F16 else 0x7F80
        bits = rng.integers(0, 2**16, 4 * n_blocks, dtype=np.uint32).astype(np.uint16)
        bits = bits[(bits & exp_mask) != exp_mask][:n_blocks]
        bits[:3] = [0x8000, 0x0001, 0x03FF if ty == T.F16 else 0x007F]  # -0 and subnormals
        return bits.astype("<u2").tobytes()
    _, type_size = GGML_QUANT_SIZES[ty]
    raw = rng.integers(0, 256, (n_blocks, type_size), dtype=np.uint16).astype(np.uint8)
    for at in f16_fields:
        raw[:, at:at + 2] = scale_values(n_blocks).view(np.uint8).reshape(n_blocks, 2)
    return raw.tobytes()


def quantize_input(name):
    """16 blocks' worth (32 elements each) of f32 input, as raw f32 so NaN payloads survive."""
    n = 16 * 32
    x = np.concatenate([rng.normal(0, s, 64) for s in [1.0, 0.01, 100.0, 3e-3]] + [rng.normal(0, 1, n - 256)])
    x = x.astype(np.float32)
    x[64:96] = 0.0                                           # an all-zero block
    x[96:128] = 0.375                                        # a constant block
    x[128:160] = np.arange(-16, 16, dtype=np.float32) * 0.25  # exactly representable levels
    ties = np.array([127, 63.5, -63.5, 0.5, -0.5, 1.5, -2.5, 2.5], dtype=np.float32)
    x[160:192] = np.resize(ties, 32)                         # Q8_0 rounding ties (d = 1)
    m = 1.5 * np.abs(x[192:224]).max()
    x[192], x[193] = -m, m                                   # ±max tie: the first one sets the sign
    if name in ("f16", "bf16"):
        # Round-to-nearest-even ties, overflow and subnormals of the narrow type.
        special = [1 + 2**-11, 1 + 3 * 2**-11, 1 + 2**-8, 1 + 3 * 2**-8, 70000.0, -1e6, 1e-6, -3e-8,
                   6.1e-5, 3.4e38, -0.0, np.inf, -np.inf]
        x[256:256 + len(special)] = np.array(special, dtype=np.float32)
        bits = x.view(np.uint32).copy()
        if name == "bf16":
            bits[300:303] = [0x7FC00001, 0xFFA12345, 0x7F800001]  # NaNs, one signalling
        return bits.view(np.float32)
    return x


def main():
    if not os.path.isfile(MODEL):
        sys.exit(f"{MODEL} is missing: run `bash scripts/fetch-models.sh`")

    for name, (ty, n_blocks, _) in DEQUANT.items():
        blocks = random_blocks(name)
        assert len(blocks) == n_blocks * GGML_QUANT_SIZES[ty][1], name
        want = dequantize(np.frombuffer(blocks, dtype=np.uint8), ty).astype("<f4")
        assert np.all(np.isfinite(want)), name
        write(f"dequant/{name}.blocks", blocks)
        write(f"dequant/{name}.f32", want.tobytes())

    for name, ty in QUANTIZE.items():
        x = quantize_input(name)
        with np.errstate(over="ignore"):  # f16 overflow to inf is part of the test
            q = quantize(x, ty)
        write(f"quantize/{name}.in.f32", x.astype("<f4").tobytes())
        write(f"quantize/{name}.bytes", np.ascontiguousarray(q).view(np.uint8).tobytes())

    reader = GGUFReader(MODEL)
    tensors = {t.name: t for t in reader.tensors}
    lines, values, offset = [], [], 0
    for tname, rows in MODEL_ROWS:
        t = tensors[tname]
        data = t.data.reshape(-1, t.data.shape[-1]) if t.data.ndim > 1 else t.data.reshape(1, -1)
        for r in rows:
            row = dequantize(data[r], t.tensor_type).astype("<f4").reshape(-1)
            type_name = t.tensor_type.name.lower().replace("_k", "_K")
            lines.append(f"{tname}\t{type_name}\t{r}\t{row.size}\t{offset}")
            values.append(row)
            offset += row.size
    write("model_rows.tsv", ("\n".join(lines) + "\n").encode())
    write("model_rows.f32", np.concatenate(values).astype("<f4").tobytes())

    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    print(f"wrote {OUT}: {total} bytes")


if __name__ == "__main__":
    main()
