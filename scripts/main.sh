#!/usr/bin/env bash
# Fresh-machine main job: sets up .venv and reproduces the paper's checks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "dev"
export RECFORGE_DATA_MIRROR="${RECFORGE_DATA_MIRROR:-$(cd .. && pwd)/shared/data}"
.venv/bin/recforge reproduce toppop-checks "$@"
