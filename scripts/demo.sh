#!/usr/bin/env bash
# The main job on an embedded default: venv, a local Elasticsearch (scripts/es.py, server
# "demo" on 127.0.0.1:9200), generated sample model logs, the agent shipping them, a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/python scripts/es.py start demo >/dev/null
exec .venv/bin/python scripts/demo.py
