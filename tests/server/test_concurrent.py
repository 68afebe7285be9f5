"""Continuous batching seen from outside: 16 streaming clients at once against `--parallel 16`.

Every client must finish without error and receive exactly the text it gets when it is alone on
the server (greedy ones, and sampled ones with a seed: each sequence keeps its own sampler), and
the pool must have advanced the streams together: /metrics counts the forward steps and the
sequences they advanced, and the steps of the batch must have served more than four streams each
on average. The aggregate decode rate against one client's is printed; speed is measured by the
benchmark (`aether bench --concurrent`), not asserted by a test on a shared machine."""

import statistics
import threading
import time

import openai

from conftest import MODEL_ID

CLIENTS = 16
MAX_TOKENS = 32
SUBJECTS = [
    "The capital of France is", "My favourite fruit is", "Once upon a time", "The ocean is",
    "A good breakfast has", "The first rule of chess is", "In winter the mountains", "Dogs are",
    "The best way to learn is", "Yesterday I saw", "Music makes", "The old library",
    "Rain on the window", "A robot walked into", "The recipe needs", "Stars at night",
]


def request(i):
    """Client i's request: greedy for even i, seeded sampling for odd i."""
    kw = {"max_tokens": MAX_TOKENS, "temperature": 0}
    if i % 2:
        kw = {"max_tokens": MAX_TOKENS, "temperature": 0.9, "top_p": 0.95, "seed": 1000 + i}
    return SUBJECTS[i], kw


def stream(client, i):
    """(text, completion tokens, seconds) of client i's streamed completion."""
    prompt, kw = request(i)
    t0 = time.monotonic()
    chunks = list(client.completions.create(model=MODEL_ID, prompt=prompt, stream=True,
                                            stream_options={"include_usage": True}, **kw))
    seconds = time.monotonic() - t0
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish in (["stop"], ["length"]), f"client {i}: finish_reason chunks {finish}"
    usage = [c.usage for c in chunks if c.usage]
    assert len(usage) == 1, f"client {i}: {len(usage)} usage chunks"
    return text, usage[0].completion_tokens, seconds


def test_16_streams_at_once_equal_their_solo_runs_and_share_steps(start_server):
    server = start_server("--parallel", str(CLIENTS), "-c", "256")
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=300)

    stream(client, 0)  # warm-up: first-use allocations stay out of the timings
    solo = [stream(client, i) for i in range(CLIENTS)]
    solo_rate = statistics.median(n / s for _, n, s in solo)

    results, errors = [None] * CLIENTS, []
    start = threading.Barrier(CLIENTS)

    def run(i):
        try:
            start.wait()
            results[i] = stream(client, i)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"client {i}: {e!r}")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(CLIENTS)]
    before = server.metrics()
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    wall = time.monotonic() - t0
    assert not any(t.is_alive() for t in threads), "a client hung"
    assert not errors, errors

    for i, ((alone, _, _), (together, _, _)) in enumerate(zip(solo, results)):
        assert together == alone, f"client {i} ({request(i)[1]}): alone {alone!r}, among {CLIENTS} {together!r}"
    total = sum(n for _, n, _ in results)
    aggregate = total / wall
    print(f"one stream {solo_rate:.1f} tok/s; {CLIENTS} streams {aggregate:.1f} tok/s aggregate "
          f"({total} tokens in {wall:.1f} s, {aggregate / solo_rate:.2f}x)")
    # Batched, not taking turns: the forward steps served several streams each. (Speed is the
    # benchmark's to measure, `aether bench --concurrent`; the rates above are printed only.)
    after = server.metrics()
    steps = after["aether_forward_steps_total"] - before["aether_forward_steps_total"]
    runs = after["aether_forward_step_runs_total"] - before["aether_forward_step_runs_total"]
    print(f"{runs} sequence-steps in {steps} forward steps ({runs / max(steps, 1):.1f} streams a step)")
    assert steps > 0 and runs / steps > 4, f"{runs} sequence-steps in {steps} forward steps"
    assert server.new_fives() == {}, server.new_fives()
