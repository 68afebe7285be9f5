"""The official `openai` npm client from Node does one streaming chat (node/chat.mjs; run.sh
installs the pinned client with `npm ci`)."""

import os
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent / "node"


def test_node_openai_client_streams_a_chat(server):
    assert (HERE / "node_modules" / "openai").is_dir(), "run `npm ci` in tests/server/node (run.sh does)"
    r = subprocess.run(["node", "chat.mjs"], cwd=HERE, env={**os.environ, "AETHER_URL": server.url},
                       capture_output=True, text=True, timeout=180)
    print(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
