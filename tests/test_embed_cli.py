"""``gnnrec-embed`` on real MovieLens-100K: computes once, then loads; runs find its file."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from gnnrec.config import compose_config
from gnnrec.data.cache import load_dataset
from gnnrec.embed import embed
from gnnrec.features import item_embeddings

pytestmark = pytest.mark.usefixtures("offline_hub")

SCRIPT = Path(sys.executable).with_name("gnnrec-embed")


def run_embed(cwd: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    return subprocess.run(
        [str(SCRIPT), *overrides],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_embed_computes_then_loads_the_file_a_run_uses(tmp_path, data_root, monkeypatch):
    if not SCRIPT.exists():
        pytest.skip(f"{SCRIPT} is not installed; run `pip install -e .`")
    cache = tmp_path / "cache"
    work = tmp_path / "cwd"
    work.mkdir()
    args = ["data=ml100k", f"paths.cache_dir={cache}", f"paths.data_dir={data_root}"]

    first = run_embed(work, *args)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "ml100k items: 1682 x 384 embeddings computed" in first.stdout
    second = run_embed(work, *args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "ml100k items: 1682 x 384 embeddings loaded" in second.stdout
    assert list(work.iterdir()) == []  # no run folder, .hydra/ or log file

    files = sorted((cache / "embeddings").glob("items-*.npy"))
    assert len(files) == 1 and str(files[0]) in second.stdout
    # What a training run calls (gnnrec.run: item_embeddings) finds the same file.
    monkeypatch.setattr(
        "gnnrec.features.encoder.TextEncoder.encode",
        lambda *a, **k: pytest.fail("gnnrec-embed should have filled the cache"),
    )
    cfg = compose_config(args)
    data = load_dataset(
        instantiate(cfg.data.source),
        preprocess=OmegaConf.to_container(cfg.data.preprocess),
        cache_dir=cfg.paths.cache_dir,
    )
    emb = item_embeddings(data, cfg.data.text.template, instantiate(cfg.encoder), cache)
    torch.testing.assert_close(emb, torch.from_numpy(np.load(files[0])), rtol=0, atol=0)
    assert emb.shape == (data.num_items, 384)


def test_embed_with_encoder_none_fails_clearly(tmp_path):
    cfg = compose_config(["encoder=none", f"paths.cache_dir={tmp_path}"])
    with pytest.raises(ValueError, match="encoder=none is selected.*encoder=minilm"):
        embed(cfg)
