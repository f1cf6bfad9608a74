#!/usr/bin/env bash
# Sets up, builds and runs impactd with embedded defaults: a private PostgreSQL under data/, the
# simulated carrier, HTTP on 127.0.0.1:8080 and HTTPS (HTTP/2) on 127.0.0.1:8443. The dev API key
# is printed and kept in data/dev-credentials.env. Extra arguments go to impactd.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh release
exec build/bin/impactd "$@"
