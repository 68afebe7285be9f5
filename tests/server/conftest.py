"""Fixtures for the acceptance tests of `aether serve`: real server processes on free loopback
ports, on the CPU, with the default model.

`Server` starts `aether serve` with the given flags, waits for /health to say 200 and stops it
with SIGTERM (its exit status is checked by the tests that care). `server` is one shared
instance for the tests that do not need flags of their own. The binary is $AETHER_BIN, else
debug/aether in $CARGO_TARGET_DIR or this checkout's target/ (run.sh builds it).
"""

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("AETHER_BIN", ROOT / os.environ.get("CARGO_TARGET_DIR", "target") / "debug" / "aether"))
MODEL_ID = "SmolLM2-135M-Instruct.Q4_1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `aether serve` process."""

    def __init__(self, *flags: str, ready_timeout: float = 120.0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="aether-serve-", suffix=".log", delete=False)
        args = [str(BIN), "serve", "--cpu", "--port", str(self.port), *flags]
        key = flags[flags.index("--api-key") + 1] if "--api-key" in flags else None
        self.auth = {"authorization": f"Bearer {key}"} if key else {}
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + ready_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"aether serve exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"aether serve not ready in {ready_timeout} s:\n{self.output()}")
            time.sleep(0.1)
        # The 503s of /health while the model loaded are the only 5xx a test may find.
        self.fives_at_start = self.fives()

    def fives(self) -> dict:
        """5xx answers counted by the server, by status."""
        return {k: v for k, v in self.metrics().items() if k.startswith('aether_requests_total{status="5')}

    def new_fives(self) -> dict:
        """5xx answers since the server became ready."""
        before = self.fives_at_start
        return {k: v - before.get(k, 0) for k, v in self.fives().items() if v != before.get(k, 0)}

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def metrics(self) -> dict:
        """The Prometheus samples, name (with labels) -> value."""
        r = httpx.get(f"{self.url}/metrics", headers=self.auth, timeout=10)
        assert r.status_code == 200, f"/metrics: {r.status_code} {r.text[:200]}"
        text = r.text
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, then the exit status (SIGKILL and an error past `timeout`)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError(f"aether serve ignored SIGTERM for {timeout} s:\n{self.output()}")
        return self.proc.returncode


@pytest.fixture(scope="session")
def server():
    """The shared server: 4 slots, a 512-token context, the source demo site at /."""
    s = Server("--parallel", "4", "-c", "512", "--www", "www")
    yield s
    assert s.stop() == 0, s.output()


@pytest.fixture
def start_server():
    """Starts servers with the given flags; stops (and checks) those still running at the end."""
    started = []

    def start(*flags: str) -> Server:
        s = Server(*flags)
        started.append(s)
        return s

    yield start
    for s in started:
        if s.proc.poll() is None:
            assert s.stop() == 0, s.output()


def sse_events(response: httpx.Response):
    """The `data:` payloads of a streamed response, as they arrive."""
    for line in response.iter_lines():
        if line.startswith("data: "):
            yield line[len("data: "):]
