#!/usr/bin/env bash
# aether-llm beside wllama in headless Debian chromium (bench.mjs): installs chromium and the
# pinned npm packages (package-lock.json: @wllama/wllama, playwright-core), builds the npm package
# unless AETHER_PKG names a built one, fetches the default model, and prints the table for
# docs/PERF.md. A benchmark, not a test: CI does not run it. RUNS and MAX_TOKENS as bench.mjs.
set -euo pipefail
cd "$(dirname "$0")/../../.."
here=tests/browser/bench

sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
need=()
[ -n "${CHROMIUM:-}" ] || command -v chromium >/dev/null || need+=(chromium)
command -v node >/dev/null || need+=(nodejs npm)
if [ ${#need[@]} -gt 0 ]; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
[ -f $here/node_modules/@wllama/wllama/package.json ] || (cd $here && npm ci --no-audit --no-fund)
bash scripts/fetch-models.sh
[ -n "${AETHER_PKG:-}" ] || bash scripts/build-web.sh
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores" >&2
node $here/bench.mjs
