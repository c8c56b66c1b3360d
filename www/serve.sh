#!/usr/bin/env bash
# Sets up, builds and serves the Tessera app on http://127.0.0.1:8080
# (the demo tissue is one click away on the page).
set -euo pipefail
source "$(dirname "$0")/../.ci/setup.sh"
build_app
cd "$ROOT"
PORT="${PORT:-8080}"
say "serving dist/ — open http://127.0.0.1:$PORT/"
exec trunk serve --release --offline --no-autoreload --port "$PORT" --address 127.0.0.1
