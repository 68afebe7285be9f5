"""Load, bounded and on loopback: 32 clients for AETHER_LOAD_SECONDS (default 60) against
--parallel 8 --max-queue 16, each sending request after request (chat and text, streamed and
not, short answers). Every request must either complete (a finish_reason, and `[DONE]` when
streamed) or get 429 with Retry-After; none may fail otherwise or hang. The server's resident
memory, sampled each second, must stay flat after the first third of the run (warm-up: slots,
buffers and allocator arenas reach their working size)."""

import json
import os
import random
import threading
import time

import httpx

from conftest import sse_events

SECONDS = float(os.environ.get("AETHER_LOAD_SECONDS", "60"))
CLIENTS = 32
# RSS may rise this much after warm-up (allocator noise), and no more.
RSS_SLACK_KIB = 16 * 1024


def one_request(client, url, rng, i):
    """Sends one request; returns 'ok' or '429', raises on anything else."""
    chat = rng.random() < 0.5
    stream = rng.random() < 0.5
    body = {"max_tokens": rng.randint(1, 24), "stream": stream, "temperature": rng.choice([0, 0.8]), "seed": i}
    if chat:
        path = "/v1/chat/completions"
        body["messages"] = [{"role": "user", "content": f"Request {i}: say something."}]
    else:
        path = "/v1/completions"
        body["prompt"] = f"Request {i}: the weather today is"
    if not stream:
        r = client.post(url + path, json=body)
        if r.status_code == 429:
            assert r.headers.get("retry-after", "").isdigit(), f"429 without Retry-After: {r.headers}"
            return "429"
        assert r.status_code == 200, f"status {r.status_code}: {r.text[:300]}"
        assert r.json()["choices"][0]["finish_reason"] in ("stop", "length"), r.text[:300]
        return "ok"
    with client.stream("POST", url + path, json=body) as r:
        if r.status_code == 429:
            assert r.headers.get("retry-after", "").isdigit(), f"429 without Retry-After: {r.headers}"
            r.read()
            return "429"
        assert r.status_code == 200, f"status {r.status_code}"
        finish, done = None, False
        for data in sse_events(r):
            if data == "[DONE]":
                done = True
                continue
            chunk = json.loads(data)
            assert "error" not in chunk, chunk
            for c in chunk["choices"]:
                finish = c["finish_reason"] or finish
        assert done and finish in ("stop", "length"), f"stream ended without [DONE]/finish_reason ({finish})"
        return "ok"


def client_loop(url, k, deadline, counts, errors, lock):
    rng = random.Random(k)
    with httpx.Client(timeout=120) as client:
        i = 0
        while time.monotonic() < deadline:
            i += 1
            try:
                outcome = one_request(client, url, rng, k * 100_000 + i)
            except Exception as e:  # noqa: BLE001 - collected and reported by the test
                with lock:
                    errors.append(f"client {k} request {i}: {e!r}")
                return
            with lock:
                counts[outcome] += 1
            if outcome == "429":
                time.sleep(rng.uniform(0.1, 0.5))  # sooner than Retry-After: keep the pressure on


def test_32_clients_against_8_slots_and_16_queued(start_server):
    server = start_server("--parallel", "8", "--max-queue", "16", "-c", "256")
    # Warm every slot to the deepest context the load reaches, so the KV pages it touches are
    # resident before memory is watched.
    warm = [threading.Thread(target=lambda: httpx.post(
        f"{server.url}/v1/chat/completions", timeout=300,
        json={"messages": [{"role": "user", "content": "Request 1000000: say something."}], "max_tokens": 24,
              "temperature": 0})) for _ in range(8)]
    for t in warm:
        t.start()
    for t in warm:
        t.join()
    counts, errors, lock = {"ok": 0, "429": 0}, [], threading.Lock()
    start = time.monotonic()
    deadline = start + SECONDS
    threads = [threading.Thread(target=client_loop, args=(server.url, k, deadline, counts, errors, lock))
               for k in range(CLIENTS)]
    for t in threads:
        t.start()
    rss = []  # (seconds since start, KiB)
    while any(t.is_alive() for t in threads):
        rss.append((time.monotonic() - start, server.rss_kib()))
        assert time.monotonic() < deadline + 150, "clients still running 150 s past the deadline: hung requests"
        time.sleep(1)
    print(f"load: {counts} in {time.monotonic() - start:.0f} s; RSS samples (s, KiB): {rss[::5]}")
    assert not errors, "\n".join(errors[:20])
    assert counts["ok"] >= CLIENTS, f"too few requests completed: {counts}"

    m = server.metrics()
    assert m["aether_busy_slots"] == 0 and m["aether_queue_depth"] == 0, m
    assert not server.new_fives(), f"5xx answers: {server.new_fives()}"

    warm = [kib for t, kib in rss if t >= SECONDS / 3]
    assert len(warm) >= 3, f"too few RSS samples after warm-up: {rss}"
    growth = max(warm) - warm[0]
    assert growth <= RSS_SLACK_KIB, f"RSS grew {growth} KiB after warm-up (samples {warm})"
