#!/usr/bin/env python3
# llama.cpp's CPU speed on this machine, measured the way `aether bench` measures aether, for the
# side-by-side table in docs/PERF.md: pp N (one eval of N random tokens, KV cache cleared first)
# and tg N (N evals of one token each, from an empty cache), the median of R repetitions after one
# untimed warm-up, flash attention off (llama-cpp-python's default), the same thread count for
# prompt and generation.
#
# Requires llama-cpp-python==0.3.36 (its wheel build as installed here: check `llama_cpp.__file__`
# and `llama_cpp.llama_print_system_info()` for the CPU features it was compiled with).
#
# Usage: bench_llama_cpp.py MODEL.gguf [-t THREADS] [-p 64] [-n 32] [-r 5]
import argparse
import random
import statistics
import time

import llama_cpp

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("-t", "--threads", type=int, default=2)
ap.add_argument("-p", "--n-prompt", type=int, default=64)
ap.add_argument("-n", "--n-gen", type=int, default=32)
ap.add_argument("-r", "--reps", type=int, default=5)
a = ap.parse_args()

llm = llama_cpp.Llama(
    a.model,
    n_ctx=a.n_prompt + a.n_gen + 8,
    n_batch=max(a.n_prompt, 1),
    n_ubatch=max(a.n_prompt, 1),
    n_threads=a.threads,
    n_threads_batch=a.threads,
    verbose=False,
)
print("system:", llama_cpp.llama_print_system_info().decode().strip())
rng = random.Random(42)
vocab = llm.n_vocab()


def timed(run):
    times = []
    for rep in range(a.reps + 1):
        llm.reset()
        llm._ctx.kv_cache_clear() if hasattr(llm._ctx, "kv_cache_clear") else None
        t = time.perf_counter()
        run()
        if rep > 0:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


print(f"| test | tok/s (median of {a.reps}) | ms/token |")
print("|---|---|---|")
if a.n_prompt > 0:
    prompt = [rng.randrange(vocab) for _ in range(a.n_prompt)]
    t = timed(lambda: llm.eval(prompt))
    print(f"| pp{a.n_prompt} | {a.n_prompt / t:.1f} | {t * 1e3 / a.n_prompt:.2f} |")
if a.n_gen > 0:
    gen = [rng.randrange(vocab) for _ in range(a.n_gen)]

    def one_at_a_time():
        for tok in gen:
            llm.eval([tok])

    t = timed(one_at_a_time)
    print(f"| tg{a.n_gen} | {a.n_gen / t:.1f} | {t * 1e3 / a.n_gen:.2f} |")
