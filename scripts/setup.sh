#!/usr/bin/env bash
# Creates .venv and installs shipper with its test tools (builds the Cython extension).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'
.venv/bin/python -c "import _fastparse; print('shipper installed; parser implementation:', _fastparse.IMPLEMENTATION)"
