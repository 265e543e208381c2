#!/usr/bin/env bash
# mypy cannot follow setuptools' editable finder for the atp.* -> folder mapping, so it
# reads the sources through a tree of symlinks that spells the installed layout.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .typecheck/atp
for d in core plugins adapters sdk; do ln -sfn "../../$d" ".typecheck/atp/$d"; done
exec "${PYTHON:-.venv/bin/python}" -m mypy -p atp.core -p atp.plugins -p atp.adapters -p atp.sdk -p chaos "$@"
