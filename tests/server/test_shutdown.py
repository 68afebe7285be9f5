"""Graceful shutdown: SIGTERM while streams run stops new connections, lets the running streams
finish (or, past --shutdown-timeout, ends them with an error event and `[DONE]`) and exits 0."""

import json
import signal
import threading
import time

import httpx
import pytest

from conftest import sse_events


def stream(server, max_tokens, first, out):
    """Streams a completion; sets `first` at the first event; appends (events, error) to out."""
    events = []
    try:
        body = {"prompt": "Once upon a time", "max_tokens": max_tokens, "temperature": 0, "stream": True}
        with httpx.stream("POST", f"{server.url}/v1/completions", json=body, timeout=120) as r:
            assert r.status_code == 200, r.status_code
            for data in sse_events(r):
                events.append(data)
                first.set()
        out.append((events, None))
    except Exception as e:  # noqa: BLE001 - reported by the test
        out.append((events, e))
    finally:
        first.set()


def run_streams(server, n, max_tokens):
    out, threads = [], []
    for _ in range(n):
        first = threading.Event()
        t = threading.Thread(target=stream, args=(server, max_tokens, first, out))
        t.start()
        assert first.wait(60), "no first event within 60 s"
        threads.append(t)
    return out, threads


def test_sigterm_lets_running_streams_finish(start_server):
    server = start_server("--parallel", "4", "-c", "512")
    out, threads = run_streams(server, 3, 48)
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/health", timeout=5)  # the listener is closed
    for t in threads:
        t.join(120)
    assert server.proc.wait(60) == 0, server.output()
    assert len(out) == 3
    for events, err in out:
        assert err is None, f"a stream broke: {err!r}"
        assert events[-1] == "[DONE]", events[-3:]
        last = json.loads(events[-2])
        assert last["choices"][0]["finish_reason"] == "length", last
        assert last["usage"]["completion_tokens"] == 48, "the stream did not run to its end"


def test_streams_past_the_grace_period_end_cleanly(start_server):
    server = start_server("--parallel", "2", "-c", "512", "--shutdown-timeout", "1")
    out, threads = run_streams(server, 2, 500)
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(60)
    assert server.proc.wait(30) == 0, server.output()
    assert time.monotonic() - t0 < 15, "shutdown took longer than the grace period allows"
    for events, err in out:
        assert err is None, f"a stream broke instead of ending: {err!r}"
        assert events[-1] == "[DONE]", events[-3:]
        last = json.loads(events[-2])
        if "error" in last:
            assert last["error"]["code"] == "server_shutting_down", last
        else:  # it finished within the second
            assert last["choices"][0]["finish_reason"] in ("stop", "length"), last


def test_sigterm_when_idle_exits_0_at_once(start_server):
    server = start_server("-c", "256")
    t0 = time.monotonic()
    assert server.stop(timeout=10) == 0, server.output()
    assert time.monotonic() - t0 < 5
