"""A run knows what it is: resumes never mix runs, run folders are never reused by mistake.

Real runs on MovieLens-100K made tiny by overrides.
"""

import json
import math
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from omegaconf import OmegaConf

from gnnrec.api import compose, train
from gnnrec.data.fingerprint import split_fingerprint
from gnnrec.errors import ConfigError
from gnnrec.report import load_runs
from gnnrec.run import load_split, run
from gnnrec.track.run_folder import config_fingerprint

TINY = [
    "data=ml100k",
    "model=mf",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=2",
    "trainer.progress=false",
    "tracker=none",
    "eval.sampled_negatives=0",
]
MIX = (
    "Continuing it would mix two runs (another split puts this run's test pairs among the "
    "checkpoint's training pairs). Start a fresh run without trainer.resume, or set "
    "trainer.resume_mismatch=allow if the change is intended"
)


def refused_folder(folder):
    return (
        f"{folder} already holds a finished run (metrics.json); a second run there would mix "
        "the two runs' files. Choose a new folder (hydra.run.dir=..., or output_dir= of "
        f"gnnrec.api.train), continue that run with trainer.resume={folder}, or replace it "
        "with overwrite=true"
    )


@pytest.fixture(scope="module")
def overrides(tmp_path_factory, data_root):
    cache = tmp_path_factory.mktemp("cache")
    return [*TINY, f"paths.cache_dir={cache}"]


