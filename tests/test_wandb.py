"""A real, tiny offline W&B run on real data, read back from its files (no network)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("wandb")

from gnnrec.api import compose, train  # noqa: E402
from gnnrec.run import load_split  # noqa: E402
from gnnrec.track import item_titles, read_offline_run  # noqa: E402

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


@pytest.fixture(scope="module")
def logged(tmp_path_factory, cache_dir, data_root):
    """``(run folder, metrics, OfflineRun, WANDB_MODE after the run)``."""
    out = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as mp:
        # W&B stages table artifacts under its data dir: keep them in the test folder.
        mp.setenv("WANDB_DATA_DIR", str(tmp_path_factory.mktemp("wandb_data")))
        mp.setenv("WANDB_MODE", "disabled")  # the tracker's own mode wins, then is restored
        metrics = train([*OVERRIDES, f"paths.cache_dir={cache_dir}"], output_dir=out)
        mode_after = os.environ.get("WANDB_MODE")
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    return out, metrics, read_offline_run(runs[0]), mode_after


def test_wandb_mode_is_restored_after_the_run(logged):
    assert logged[3] == "disabled"


def test_config_is_flat_with_overrides_and_seed(logged):
    out, _, run, _ = logged
    config = run.config
    assert config["model.embedding_dim"] == 64
    assert config["model._target_"] == "gnnrec.models.MF"
    assert config["optimizer.lr"] == pytest.approx(0.001)
    assert config["trainer.max_epochs"] == 2
    assert config["eval.ks"] == [10, 20, 50]
    assert config["seed"] == 3
    assert config["paths.output_dir"] == str(out)
    assert config["overrides"] == [*OVERRIDES, f"paths.cache_dir={config['paths.cache_dir']}"]
    nested = [k for k, v in config.items() if isinstance(v, dict) and v and k != "_wandb"]
    assert nested == []


def test_group_job_type_and_tags(logged):
    run = logged[2]
    assert run.group == "wandb_test"  # ${task_name}
    assert run.job_type == "train"
    assert run.tags == ["model:MF", "data:ml100k", "target:ml-100k", "team-a"]


def test_history_is_per_epoch_on_the_epoch_axis(logged):
    out, _, run, _ = logged
    assert run.step_metrics == {"*": "epoch"}
    epochs = [row for row in run.history if "train/loss" in row]
    assert [row["epoch"] for row in epochs] == [0, 1]
    on_disk = json.loads((out / "history.json").read_text())
    assert [row["train/loss"] for row in epochs] == [row["train/loss"] for row in on_disk]
    assert all("val/all/ndcg@20" in row for row in epochs)


def test_summary_equals_metrics_json(logged):
    out, metrics, run, _ = logged
    on_disk = json.loads((out / "metrics.json").read_text())
    summary = {k: v for k, v in run.summary.items() if not k.startswith("_")}
    assert summary == on_disk
    assert set(on_disk) == set(metrics)


def test_per_user_metrics_are_in_the_run_files(logged):
    out, _, run, _ = logged
    assert "per_user.parquet" in run.saved_files
    saved = pd.read_parquet(run.files_dir / "per_user.parquet")
    pd.testing.assert_frame_equal(saved, pd.read_parquet(out / "per_user.parquet"))


def test_checkpoint_is_a_model_artifact(logged):
    out, _, run, _ = logged
    models = [a for a in run.artifacts if a.type == "model"]
    assert len(models) == 1
    artifact = models[0]
    assert artifact.name == f"model-{run.run_id}"
    assert "best" in artifact.aliases
    assert artifact.files == {"best.pt": out / "checkpoints" / "best.pt"}
    assert artifact.files["best.pt"].is_file()
    assert artifact.metadata["file"] == "best.pt"


def test_examples_table_shows_titled_unseen_recommendations(logged, cache_dir):
    out, _, run, _ = logged
    table = run.table("examples")
    refs = [row["examples"] for row in run.history if "examples" in row]
    assert len(refs) == 1 and refs[0]["_type"] == "table-file"
    assert (run.files_dir / refs[0]["path"]).is_file()
    csv = pd.read_csv(out / "examples.csv", keep_default_na=False, dtype={"user": str})
    pd.testing.assert_frame_equal(table, csv, check_dtype=False)

    data, split = load_split(compose([*OVERRIDES, f"paths.cache_dir={cache_dir}"]))
    titles = item_titles(data.items, "movie_title")
    assert table["user_idx"].nunique() == 5
    assert (table["title"] == titles[table["item_idx"]]).all()
    raw_ids = data.items["item"].to_numpy()[table["item_idx"]]
    assert (table["title"] != raw_ids).all(), "ml100k has titles; ids are only a fallback"

    def items_of(rows: pd.DataFrame) -> dict[int, set[int]]:
        return rows.groupby("user_idx")["item_idx"].apply(set).to_dict()

    train, val, truth = items_of(split.train), items_of(split.val), items_of(split.test)
    for user, rows in table.groupby("user_idx"):
        assert rows["rank"].tolist() == list(range(1, 11))
        assert rows["score"].is_monotonic_decreasing
        masked = train.get(user, set()) | val.get(user, set())
        assert masked and not set(rows["item_idx"]) & masked, "a masked item was recommended"
        assert rows["hit"].tolist() == [i in truth[user] for i in rows["item_idx"]]
        expected = " | ".join(titles[i] for i in sorted(truth[user]))
        assert set(rows["truth_titles"]) == {expected}
        assert set(rows["user"]) == {str(data.users["user"].iloc[user])}


def test_multirun_jobs_share_a_sweep_job_type_and_tag(tmp_path, cache_dir, data_root):
    """A real Hydra multirun: two jobs in one process, each its own offline run."""
    sweep = tmp_path / "my-sweep"
    cmd = [
        sys.executable,
        "-m",
        "gnnrec.train",
        "-m",
        *[o for o in OVERRIDES if not o.startswith(("seed=", "trainer.max_epochs", "tracker.log"))],
        "trainer.max_epochs=1",
        f"paths.cache_dir={cache_dir}",
        "seed=0,1",
        f"hydra.sweep.dir={sweep}",
    ]
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_DATA_DIR": str(tmp_path / "wandb_data")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [read_offline_run(p) for p in sorted(sweep.glob("*/wandb/offline-run-*"))]
    assert len(runs) == 2
    for num, run in enumerate(sorted(runs, key=lambda r: r.config["sweep.job_num"])):
        assert run.group == "wandb_test"
        assert run.job_type == "sweep-my-sweep"
        assert "sweep:my-sweep" in run.tags
        assert run.config["sweep.dir"] == str(sweep)
        assert run.config["sweep.job_num"] == num
        assert run.config["seed"] == num
        assert run.config["overrides"][-1] == f"seed={num}"
        assert np.isfinite(run.summary["test/all/ndcg@20"])
