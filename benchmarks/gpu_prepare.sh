#!/usr/bin/env bash
# Prepares a run of bench_neural_gpu.py on the lent GPU machine (benchmarks/README.md, "Neural rows
# on a GPU"): that machine has python3 with a CUDA torch but reaches no package registry and no
# data, so this puts beside the repository (both git-ignored):
#   .whl/      the lab's dependencies its image lacks, as CPython 3.12 x86-64 wheels, at the
#              versions this checkout's .venv runs;
#   .gpudata/  the datasets the cases read, copied from the data mirror (licensed data: never
#              commit it; it travels only to that machine).
# Then the device call is:  run(command="bash benchmarks/gpu_run.sh", carry=[".whl", ".gpudata"])
set -euo pipefail
cd "$(dirname "$0")/.."
mirror=${RECFORGE_DATA_MIRROR:-../shared/data}
[ -x .venv/bin/python ] || { echo "gpu_prepare: no .venv here (bash scripts/test.sh builds it)" >&2; exit 2; }
[ -d "$mirror" ] || { echo "gpu_prepare: no data mirror at $mirror (set RECFORGE_DATA_MIRROR)" >&2; exit 2; }
# What the reproduce commands import that the GPU image (its KINDS.md package list) does not hold,
# plus typer/rich/typing_extensions, whose versions there are unknown and whose APIs the CLI uses.
pkgs=(pydantic pydantic_core annotated-types typing-inspection optuna colorlog cffi pycparser
      typing_extensions typer rich)
pins=$(.venv/bin/python - "${pkgs[@]}" <<'PY'
import sys
from importlib.metadata import version
print(" ".join(f"{p}=={version(p)}" for p in sys.argv[1:]))
PY
)
rm -rf .whl && mkdir .whl
# shellcheck disable=SC2086  # $pins is a list of NAME==VERSION words
.venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl $pins
# The datasets of bench_neural_gpu.py's cases (tables 2, 3, 4, 5, 7, multvae-ml1m, neumf-ml100k).
rm -rf .gpudata && mkdir .gpudata
for d in spectralcf-ml-1m cmn-citeulike-a mcrec-ml-100k movielens-100k cvae-citeulike-a \
         citeulike-a-raw; do
    cp -r "$mirror/$d" .gpudata/
done
chmod -R u+w .gpudata
du -sh .whl .gpudata
