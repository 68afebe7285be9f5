#!/usr/bin/env bash
# The acceptance tests of `aether serve` in one command: real server processes on loopback, on
# the CPU, with the default model, driven by the official `openai` Python client, the `openai`
# npm client, schemathesis, and plain httpx for the bad-input table, disconnects, load and
# shutdown (see the docstring of each tests/server/test_*.py).
#
# Installs what it needs on a fresh Debian machine: python3-venv and nodejs/npm through apt (root
# or sudo), the pinned Python packages (requirements.txt) into tests/server/.venv, the pinned npm
# client (node/package-lock.json) into tests/server/node/node_modules, and the default model.
# Builds target/debug/aether unless AETHER_BIN names a binary. Arguments go to pytest
# (e.g. `-k logprobs`, `-x`). AETHER_LOAD_SECONDS shortens the load test (default 60).
set -euo pipefail
cd "$(dirname "$0")/../.."
here=tests/server

sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
need=()
command -v python3 >/dev/null || need+=(python3)
# Debian's python3 lacks venv/ensurepip until python3-venv is installed.
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# The venv is rebuilt when requirements.txt changes (its hash is kept beside it).
venv=$here/.venv
stamp=$(sha256sum $here/requirements.txt | cut -d' ' -f1)
if [ "$(cat $venv/.requirements 2>/dev/null)" != "$stamp" ]; then
  rm -rf $venv
  python3 -m venv $venv
  $venv/bin/pip install -q --disable-pip-version-check -r $here/requirements.txt
  echo "$stamp" > $venv/.requirements
fi
if [ ! -f $here/node/node_modules/openai/package.json ] ||
  ! grep -q "\"version\": \"$(node -p 'require("./'$here'/node/package.json").dependencies.openai')\"" \
    $here/node/node_modules/openai/package.json; then
  (cd $here/node && npm ci --no-audit --no-fund)
fi

bash scripts/fetch-models.sh
if [ -z "${AETHER_BIN:-}" ]; then
  cargo build -q -p aether
else
  AETHER_BIN=$(realpath "$AETHER_BIN"); export AETHER_BIN  # pytest runs in tests/server
fi

t0=$(date +%s)
(cd $here && .venv/bin/python -m pytest "$@")
echo "server tests: $(($(date +%s) - t0)) s" >&2