@pytest.fixture(scope="module")
def finished(overrides, tmp_path_factory):
    """A finished seed=0 run of two epochs; tests copy it before changing it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    train([*overrides, "seed=0"], output_dir=out)
    return out


def copy_of(run_dir, tmp_path):
    return shutil.copytree(run_dir, tmp_path / "copy", symlinks=True)


def epochs_of(run_dir):
    return [r["epoch"] for r in json.loads((run_dir / "history.json").read_text())]


def test_resume_under_another_seed_is_refused_naming_it(overrides, finished, tmp_path):
    saved = pd.read_parquet(finished / "per_user.parquet")["split_fingerprint"].iloc[0]
    data, split = load_split(compose([*overrides, "seed=1"]))
    other = split_fingerprint(data, split)
    assert other != saved
    with pytest.raises(ConfigError) as err:
        train([*overrides, "seed=1", f"trainer.resume={finished}"], output_dir=tmp_path / "r")
    assert str(err.value) == (
        f"trainer.resume={finished}: checkpoint {finished}/checkpoints/last.pt was trained on "
        "another setup than this run: seed: checkpoint 0, this run 1; data.split.seed: "
        "checkpoint 0, this run 1; sampler.seed: checkpoint 0, this run 1; split_fingerprint: "
        f"checkpoint {saved}, this run {other}. {MIX}"
    )
    assert not (tmp_path / "r" / "metrics.json").exists()


def test_resume_under_another_model_config_is_refused(overrides, finished, tmp_path):
    with pytest.raises(ConfigError) as err:
        train([*overrides, "model.init_std=0.2", f"trainer.resume={finished}"], tmp_path / "r")
    assert str(err.value) == (
        f"trainer.resume={finished}: checkpoint {finished}/checkpoints/last.pt was trained on "
        f"another setup than this run: model.init_std: checkpoint 0.1, this run 0.2. {MIX}"
    )


def test_resume_under_another_scheduler_or_clipping_is_refused(overrides, finished, tmp_path):
    with pytest.raises(ConfigError) as err:
        args = ["scheduler=plateau", "trainer.grad_clip=1.0", f"trainer.resume={finished}"]
        train([*overrides, *args], tmp_path / "r")
    assert str(err.value) == (
        f"trainer.resume={finished}: checkpoint {finished}/checkpoints/last.pt was trained on "
        "another setup than this run: scheduler._target_: checkpoint gnnrec.train.Schedule, "
        "this run gnnrec.train.PlateauSchedule; scheduler.factor: checkpoint (not set), this "
        "run 0.5; scheduler.patience: checkpoint (not set), this run 5; scheduler.threshold: "
        "checkpoint (not set), this run 0.0001; scheduler.cooldown: checkpoint (not set), "
        "this run 0; scheduler.min_lr: checkpoint (not set), this run 0.0; trainer.grad_clip: "
        f"checkpoint None, this run 1.0. {MIX}"
    )


def test_a_killed_cosine_run_resumes_to_the_same_rates_and_metrics(overrides, tmp_path):
    args = [*overrides, "trainer.max_epochs=3", "scheduler=cosine", "scheduler.eta_min=1e-4"]
    full = train([*args, "optimizer.lr=1e-2"], output_dir=tmp_path / "full")
    history = json.loads((tmp_path / "full" / "history.json").read_text())
    # 3 epochs of 2 steps: the rate of each epoch's first step, by the cosine formula
    expected = [1e-4 + (1e-2 - 1e-4) * (1 + math.cos(math.pi * 2 * e / 6)) / 2 for e in range(3)]
    assert [r["train/lr"] for r in history] == pytest.approx(expected, rel=1e-12)
    # the same run stopped after its first epoch's checkpoint (by the time budget, which
    # is not part of the identity), then resumed in place
    part = tmp_path / "part"
    train([*args, "optimizer.lr=1e-2", "trainer.max_time_min=1e-6"], output_dir=part)
    assert epochs_of(part) == [0]
    resumed = train([*args, "optimizer.lr=1e-2", f"trainer.resume={part}"], output_dir=part)
    assert [r["train/lr"] for r in json.loads((part / "history.json").read_text())] == [
        r["train/lr"] for r in history
    ]
    for key, value in full.items():
        if not key.startswith("time/") and key not in ("config_fingerprint", "stopped_on_time"):
            assert resumed[key] == value, key


def test_resume_with_more_epochs_is_allowed(overrides, finished, tmp_path):
    changed = ["trainer.max_epochs=3", "trainer.patience=5", "trainer.eval_every=1"]
    metrics = train([*overrides, *changed, f"trainer.resume={finished}"], tmp_path / "more")
    assert metrics["epochs"] == 3
    assert epochs_of(tmp_path / "more") == [0, 1, 2]


def test_an_allowed_mismatch_continues_with_a_warning(overrides, finished, tmp_path):
    args = [*overrides, "seed=1", f"trainer.resume={finished}", "trainer.resume_mismatch=allow"]
    with pytest.warns(UserWarning, match=r"resume_mismatch=allow\): seed: checkpoint 0, this"):
        metrics = train([*args, "trainer.max_epochs=3"], output_dir=tmp_path / "allowed")
    assert metrics["epochs"] == 3


def test_a_resume_after_the_last_epoch_writes_the_whole_history(overrides, finished, tmp_path):
    metrics = train([*overrides, f"trainer.resume={finished}"], output_dir=tmp_path / "again")
    assert metrics["epochs"] == 2
    assert epochs_of(tmp_path / "again") == [0, 1]
    history = json.loads((finished / "history.json").read_text())
    assert json.loads((tmp_path / "again" / "history.json").read_text()) == history


def test_metrics_record_the_config_they_were_written_under(finished):
    metrics = json.loads((finished / "metrics.json").read_text())
    config = OmegaConf.load(finished / ".hydra" / "config.yaml")
    assert metrics["config_fingerprint"] == config_fingerprint(config)
    assert not list(finished.rglob("*.tmp"))


def test_a_finished_folder_is_refused_before_anything_in_it_changes(overrides, finished):
    before = {p: p.read_bytes() for p in finished.rglob("*") if p.is_file()}
    with pytest.raises(ConfigError) as err:
        train([*overrides, "model.embedding_dim=8"], output_dir=finished)
    assert str(err.value) == refused_folder(finished)
    with pytest.raises(ConfigError) as err:
        run(compose([*overrides, "model.embedding_dim=8"]), output_dir=finished)
    assert str(err.value) == refused_folder(finished)
    assert {p: p.read_bytes() for p in finished.rglob("*") if p.is_file()} == before


def test_overwrite_replaces_the_whole_earlier_run(overrides, finished, tmp_path):
    folder = copy_of(finished, tmp_path)
    with pytest.warns(UserWarning) as record:
        metrics = train([*overrides, "model=pop"], output_dir=folder, overwrite=True)
    assert (
        f"{folder}: removed metrics.json, history.json, per_user.parquet, examples.csv, "
        "checkpoints of an earlier run"
    ) in [str(w.message) for w in record]
    # pop trains nothing: no checkpoint or history of the mf run is left beside its metrics
    assert sorted(p.name for p in folder.iterdir()) == [
        ".hydra",
        "examples.csv",
        "metrics.json",
        "per_user.parquet",
    ]
    assert OmegaConf.load(folder / ".hydra" / "config.yaml").overwrite is True
    assert json.loads((folder / "metrics.json").read_text()) == pytest.approx(metrics)
    (run_,) = load_runs([folder])
    assert run_.choices["model"] == "pop"


def test_resume_in_place_continues_the_finished_run(overrides, finished, tmp_path):
    folder = copy_of(finished, tmp_path)
    metrics = train([*overrides, "trainer.max_epochs=3", f"trainer.resume={folder}"], folder)
    assert metrics["epochs"] == 3 and epochs_of(folder) == [0, 1, 2]
    config = OmegaConf.load(folder / ".hydra" / "config.yaml")
    assert metrics["config_fingerprint"] == config_fingerprint(config)
    assert load_runs([folder])[0].metrics["epochs"] == 3


def test_the_command_line_refuses_a_finished_folder_and_the_report_its_mix(overrides, tmp_path):
    folder = tmp_path / "run"

    def launch(*extra):
        cmd = [sys.executable, "-m", "gnnrec.train", *overrides, f"hydra.run.dir={folder}"]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        return subprocess.run([*cmd, *extra], capture_output=True, text=True, env=env, timeout=300)

    first = launch("trainer.max_epochs=1")
    assert first.returncode == 0, first.stderr[-3000:]
    metrics = (folder / "metrics.json").read_bytes()
    config = OmegaConf.load(folder / ".hydra" / "config.yaml")
    assert json.loads(metrics)["config_fingerprint"] == config_fingerprint(config)
    assert len(load_runs([folder])) == 1

    second = launch("trainer.max_epochs=1", "model.embedding_dim=8")
    assert second.returncode == 1
    assert second.stderr.strip().splitlines()[-1] == (
        f"gnnrec-train: error: {refused_folder(folder)}"
    )
    assert (folder / "metrics.json").read_bytes() == metrics
    # Hydra rewrote .hydra/ before the run started: the report does not take the old
    # metrics for the new config.
    with pytest.raises(ValueError, match=r"the folder mixes two runs\. Rerun it into a new"):
        load_runs([folder])
