"""Real offline W&B runs, checked at the call boundary: what gnnrec hands to W&B's API.

``wandb.init`` and the returned run's ``log``, ``summary.update``, ``log_artifact``,
``save`` and ``finish`` are wrapped (pytest's monkeypatch) to record their arguments
and call through to W&B, so the runs are real and W&B's private log format is never
read back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

wandb = pytest.importorskip("wandb")

from gnnrec.api import train  # noqa: E402
from gnnrec.track import FAST_SETTINGS, WandbTracker  # noqa: E402

OVERRIDES = [
    "data=ml100k",
    "model=mf",
    "encoder=none",
    "task_name=wandb_test",
    "seed=3",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=2",
    "trainer.progress=false",
    "eval.sampled_negatives=0",
    "tracker=wandb",
    "tracker.mode=offline",
    "tracker.log_checkpoint=true",
    "tracker.tags=[team-a]",
]


class Calls:
    """What reached W&B: ``init`` kwargs and the run methods' arguments, in order."""

    def __init__(self) -> None:
        self.init: list[dict] = []
        self.log: list[tuple[dict, int | None]] = []
        self.summary: list[dict] = []
        self.artifacts: list[tuple[object, list[str]]] = []
        self.save: list[str] = []
        self.finish: list[int | None] = []
        self.runs: list[object] = []


def record_wandb(mp: pytest.MonkeyPatch) -> Calls:
    """Wrap W&B's public entry points with ``mp``; every call goes through to W&B."""
    calls = Calls()
    real_init = wandb.init
    run_cls = wandb.Run

    def init(*args, **kwargs):
        calls.init.append(kwargs)
        run = real_init(*args, **kwargs)
        calls.runs.append(run)
        summary_cls = type(run.summary)
        if not getattr(summary_cls.update, "_recorded", False):
            real_update = summary_cls.update

            def update(self, d=None, *a, **kw):
                calls.summary.append(dict(d or {}))
                return real_update(self, d, *a, **kw)

            update._recorded = True
            mp.setattr(summary_cls, "update", update)
        return run

    def wrap(name, record):
        real = getattr(run_cls, name)

        def method(self, *args, **kwargs):
            record(*args, **kwargs)
            return real(self, *args, **kwargs)

        mp.setattr(run_cls, name, method)

    mp.setattr(wandb, "init", init)
    wrap("log", lambda data, step=None, **_: calls.log.append((dict(data), step)))
    wrap(
        "log_artifact",
        lambda artifact, *a, aliases=None, **_: calls.artifacts.append((artifact, aliases)),
    )
    wrap("save", lambda glob_str=None, *a, **_: calls.save.append(str(glob_str)))
    wrap("finish", lambda exit_code=None, **_: calls.finish.append(exit_code))
    return calls


@pytest.fixture(scope="module")
def logged(tmp_path_factory, cache_dir, data_root):
    """``(run folder, metrics, Calls, WANDB_MODE after the run)`` of one real train()."""
    out = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "disabled")  # the tracker's own mode wins, then is restored
        calls = record_wandb(mp)
        metrics = train([*OVERRIDES, f"paths.cache_dir={cache_dir}"], output_dir=out)
        mode_after = os.environ.get("WANDB_MODE")
    return out, metrics, calls, mode_after


def test_wandb_mode_is_restored_after_the_run(logged):
    assert logged[3] == "disabled"


def test_init_gets_the_flat_config_with_overrides_group_and_tags(logged, cache_dir):
    out, _, calls, _ = logged
    (kwargs,) = calls.init
    config = kwargs["config"]
    assert config["model.embedding_dim"] == 64
    assert config["model._target_"] == "gnnrec.models.MF"
    assert config["trainer.max_epochs"] == 2
    assert config["eval.ks"] == [10, 20, 50]
    assert config["seed"] == 3
    assert config["paths.output_dir"] == str(out)
    assert config["overrides"] == [*OVERRIDES, f"paths.cache_dir={cache_dir}"]
    assert not [k for k, v in config.items() if isinstance(v, dict) and v]
    assert (kwargs["mode"], kwargs["group"], kwargs["job_type"]) == (
        "offline",
        "wandb_test",
        "train",
    )
    assert kwargs["tags"] == ["model:MF", "data:ml100k", "target:ml-100k", "team-a"]
    assert kwargs["dir"] == str(out)
    settings = kwargs["settings"]
    assert {k: getattr(settings, k) for k in FAST_SETTINGS} == FAST_SETTINGS


def test_every_epoch_is_logged_with_its_step(logged):
    out, _, calls, _ = logged
    epochs = [(data, step) for data, step in calls.log if "train/loss" in data]
    on_disk = json.loads((out / "history.json").read_text())
    assert [step for _, step in epochs] == [0, 1]
    assert [data for data, _ in epochs] == on_disk


