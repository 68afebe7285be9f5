"""`schemathesis` fuzzes every operation of /openapi.json with valid and invalid requests and
checks each answer: no 5xx, statuses, content types, headers and bodies as documented, invalid
requests refused and valid ones accepted, 405 with Allow for other methods.

Bounded: a fixed seed (the same requests every run), few examples per operation, and a server
whose --max-tokens 4 keeps each generation short. Its context (2048) is longer than any prompt
the fuzzer draws with this seed, since the document cannot state a token count."""

import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = os.environ.get("AETHER_SCHEMATHESIS_EXAMPLES", "20")


def test_openapi_document_holds(start_server, tmp_path):
    server = start_server("--parallel", "2", "-c", "2048", "--max-tokens", "4")
    st = Path(sys.executable).with_name("st")
    args = [str(st), "run", f"{server.url}/openapi.json", "--checks", "all", "--max-examples", EXAMPLES,
            "--seed", "1", "--workers", "1", "--request-timeout", "60", "--max-response-time", "60", "--no-color"]
    r = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    report = r.stdout + r.stderr
    print(report[-3000:])
    assert r.returncode == 0, f"schemathesis found problems:\n{report[-20000:]}"
    assert "No issues found" in report, report[-3000:]
