#!/bin/bash
# On the GPU machine (device tool, carry [".gpu"]): install the carried wheels, unpack the
# data, run experiments/gpu/check.py; results land in $OUT.
set -uo pipefail
export PYTHONUNBUFFERED=1 WANDB_MODE=offline HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python3 -m pip install --quiet --no-index --no-deps --no-build-isolation .gpu/wheels/* 2>&1 | tail -3
mkdir -p /tmp/gnnrec-data && tar -C /tmp/gnnrec-data -xJf .gpu/data.tar.xz
export GNNREC_DATA_DIR=/tmp/gnnrec-data GNNREC_CACHE_DIR=/tmp/gnnrec-cache GNNREC_LOG_DIR=$OUT/runs
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee $OUT/gpu.txt
PYTHONPATH=$PWD python3 experiments/gpu/check.py --out $OUT ${GPU_CHECK_ARGS:-} 2>&1 | tee $OUT/log.txt
