#!/bin/bash
# Build .gpu/ (git-ignored), what the GPU machine lacks: Hydra's wheels, MiniLM in float16
# (the packaged float32 weights exceed the 64 MiB the device tool carries), and the data.
# Then call the device tool's run with carry [".gpu"] and the command
#   bash experiments/gpu/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
DATA=${GNNREC_DATA_DIR:-../shared/data}
rm -rf .gpu && mkdir -p .gpu/wheels
$PY -m pip download --quiet --no-deps -d .gpu/wheels \
    hydra-core==1.3.2 omegaconf==2.3.0 antlr4-python3-runtime==4.9.3
$PY - <<'PYEOF'
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

from gnnrec.features.encoder import minilm_path

src, dst = minilm_path(), Path(".gpu/minilm")
shutil.copytree(src, dst, ignore=shutil.ignore_patterns("model.safetensors", "README.md"))
weights = {k: v.half().contiguous() for k, v in load_file(src / "model.safetensors").items()}
save_file(weights, dst / "model.safetensors", metadata={"format": "pt"})
PYEOF
tar -C "$DATA" -cJf .gpu/data.tar.xz amazon-books-cds-movies gowalla-lightgcn
du -sh .gpu .gpu/*
