#!/usr/bin/env python3
# Makes tests/goldens/llama/vecdot_avx2.tsv, checked by tests/tests/vecdot_vs_ggml.rs: the dot
# products of llama.cpp's own x86 AVX2 kernels for the weight types of the default model, called
# directly from its CPU library:
#   Q4_1 weights: quantize_row_q8_1 (activations) and ggml_vec_dot_q4_1_q8_1;
#   Q8_0 weights: quantize_row_q8_0 and ggml_vec_dot_q8_0_q8_0.
# aether's reference (`quant::dot_quantized`, `quant::quantize_activations`) and every SIMD kernel
# set must give the same activation bytes and the same f32 bits.
#
# Inputs are random but chosen so that the order of the f32 sums shows: activations with a few
# outliers of 10^3 (as the model has), weight scales spread over four decades, Q8_0 levels
# including -128.
#
# Format (tab-separated, hex little-endian bytes):
#   case <TAB> type <TAB> cols <TAB> x (cols f32) <TAB> ggml's activation blocks
#   row <TAB> weight row bytes <TAB> result (f32 bits as 8 hex digits)
# one `case` line followed by its rows.
#
# Versions: Python 3.11, numpy==2.4.6, llama-cpp-python==0.3.36 built from its sdist as described
# in make_llama_goldens.py (GGML_NATIVE=OFF: the AVX2/FMA/F16C kernels). Deterministic (seeded).
# Run from the repository root: python3 tests/scripts/make_vecdot_goldens.py

import ctypes
import os

import numpy as np
import llama_cpp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "goldens", "llama", "vecdot_avx2.tsv")
LIB = ctypes.CDLL(os.path.join(os.path.dirname(llama_cpp.__file__), "lib", "libggml-cpu.so"))

VEC_DOT_ARGS = [
    ctypes.c_int,
    ctypes.POINTER(ctypes.c_float),
    ctypes.c_size_t,
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
]
TYPES = {
    # name: (weight block bytes, activation block bytes, quantizer, dot)
    "Q4_1": (20, 36, LIB.quantize_row_q8_1, LIB.ggml_vec_dot_q4_1_q8_1),
    "Q8_0": (34, 34, LIB.quantize_row_q8_0, LIB.ggml_vec_dot_q8_0_q8_0),
}
CASES = [("Q4_1", 576, 4), ("Q8_0", 576, 4), ("Q4_1", 1536, 3), ("Q8_0", 1536, 3)]


def weight_row(ty, cols, rng):
    blocks = []
    for _ in range(cols // 32):
        d = np.float16(rng.uniform(1e-4, 1e-1) * rng.choice([1, 10, 100, 1000]) / 100)
        if ty == "Q4_1":
            m = np.float16(-rng.uniform(0, 8) * float(d))
            blocks.append(d.tobytes() + m.tobytes() + rng.integers(0, 256, 16, dtype=np.uint8).tobytes())
        else:
            qs = rng.integers(-128, 128, 32, dtype=np.int8)
            blocks.append(d.tobytes() + qs.tobytes())
    return b"".join(blocks)


def main():
    LIB.ggml_cpu_init()  # fills the f16 -> f32 table the kernels read their scales through
    rng = np.random.default_rng(20261126)
    lines = []
    for ty, cols, n_rows in CASES:
        wb, ab, quantize, dot = TYPES[ty]
        quantize.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        x = rng.standard_normal(cols).astype(np.float32)
        x[rng.choice(cols, 3, replace=False)] *= 1000.0
        acts = ctypes.create_string_buffer(cols // 32 * ab)
        quantize(x.ctypes.data, acts, cols)
        lines.append(f"case\t{ty}\t{cols}\t{x.tobytes().hex()}\t{acts.raw.hex()}")
        dot.argtypes, dot.restype = VEC_DOT_ARGS, None
        for _ in range(n_rows):
            row = weight_row(ty, cols, rng)
            buf = ctypes.create_string_buffer(row, len(row))
            out = ctypes.c_float()
            dot(cols, ctypes.byref(out), 0, ctypes.addressof(buf), 0, ctypes.addressof(acts), 0, 1)
            bits = np.float32(out.value).view(np.uint32)
            lines.append(f"row\t{row.hex()}\t{int(bits):08x}")
    with open(OUT, "w") as fo:
        fo.write("# llama.cpp's x86 AVX2 vec_dot kernels on random rows; see tests/scripts/make_vecdot_goldens.py\n")
        fo.write("\n".join(lines) + "\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
