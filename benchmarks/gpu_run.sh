#!/usr/bin/env bash
# Runs on the lent GPU machine, in the repository root, after benchmarks/gpu_prepare.sh here:
# installs the carried wheels, checks torch sees the GPU, then bench_neural_gpu.py within a budget
# that leaves the call time to return (GPU_BUDGET seconds, default 330). Results land in $OUT.
set -uo pipefail
out=${OUT:-benchmarks/results}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 RECFORGE_DATA_MIRROR=$PWD/.gpudata
nvidia-smi --query-gpu=name,memory.used,memory.total,driver_version --format=csv
python3 -c "import torch, numpy, numba, recforge.models.torch; print('torch', torch.__version__,
'cuda', torch.cuda.is_available(), 'numpy', numpy.__version__, 'numba', numba.__version__)" || exit 4
budget=${GPU_BUDGET:-330}
timeout $((budget + 20)) python3 benchmarks/bench_neural_gpu.py --budget "$budget" --threads 8 \
    --out "$out" "$@" 2>&1 | tee "$out/neural_gpu.log"