def test_summary_equals_metrics_json(logged):
    out, metrics, calls, _ = logged
    on_disk = json.loads((out / "metrics.json").read_text())
    assert calls.summary == [on_disk]
    assert on_disk == pytest.approx(metrics)
    assert calls.finish == [0]


def test_examples_table_is_examples_csv(logged):
    out, _, calls, _ = logged
    tables = [data["examples"] for data, _ in calls.log if "examples" in data]
    assert len(tables) == 1 and isinstance(tables[0], wandb.Table)
    csv = pd.read_csv(out / "examples.csv", keep_default_na=False, dtype={"user": str})
    logged_frame = tables[0].get_dataframe()
    assert list(logged_frame.columns) == list(csv.columns)
    pd.testing.assert_frame_equal(logged_frame, csv, check_dtype=False)


def test_per_user_file_is_saved_with_the_run(logged):
    out, _, calls, _ = logged
    (saved,) = calls.save
    assert Path(saved).name == "per_user.parquet"
    pd.testing.assert_frame_equal(pd.read_parquet(saved), pd.read_parquet(out / "per_user.parquet"))


def test_checkpoint_is_a_model_artifact(logged):
    out, _, calls, _ = logged
    models = [(a, aliases) for a, aliases in calls.artifacts if a.type == "model"]
    ((artifact, aliases),) = models  # W&B logs the table's own artifact beside it
    run = calls.runs[0]
    assert (artifact.name, artifact.type, aliases) == (f"model-{run.id}", "model", ["best"])
    assert artifact.metadata["file"] == "best.pt"
    entries = artifact.manifest.entries
    assert list(entries) == ["best.pt"]
    assert Path(entries["best.pt"].local_path) == out / "checkpoints" / "best.pt"


def test_failed_run_finishes_with_exit_code_1(tmp_path):
    with pytest.MonkeyPatch.context() as mp:
        calls = record_wandb(mp)
        tracker = WandbTracker(mode="offline")
        tracker.start({"a": 1}, tmp_path)
        tracker.finish(exit_code=1)
    assert calls.finish == [1] and calls.summary == [] and calls.artifacts == []


def test_disabled_mode_never_calls_wandb(tmp_path, monkeypatch):
    calls = record_wandb(monkeypatch)
    tracker = WandbTracker(mode="disabled")
    tracker.start({"a": 1}, tmp_path)
    tracker.log({"x": 1.0}, step=0)
    tracker.finish({"y": 2.0})
    assert calls.init == [] and not list(tmp_path.glob("wandb/offline-run-*"))


def test_unset_wandb_mode_is_restored_and_nested_config_flattened(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    calls = record_wandb(monkeypatch)
    tracker = WandbTracker(mode="offline")
    tracker.start({"a": {"b": 1}}, tmp_path)
    assert os.environ["WANDB_MODE"] == "offline"
    tracker.log({"epoch": 0, "x": 1.0}, step=0)
    tracker.finish({"y": 2.0})
    assert "WANDB_MODE" not in os.environ
    assert calls.init[0]["config"] == {"a.b": 1, "overrides": []}
    assert calls.log == [({"epoch": 0, "x": 1.0}, 0)] and calls.summary == [{"y": 2.0}]
    assert len(list((tmp_path / "wandb").glob("offline-run-*/*.wandb"))) == 1


CAPTURE = """
import json, sys, wandb
real, record = wandb.init, sys.argv[1]
def init(*a, **kw):
    with open(record, "a") as f:
        f.write(json.dumps({k: kw[k] for k in ("config", "job_type", "tags", "group")}) + "\\n")
    return real(*a, **kw)
wandb.init = init
from gnnrec.cli import main
sys.argv = ["gnnrec-train", *sys.argv[2:]]
main()
"""


def test_multirun_jobs_share_a_sweep_job_type_and_tag(tmp_path, cache_dir, data_root):
    """A real Hydra multirun: two jobs in one process, each its own offline run."""
    sweep = tmp_path / "my-sweep"
    record = tmp_path / "init.jsonl"
    overrides = [
        *[o for o in OVERRIDES if not o.startswith(("seed=", "trainer.max_epochs", "tracker.log"))],
        "trainer.max_epochs=1",
        f"paths.cache_dir={cache_dir}",
        "seed=0,1",
        f"hydra.sweep.dir={sweep}",
    ]
    cmd = [sys.executable, "-c", CAPTURE, str(record), "-m", *overrides]
    env = {**os.environ, "WANDB_MODE": "offline"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    inits = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(inits) == 2 and len(list(sweep.glob("*/wandb/offline-run-*"))) == 2
    for num, init in enumerate(sorted(inits, key=lambda i: i["config"]["sweep.job_num"])):
        assert init["group"] == "wandb_test"
        assert init["job_type"] == "sweep-my-sweep"
        assert "sweep:my-sweep" in init["tags"]
        assert init["config"]["sweep.dir"] == str(sweep)
        assert init["config"]["sweep.job_num"] == num
        assert init["config"]["seed"] == num
        assert init["config"]["overrides"][-1] == f"seed={num}"
