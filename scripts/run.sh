#!/usr/bin/env bash
# Sets up, builds and runs impactd with embedded defaults: a private PostgreSQL under data/, the
# simulated carrier, HTTP on 127.0.0.1:8080 and HTTPS (HTTP/2) on 127.0.0.1:8443. The dev API key
# is printed and kept in data/dev-credentials.env. Extra arguments go to impactd.
#
# Beside it, scripts/demo.py makes (once) a demo campaign and a caller through the API and prints
# how to log in to the ImpactDialer app at /app/. Ctrl-C stops impactd cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh release
build/bin/impactd "$@" &
impactd=$!
trap 'kill -TERM "$impactd" 2>/dev/null || true' INT TERM
python3 scripts/demo.py "$@" || echo "run: the demo campaign was not set up; the server runs without it" >&2
status=0
while kill -0 "$impactd" 2>/dev/null; do
    wait "$impactd" || status=$?
done
exit "$status"
