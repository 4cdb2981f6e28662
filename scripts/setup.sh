#!/usr/bin/env bash
# Create (or reuse) .venv and install recforge with the extras given as $1 (default: dev).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-dev}"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
.venv/bin/pip install -q -e ".[${extras}]"
