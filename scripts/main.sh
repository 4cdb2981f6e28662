#!/usr/bin/env bash
# Fresh-machine main job: sets up .venv, runs the foundation checks (TopPopular/Random vs the
# paper), then reproduces the paper's Table 3 with our own 35-trial seeded search per model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "dev"
# Data: a mirror only when given or present at ../shared/data, else verified downloads.
source scripts/data-env.sh
.venv/bin/recforge reproduce toppop-checks --out results/toppop-checks "$@"
.venv/bin/recforge reproduce table3 --budget 35 --out results/table3 "$@"
