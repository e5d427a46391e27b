"""Fault injection: ``kill -9`` of a real training process, then ``trainer.resume``.

``python -m gnnrec.train`` trains a small MF on MovieLens-100K in deterministic mode with
checkpoints, a per-step warmup-cosine learning rate and gradient clipping. One run is left alone; a second, identical one is killed with SIGKILL at a
seeded random moment after the checkpoint of a seeded random epoch ``k`` has appeared,
then resumed in place with ``trainer.resume=<its run folder>``. The resumed run must end
exactly where the uninterrupted one ends: the same metrics, history, per-user rows,
recommendations and checkpoints (weights, optimizer, scheduler and sampler state), bit
for bit.
Where the kill lands (an epoch, a validation, a checkpoint or history write) varies with
the machine's speed; what is asserted does not.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from gnnrec.errors import GnnrecError
from gnnrec.utils.io import load_checkpoint

pytestmark = pytest.mark.slow  # three processes of about 10 s each

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 12
KILL_SEED = 3
"""Seeds the epoch after whose checkpoint the run is killed, and the delay after it."""
TIMEOUT_S = 600


def overrides(cache_dir: Path) -> list[str]:
    return [
        "data=ml100k",
        "model=mf",
        "model.embedding_dim=16",
        f"trainer.max_epochs={EPOCHS}",
        "trainer.batch_size=1024",
        "trainer.patience=0",
        "scheduler=warmup_cosine",
        "scheduler.warmup=50",
        "scheduler.eta_min=1e-4",
        "trainer.grad_clip=1.0",
        "trainer.checkpoint=true",
        "trainer.progress=false",
        "deterministic=true",
        "device=cpu",
        "tracker=none",
        "eval.ks=[10,20]",
        "eval.sampled_negatives=0",
        f"paths.cache_dir={cache_dir}",
    ]


def start(run_dir: Path, cache_dir: Path, *extra: str) -> tuple[subprocess.Popen, Path]:
    """``python -m gnnrec.train`` into ``run_dir``, its output in ``<run_dir>.log``."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "HYDRA_FULL_ERROR": "1",
    }
    log = run_dir.with_suffix(".log")
    cmd = [
        sys.executable,
        "-m",
        "gnnrec.train",
        *overrides(cache_dir),
        *extra,
        f"hydra.run.dir={run_dir}",
    ]
    with log.open("a") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    return proc, log


def finish(proc: subprocess.Popen, log: Path) -> None:
    assert proc.wait(timeout=TIMEOUT_S) == 0, log.read_text()[-3000:]


def checkpoint_epoch(run_dir: Path) -> int:
    """The epoch of ``checkpoints/last.pt`` (-1 while there is none)."""
    try:
        return int(load_checkpoint(run_dir / "checkpoints" / "last.pt")["epoch"])
    except (FileNotFoundError, GnnrecError):
        return -1


def without_times(record: dict) -> dict:
    """A metrics or history record without wall-clock times and the config fingerprint.

    The resumed run's config also holds ``trainer.resume``, so its fingerprint differs.
    """
    return {
        k: v for k, v in record.items() if not k.startswith("time/") and k != "config_fingerprint"
    }


def assert_identical(a, b, where: str) -> None:
    """Tensors, numbers, strings, lists and dicts equal bit for bit (NaN equals NaN)."""
    assert type(a) is type(b), where
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            assert_identical(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_identical(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and a != a:
        assert b != b, where
    else:
        assert a == b, where


def test_a_run_killed_after_a_checkpoint_resumes_bit_exact(tmp_path, data_root):
    cache = tmp_path / "cache"
    full, killed = tmp_path / "full", tmp_path / "killed"
    proc, log = start(full, cache)  # also builds the processed-data cache for the others
    finish(proc, log)
    done = json.loads((full / "metrics.json").read_text())
    epoch_s = (done["time/train_s"] + done["time/val_s"]) / EPOCHS  # training and validation

    # kill within about one epoch after the checkpoint of epoch k appears
    rng = random.Random(KILL_SEED)
    k = rng.randint(1, EPOCHS // 2)
    delay_s = rng.random() * epoch_s
    proc, log = start(killed, cache)
    deadline = time.monotonic() + TIMEOUT_S
    while checkpoint_epoch(killed) < k:
        assert proc.poll() is None, f"the run ended before epoch {k}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no checkpoint of epoch {k} in time"
        time.sleep(0.005)
    time.sleep(delay_s)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL, "the run finished before the kill"
    at = checkpoint_epoch(killed)
    assert k <= at < EPOCHS - 1, f"killed after epoch {at}; nothing left to resume"
    assert not (killed / "metrics.json").exists()

    proc, log = start(killed, cache, f"trainer.resume={killed}")
    finish(proc, log)
    assert f"at epoch {at + 1}" in log.read_text().split("resumed from", 1)[1].splitlines()[0]

    metrics = [json.loads((d / "metrics.json").read_text()) for d in (full, killed)]
    assert without_times(metrics[1]) == without_times(metrics[0])
    assert metrics[1]["epochs"] == EPOCHS
    history = [json.loads((d / "history.json").read_text()) for d in (full, killed)]
    assert [without_times(r) for r in history[1]] == [without_times(r) for r in history[0]]
    pd.testing.assert_frame_equal(
        pd.read_parquet(killed / "per_user.parquet"), pd.read_parquet(full / "per_user.parquet")
    )
    assert (killed / "examples.csv").read_bytes() == (full / "examples.csv").read_bytes()
    for name in ("last.pt", "best.pt"):
        ours, theirs = (load_checkpoint(d / "checkpoints" / name) for d in (killed, full))
        for key in ("history", "train_time_s", "eval_time_s"):  # wall-clock times inside
            ours.pop(key, None), theirs.pop(key, None)
        assert_identical(ours, theirs, name)
