#!/usr/bin/env bash
# The test command: installs what it needs, starts the local Elasticsearch, runs the suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -m "not integration").
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/python scripts/es.py fetch
.venv/bin/ruff check shipper _fastparse tests scripts benchmarks
.venv/bin/mypy
scripts/c_warnings.sh
# The compiled parser must be the one loaded when it was built (the suite also runs the twin).
export SHIPPER_REQUIRE_EXTENSIONS=1
exec .venv/bin/python -m pytest "$@"
