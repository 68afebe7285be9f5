#!/usr/bin/env python3
# Makes the llama.cpp goldens in tests/goldens/arches/, checked by tests/tests/arches_vs_llama.rs:
# for each architecture aether runs (llama, qwen2, qwen3, phi3, gemma3) and two weight types
# (q8_0, and q4_k with a q6_k output matrix), what llama.cpp computes on a synthetic tiny model.
#
# The models are NOT committed. This script builds them with the project's own tool,
#   cargo run -q -p aether -- synth <file> --arch <arch> --shape tiny --quant <quant> --seed 7
# (aether_core::synth, deterministic: the test regenerates the same bytes in memory and checks
# them against the sha256 recorded here before comparing anything).
#
# One file per case, <arch>_<quant>[_ctx<n>].tsv, plain text (the Rust test needs no JSON parser):
#   arch, shape, quant, output_quant, seed   the synth spec
#   n_ctx                                    llama.cpp's context size (aether's State gets the same:
#                                            Phi-3 picks its LongRoPE factors by it)
#   bytes, sha256                            of the model file llama.cpp ran
#   prompt                                   16 token ids
#   ids                                      llama.cpp's 16 greedy tokens: one eval of the prompt
#                                            (logits of its last token), then one eval per token,
#                                            argmax (lowest id on ties)
#   margins                                  top-1 minus top-2 logit at each greedy step
#   tokens                                   prompt + ids (32), teacher-forced in ONE eval with
#                                            logits_all; then one row per position:
#   <pos> <lse> <tail> <noise> <id:logit ...>
#                                            log-sum-exp of the f32 row (in f64); probability mass
#                                            outside the top 32 (summed over the other 480 entries
#                                            in f64); llama.cpp's own noise: the same bucketed KL
#                                            (top 32 + tail) between this batched eval and llama.cpp
#                                            evaluating the 32 tokens one at a time; the top 32 as
#                                            id:logit, f32 printed to round-trip.
#
# The phi3 q8_0 model is run twice: with n_ctx 512 (at most its rope.scaling.original_context_length
# of 1024, so the short LongRoPE factors) and n_ctx 2048 (the long factors).
#
# llama.cpp settings as in make_llama_goldens.py: llama-cpp-python 0.3.36 defaults, CPU only,
# n_batch=512, n_threads=1, flash attention off (its default), f16 KV cache, no BOS added.
#
# Pinned versions: Python 3.11, numpy==2.4.6, llama-cpp-python==0.3.36 built from its sdist with
#   CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF" pip install llama-cpp-python==0.3.36
# (the portable x86-64 build: AVX2/FMA/F16C kernels; made on an AMD EPYC without AVX-512).
#
# Run from the repository root:
#   python3 tests/scripts/make_arch_goldens.py
# Deterministic: re-running on the same build reproduces the files byte for byte.

import hashlib
import os
import subprocess
import sys
import tempfile

import numpy as np
from llama_cpp import Llama, llama_cpp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "goldens", "arches")
ARCHES = ["llama", "qwen2", "qwen3", "phi3", "gemma3"]
QUANTS = [("q8_0", "q8_0"), ("q4_k", "q6_k")]  # (weights, output matrix)
SHAPE = "tiny"
SEED = 7
N_CTX = 512
# Byte tokens and fillers of the synthetic vocabulary (no specials: 256, 257).
PROMPT = [72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 33, 300, 417, 511]
N_GEN = 16
TOP_K = 32


def synth(path, arch, quant, output_quant):
    cmd = ["cargo", "run", "-q", "-p", "aether", "--", "synth", path, "--arch", arch, "--shape", SHAPE,
           "--quant", quant, "--output-quant", output_quant, "--seed", str(SEED)]
    subprocess.run(cmd, cwd=ROOT, check=True, stderr=subprocess.DEVNULL)


def load(path, n_ctx, logits_all):
    return Llama(model_path=path, n_ctx=n_ctx, n_batch=512, n_threads=1, n_threads_batch=1, n_gpu_layers=0,
                 logits_all=logits_all, verbose=False)


