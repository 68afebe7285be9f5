#!/usr/bin/env python3
# Makes the llama.cpp goldens in tests/goldens/llama/, checked by tests/tests/smollm2_vs_llama.rs:
# what llama.cpp itself computes for the default model (SmolLM2-135M-Instruct Q4_1) from the prompt
# "The capital of France is" (token ids 504 3575 282 4649 314, no BOS).
#
# What it writes (plain text, so the Rust test needs no JSON parser):
#   smollm2_greedy.tsv    the prompt ids, llama.cpp's 32 greedy token ids and their text, and the
#                         top-1 minus top-2 logit margin at each greedy step. Generation as an
#                         application runs it: one eval of the prompt (logits of its last token
#                         only), then one eval per generated token, argmax (lowest id on ties).
#   smollm2_teacher.tsv   teacher-forced logits along those tokens, computed the way aether computes
#                         them and the way decoding does: llama.cpp evaluating prompt + 32 generated
#                         ids (37 tokens) ONE AT A TIME (logits_all=True), then per position (37
#                         rows): the log-sum-exp of the full f32 row (in f64), the probability mass
#                         outside the row's top 100 (summed in f64 over the other 49052 entries, not
#                         as 1 - head, to keep its precision), llama.cpp's own noise (below), and
#                         the top 100 as id:logit pairs (logits are the f32 values, printed to
#                         round-trip). The test computes KL(llama.cpp || aether) over those 100
#                         tokens plus one tail bucket; grouping the tail can only lower a KL.
#                         Why one at a time: llama.cpp runs different kernels for a batch than for
#                         one token (a batch of n >= 2 goes through the llamafile sgemm for the f16
#                         attention products and the Q8_0 output matrix; one token through the
#                         ggml_vec_dot_* mat-vec kernels), and aether mirrors the mat-vec kernels
#                         for every batch size (its batch and its tokens one by one are
#                         bit-identical). Against llama.cpp's batched logits aether therefore
#                         measures exactly llama.cpp's own batch-vs-single gap.
#                         "Own noise" is that gap: the same bucketed KL between llama.cpp's
#                         token-by-token logits (the golden) and one batched eval of the 37 tokens
#                         (logits_all): rows 0-6 agree, later rows differ by up to 1.6 in a logit,
#                         KL mean 1.2e-3, max 7.2e-3.
#   smollm2_hidden.f32    the residual stream (`l_out-0`, `l_out-1`, `l_out-2`: after layers 0, 1, 2)
#                         for the first three prompt tokens evaluated one at a time, read through
#                         ggml's eval callback: [3 positions][3 layers][576] little-endian f32.
#                         Before rounding differences snowball, aether must agree with these to
#                         f32 rounding; that pins the semantics (Q8 activations, f16 KV cache,
#                         f16 attention products) that the end-to-end KL cannot resolve.
#
# llama.cpp settings: llama-cpp-python 0.3.36 defaults except where listed. CPU only; n_ctx=512,
# n_batch=512; n_threads=1, n_threads_batch=1 (deterministic; threads only split rows anyway);
# flash attention OFF (llama-cpp-python's default: flash_attn=False sets LLAMA_FLASH_ATTN_TYPE_
# DISABLED); KV cache f16 (the default type_k/type_v); no BOS added (the ids are given).
#
# Build and pinned versions: Python 3.11, numpy==2.4.6, llama-cpp-python==0.3.36 built from its
# sdist (vendored llama.cpp) with
#   CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF" pip install llama-cpp-python==0.3.36
# GGML_NATIVE=OFF makes the portable x86-64 build, which still enables AVX, AVX2, FMA, F16C and
# BMI2 (and the llamafile sgemm), so the goldens are the AVX2 kernels' numbers; they were made on
# an AMD EPYC (AVX2, no AVX-512). Other builds (native AVX-512, ARM NEON, Metal) regroup f32 sums
# differently and drift from these by rounding; the test's thresholds leave room for that.
#
# Run from the repository root, after `bash scripts/fetch-models.sh`:
#   python3 tests/scripts/make_llama_goldens.py
# It is deterministic: re-running on the same build reproduces the files byte for byte.

import ctypes
import os
import sys

import numpy as np
from llama_cpp import Llama, llama_cpp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
OUT = os.path.join(ROOT, "tests", "goldens", "llama")
PROMPT = [504, 3575, 282, 4649, 314]
N_GEN = 32
TOP_K = 100
HIDDEN_TOKENS = 3
HIDDEN_LAYERS = 3


def load(logits_all):
    return Llama(
        model_path=MODEL,
        n_ctx=512,
        n_batch=512,
        n_threads=1,
        n_threads_batch=1,
        n_gpu_layers=0,
        logits_all=logits_all,
        verbose=False,
    )


def escape(text):
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")


def greedy():
    llm = load(logits_all=False)
    n_vocab = llm.n_vocab()
    llm.reset()
    llm.eval(PROMPT)
    ids, margins = [], []
    for _ in range(N_GEN):
        row = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(n_vocab,)).copy()
        tok = int(np.argmax(row))  # first maximum: the lowest id on ties
        top2 = np.sort(row)[-2:]
        ids.append(tok)
        margins.append(float(top2[1] - top2[0]))
        llm.eval([tok])
    text = llm.detokenize(ids).decode("utf-8", errors="replace")
    return ids, text, margins


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


