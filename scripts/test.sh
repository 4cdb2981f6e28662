#!/usr/bin/env bash
# Fresh-machine test command: sets up .venv with every extra and runs lint + the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "dev,ray"
export RECFORGE_DATA_MIRROR="${RECFORGE_DATA_MIRROR:-$(cd .. && pwd)/shared/data}"
.venv/bin/ruff check src tests benchmarks
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