def greedy(path, n_ctx):
    llm = load(path, n_ctx, logits_all=False)
    llm.reset()
    llm.eval(PROMPT)
    ids, margins = [], []
    for _ in range(N_GEN):
        row = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),)).copy()
        tok = int(np.argmax(row))  # first maximum: the lowest id on ties
        top2 = np.sort(row)[-2:]
        ids.append(tok)
        margins.append(float(top2[1] - top2[0]))
        llm.eval([tok])
    return ids, margins


def log_softmax(row):
    r64 = row.astype(np.float64)
    m = r64.max()
    return r64 - (m + np.log(np.exp(r64 - m).sum()))


def bucketed_kl(p_row, q_row, top):
    """KL(P || Q) over `top` plus one bucket for the rest, as the Rust test computes it."""
    lp, lq = log_softmax(p_row), log_softmax(q_row)
    rest = np.setdiff1d(np.arange(len(p_row)), top)
    p_tail, q_tail = np.exp(lp[rest]).sum(), np.exp(lq[rest]).sum()
    return float((np.exp(lp[top]) * (lp[top] - lq[top])).sum() + p_tail * (np.log(p_tail) - np.log(q_tail)))


def teacher_forced(path, n_ctx, tokens):
    llm = load(path, n_ctx, logits_all=True)
    llm.reset()
    llm.eval(tokens)
    rows = np.array(llm.scores[: len(tokens)], dtype=np.float32)
    one = load(path, n_ctx, logits_all=True)
    one.reset()
    for t in tokens:
        one.eval([t])
    rows_one = np.array(one.scores[: len(tokens)], dtype=np.float32)
    lines, noise = [], []
    for i, row in enumerate(rows):
        lp = log_softmax(row)
        lse = float(row[0] - lp[0])
        order = np.argsort(-row, kind="stable")
        top, rest = order[:TOP_K], order[TOP_K:]
        tail = float(np.exp(lp[rest]).sum())
        n = bucketed_kl(row, rows_one[i], top)
        noise.append(n)
        pairs = " ".join(f"{int(t)}:{float(row[t])!r}" for t in top)
        lines.append(f"{i}\t{lse!r}\t{tail!r}\t{n!r}\t{pairs}")
    return lines, noise


def make(tmp, arch, quant, output_quant, n_ctx):
    path = os.path.join(tmp, f"{arch}_{quant}.gguf")
    if not os.path.isfile(path):
        synth(path, arch, quant, output_quant)
    data = open(path, "rb").read()
    ids, margins = greedy(path, n_ctx)
    tokens = PROMPT + ids
    lines, noise = teacher_forced(path, n_ctx, tokens)
    suffix = "" if n_ctx == N_CTX else f"_ctx{n_ctx}"
    name = f"{arch}_{quant}{suffix}.tsv"
    with open(os.path.join(OUT, name), "w") as f:
        f.write("# llama.cpp (llama-cpp-python 0.3.36) on an aether synthetic model; see tests/scripts/make_arch_goldens.py\n")
        for key, value in [("arch", arch), ("shape", SHAPE), ("quant", quant), ("output_quant", output_quant),
                           ("seed", SEED), ("n_ctx", n_ctx), ("bytes", len(data)),
                           ("sha256", hashlib.sha256(data).hexdigest())]:
            f.write(f"{key}\t{value}\n")
        f.write("prompt\t" + " ".join(map(str, PROMPT)) + "\n")
        f.write("ids\t" + " ".join(map(str, ids)) + "\n")
        f.write("margins\t" + " ".join(f"{m:.4f}" for m in margins) + "\n")
        f.write(f"# position <TAB> logsumexp <TAB> tail mass outside the top {TOP_K} <TAB> llama.cpp's own noise "
                f"(bucketed KL, batched vs one token at a time) <TAB> top {TOP_K} as id:logit\n")
        f.write("tokens\t" + " ".join(map(str, tokens)) + "\n")
        f.write("\n".join(lines) + "\n")
    print(f"{name}: min greedy margin {min(margins):.4f}, own noise KL mean {np.mean(noise):.2e} "
          f"max {np.max(noise):.2e}")


def main():
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for arch in ARCHES:
            for quant, output_quant in QUANTS:
                make(tmp, arch, quant, output_quant, N_CTX)
        make(tmp, "phi3", "q8_0", "q8_0", 2048)


if __name__ == "__main__":
    sys.exit(main())