def teacher_forced(ids):
    tokens = PROMPT + ids
    one = load(logits_all=True)
    one.reset()
    for t in tokens:
        one.eval([t])
    rows = np.array(one.scores[: len(tokens)], dtype=np.float32)
    llm = load(logits_all=True)
    llm.reset()
    llm.eval(tokens)
    rows_batched = np.array(llm.scores[: len(tokens)], dtype=np.float32)
    lines = []
    for i, row in enumerate(rows):
        lp = log_softmax(row)
        lse = float(row[0] - lp[0])
        order = np.argsort(-row, kind="stable")
        top, rest = order[:TOP_K], order[TOP_K:]
        tail = float(np.exp(lp[rest]).sum())
        noise = bucketed_kl(row, rows_batched[i], top)
        pairs = " ".join(f"{int(t)}:{float(row[t])!r}" for t in top)
        lines.append(f"{i}\t{lse!r}\t{tail!r}\t{noise!r}\t{pairs}")
    return lines


class GgmlTensor(ctypes.Structure):
    """The head of `struct ggml_tensor` (ggml.h of the vendored llama.cpp), up to `name`."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * 4),
        ("nb", ctypes.c_size_t * 4),
        ("op", ctypes.c_int),
        ("op_params", ctypes.c_int32 * 16),
        ("flags", ctypes.c_int32),
        ("src", ctypes.c_void_p * 10),
        ("view_src", ctypes.c_void_p),
        ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("name", ctypes.c_char * 64),
    ]


def hidden_states():
    """l_out-{0..HIDDEN_LAYERS-1} for the first HIDDEN_TOKENS prompt tokens, one eval each."""
    want = {f"l_out-{layer}": layer for layer in range(HIDDEN_LAYERS)}
    out = np.zeros((HIDDEN_TOKENS, HIDDEN_LAYERS, 576), dtype=np.float32)
    pos = [0]

    def callback(ptr, ask, _user):
        t = GgmlTensor.from_address(ptr)
        name = t.name.decode()
        if ask:
            return name in want
        if name in want and t.type == 0 and t.ne[0] == 576 and t.ne[1] == 1:
            out[pos[0], want[name]] = np.ctypeslib.as_array((ctypes.c_float * 576).from_address(t.data))
        return True

    cb = llama_cpp.ggml_backend_sched_eval_callback(callback)
    mp = llama_cpp.llama_model_default_params()
    mp.n_gpu_layers = 0
    model = llama_cpp.llama_model_load_from_file(MODEL.encode(), mp)
    cp = llama_cpp.llama_context_default_params()
    cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_threads, cp.n_threads_batch = 512, 512, 512, 1, 1
    cp.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
    cp.cb_eval = cb
    ctx = llama_cpp.llama_init_from_model(model, cp)
    for i, tok in enumerate(PROMPT[:HIDDEN_TOKENS]):
        pos[0] = i
        batch = llama_cpp.llama_batch_init(1, 0, 1)
        batch.n_tokens = 1
        batch.token[0], batch.pos[0], batch.n_seq_id[0], batch.logits[0] = tok, i, 1, 1
        batch.seq_id[0][0] = 0
        if llama_cpp.llama_decode(ctx, batch) != 0:
            sys.exit("llama_decode failed")
        llama_cpp.llama_batch_free(batch)
    llama_cpp.llama_free(ctx)
    llama_cpp.llama_model_free(model)
    return out


def main():
    if not os.path.isfile(MODEL):
        sys.exit(f"{MODEL} is missing: run `bash scripts/fetch-models.sh`")
    os.makedirs(OUT, exist_ok=True)
    ids, text, margins = greedy()
    with open(os.path.join(OUT, "smollm2_greedy.tsv"), "w") as f:
        f.write("# llama.cpp (llama-cpp-python 0.3.36) greedy decoding; see tests/scripts/make_llama_goldens.py\n")
        f.write("prompt\t" + " ".join(map(str, PROMPT)) + "\n")
        f.write("ids\t" + " ".join(map(str, ids)) + "\n")
        f.write("text\t" + escape(text) + "\n")
        f.write("margins\t" + " ".join(f"{m:.4f}" for m in margins) + "\n")
    lines = teacher_forced(ids)
    with open(os.path.join(OUT, "smollm2_teacher.tsv"), "w") as f:
        f.write("# llama.cpp teacher-forced logits along its greedy tokens (one eval per token, logits_all)\n")
        f.write(
            f"# position <TAB> logsumexp <TAB> tail mass outside the top {TOP_K} <TAB> llama.cpp's own noise "
            f"(bucketed KL, one token at a time vs batched) <TAB> top {TOP_K} as id:logit\n"
        )
        f.write("tokens\t" + " ".join(map(str, PROMPT + ids)) + "\n")
        f.write("\n".join(lines) + "\n")
    hidden_states().tofile(os.path.join(OUT, "smollm2_hidden.f32"))
    print(f"greedy: {text!r}")
    print("smallest greedy margins:", sorted((m, i) for i, m in enumerate(margins))[:4])


if __name__ == "__main__":
    main()
