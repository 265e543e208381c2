#!/usr/bin/env bash
# Run `atp dev` (worker + scheduler + the web console on the embedded SQLite platform, the demo app by
# default), setting up .venv first if needed. Arguments go to `atp dev`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/_venv.sh

ensure_venv http  # the console (FastAPI, Jinja2) that `atp dev` serves
exec "$VENV/bin/atp" dev "$@"
