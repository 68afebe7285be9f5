"""Clients that go away mid-answer free their slots: 50 of them drop streams (chat and text)
after the first generated text, a few drop non-streamed requests while they run; afterwards
/metrics shows every slot free and nothing queued, and the next request is answered as it was
before (same greedy text), so no half-finished sequence left anything behind."""

import json
import socket
import threading
import time

import httpx

from conftest import sse_events

PROMPT = "The capital of France is"


def greedy(server):
    r = httpx.post(f"{server.url}/v1/completions", json={"prompt": PROMPT, "max_tokens": 12, "temperature": 0},
                   timeout=120)
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["text"]


def drop_stream(server, i, errors):
    """Streams a long answer and hangs up after the first generated text."""
    if i % 2:
        path, body = "/v1/chat/completions", {"messages": [{"role": "user", "content": f"Story {i}:"}]}
    else:
        path, body = "/v1/completions", {"prompt": f"Story {i}: once upon a time"}
    body.update(stream=True, max_tokens=400, temperature=0.7, seed=i)
    try:
        with httpx.stream("POST", server.url + path, json=body, timeout=120) as r:
            if r.status_code != 200:
                errors.append(f"client {i}: status {r.status_code}")
                return
            for data in sse_events(r):
                choices = json.loads(data)["choices"] if data != "[DONE]" else []
                if choices and (choices[0].get("text") or (choices[0].get("delta") or {}).get("content")):
                    return  # the with-block closes the connection mid-stream
            errors.append(f"client {i}: the stream ended before it could be dropped")
    except Exception as e:  # noqa: BLE001 - reported, not raised, from a thread
        errors.append(f"client {i}: {e!r}")


def drop_waiting(server, i):
    """Sends a non-streamed request on a raw socket and closes it before the answer."""
    body = f'{{"prompt":"Tale {i}:","max_tokens":400}}'.encode()
    head = (f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(head + body)
        time.sleep(0.5)


def test_dropped_clients_free_their_slots(start_server):
    server = start_server("--parallel", "4", "-c", "512", "--max-queue", "64")
    before = greedy(server)
    errors = []
    threads = [threading.Thread(target=drop_stream, args=(server, i, errors)) for i in range(50)]
    threads += [threading.Thread(target=drop_waiting, args=(server, i)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
        assert not t.is_alive(), "a client hung"
    assert not errors, "\n".join(errors)

    deadline = time.monotonic() + 30
    while True:
        m = server.metrics()
        if m["aether_busy_slots"] == 0 and m["aether_queue_depth"] == 0:
            break
        assert time.monotonic() < deadline, f"slots still busy 30 s after the clients left: {m}"
        time.sleep(0.2)
    assert m["aether_cancelled_total"] >= 50, f"only {m['aether_cancelled_total']} cancellations counted"
    assert m["aether_kv_cache_tokens"] == 0
    assert greedy(server) == before, "the answer after the disconnects differs"
