#!/usr/bin/env python3
"""Tokenizer goldens from llama.cpp itself, beyond its own test vectors.

llama.cpp's ggml-vocab-*.gguf.{inp,out} vectors cover plain text only. This script asks llama.cpp
(through llama-cpp-python's low-level API, vocabulary-only loads) for what they leave out:
special-token parsing (`parse_special`), BOS/EOS (`add_special`), and the piece of every Nth
token with and without `special`. Strings are chat-like texts with each vocabulary's own special
tokens plus seeded random mixes of ASCII, whitespace runs, digits, contractions, accents, CJK,
emoji and special-token texts.

Output: tests/goldens/tokenizer/NAME.txt, one record per line:
    text <utf-8 hex>          a test string
    plain <ids>               llama_tokenize(add_special=false, parse_special=false)
    special <ids>             llama_tokenize(add_special=true,  parse_special=true)
    piece <id> <hex> <hex>    llama_token_to_piece(lstrip=0) with special=true, special=false
    meta bos <id> eos <id> eot <id> (-1 for none) and eog membership of the listed ids

Pins: llama-cpp-python==0.3.36 (built from its sdist, llama.cpp vendored in it), Python 3.11.
Run from the repository root: python3 tests/scripts/make_tokenizer_goldens.py
"""

import ctypes
import os
import random
import sys

import llama_cpp as L

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.environ.get("AETHER_SHARED_DIR", os.path.join(os.path.dirname(ROOT), "shared"))
MODELS = os.environ.get("AETHER_MODELS_DIR", os.path.join(ROOT, "models"))
OUT = os.path.join(ROOT, "tests", "goldens", "tokenizer")

FILES = {
    "llama-spm": os.path.join(SHARED, "vocab", "ggml-vocab-llama-spm.gguf"),
    "llama-bpe": os.path.join(SHARED, "vocab", "ggml-vocab-llama-bpe.gguf"),
    "qwen2": os.path.join(SHARED, "vocab", "ggml-vocab-qwen2.gguf"),
    "phi-3": os.path.join(SHARED, "vocab", "ggml-vocab-phi-3.gguf"),
    "gpt-2": os.path.join(SHARED, "vocab", "ggml-vocab-gpt-2.gguf"),
    "smollm2": os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf"),
}

PIECE_STRIDE = 997  # every Nth id, plus all special ids


def load(path):
    params = L.llama_model_default_params()
    params.vocab_only = True
    model = L.llama_model_load_from_file(path.encode(), params)
    if not model:
        sys.exit(f"cannot load {path}")
    return model, L.llama_model_get_vocab(model)


def tokenize(vocab, text, add_special, parse_special):
    data = text.encode()
    n_max = len(data) + 8
    buf = (L.llama_token * n_max)()
    n = L.llama_tokenize(vocab, data, len(data), buf, n_max, add_special, parse_special)
    if n < 0:
        sys.exit(f"tokenize: buffer too small for {text!r}")
    return list(buf[:n])


def piece(vocab, tok, special):
    buf = ctypes.create_string_buffer(256)
    n = L.llama_token_to_piece(vocab, tok, buf, 256, 0, special)
    if n < 0:
        buf = ctypes.create_string_buffer(-n)
        n = L.llama_token_to_piece(vocab, tok, buf, -n, 0, special)
    return buf.raw[:n]


def special_texts(vocab, n_vocab):
    """Texts of control/user-defined tokens (at most 12, the shortest first) to mix into strings."""
    out = []
    for t in range(n_vocab):
        attr = L.llama_vocab_get_attr(vocab, t)
        if attr & (L.LLAMA_TOKEN_ATTR_CONTROL | L.LLAMA_TOKEN_ATTR_USER_DEFINED):
            out.append(L.llama_vocab_get_text(vocab, t).decode("utf-8", "replace"))
    out.sort(key=len)
    return out[:12]


def strings(specials, rng):
    chat = [
        "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\n",
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>",
        "<s>[INST] Hello [/INST] Hi</s>",
        "<|user|>\nTell me a joke<|end|>\n<|assistant|>\n",
        "text<|endoftext|>more text",
        "  <|im_end|>  spaced  </s>  ",
    ]
    alphabet = list("abcXYZ  \t\n\r") + ["'s", "'LL", "'re", "1", "22", "333", "é", "ñ", "我", "ا", "🦙", "😶\u200d🌫️", "\u00a0", "\u3000", "...", "!?", "```"]
    # Code points of every class the pre-tokenizers test: marks, other numbers, punctuation and
    # symbols beyond ASCII, controls, format, private use, unassigned, odd whitespace.
    alphabet += ["e\u0301", "½", "٣", "Ⅻ", "¿", "«", "€", "∑", "\x00", "\x7f", "\u200b", "\ue000", "\U000e0080", "\u2028", "\x85", "\u1680", "ǅ", "ʰ"]
    mix = alphabet + specials
    n = int(os.environ.get("RANDOM_STRINGS", "40"))  # raise for a local stress run; commit 40
    rand = ["".join(rng.choice(mix) for _ in range(rng.randrange(1, 24))) for _ in range(n)]
    return chat + rand


def main():
    os.makedirs(OUT, exist_ok=True)
    L.llama_backend_init()
    for name, path in FILES.items():
        model, vocab = load(path)
        n_vocab = L.llama_vocab_n_tokens(vocab)
        rng = random.Random(20250101 + sum(map(ord, name)))
        lines = []
        ids = lambda xs: " ".join(map(str, xs))
        bos, eos, eot = L.llama_vocab_bos(vocab), L.llama_vocab_eos(vocab), L.llama_vocab_eot(vocab)
        lines.append(f"meta bos {bos} eos {eos} eot {eot}")
        specials = special_texts(vocab, n_vocab)
        for s in strings(specials, rng):
            lines.append("text " + s.encode().hex())
            lines.append("plain " + ids(tokenize(vocab, s, False, False)))
            lines.append("special " + ids(tokenize(vocab, s, True, True)))
        sample = set(range(0, n_vocab, PIECE_STRIDE))
        for t in range(n_vocab):
            if L.llama_vocab_get_attr(vocab, t) & ~L.LLAMA_TOKEN_ATTR_NORMAL:
                sample.add(t)
        sample = sorted(sample)[:400]
        for t in sample:
            lines.append(f"piece {t} {piece(vocab, t, True).hex()} {piece(vocab, t, False).hex()}")
        eog = [t for t in sample + [bos, eos, eot] if t >= 0 and L.llama_vocab_is_eog(vocab, t)]
        lines.append("eog " + ids(sorted(set(eog))))
        lines.append("not_eog " + ids([t for t in sample if not L.llama_vocab_is_eog(vocab, t)][:50]))
        with open(os.path.join(OUT, f"{name}.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
        print(f"{name}: {len(lines)} lines")
        L.llama_model_free(model)


if __name__ == "__main__":
    main()
