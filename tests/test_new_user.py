"""What a new user hit, each as a test: defaults that crash, late or misleading errors."""

import json
import os
import subprocess
import sys

import pytest

from gnnrec.api import train
from gnnrec.config import compose_config
from gnnrec.errors import ConfigError
from gnnrec.run import check_config, monitor_key

QUICK = ["tracker=none", "trainer.progress=false", "eval.sampled_negatives=0"]


def cli(*args, timeout=600):
    env = {**os.environ, "WANDB_MODE": "offline"}
    env.pop("HYDRA_FULL_ERROR", None)
    cmd = [sys.executable, "-m", "gnnrec.train", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


def write_fixed_split(folder):
    """A small dataset in the LightGCN train/test format: a fixed split, no validation."""
    folder.mkdir()
    train = [f"{u} " + " ".join(str((u + j) % 40) for j in range(6)) for u in range(30)]
    test = [f"{u} {(u + 7) % 40}" for u in range(30)]
    (folder / "train.txt").write_text("\n".join(train) + "\n")
    (folder / "test.txt").write_text("\n".join(test) + "\n")


@pytest.mark.parametrize("model", ["pop", "mf"])
def test_data_without_validation_runs_with_the_default_settings(model, tmp_path):
    # `gnnrec-train data=gowalla model=pop` printed its metrics, then exited 1 with
    # KeyError: optimized_metric='val/all/ndcg@20' is not in metrics.json.
    folder = tmp_path / "fixed"
    write_fixed_split(folder)
    proc = cli(
        "data=gowalla",
        f"data.source.path={folder}",
        f"model={model}",
        "trainer.max_epochs=2",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"hydra.run.dir={tmp_path / 'run'}",
        "tracker=none",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test/all/num_users"] == 30
    assert not any(k.startswith("val/") for k in metrics)
    if model == "mf":  # no validation: every epoch trained, the last one kept
        assert metrics["epochs"] == 2 and metrics["best_epoch"] == 1


def test_monitor_follows_the_configured_metrics():
    cfg = compose_config(["eval.ks=[10,50]"])
    assert monitor_key(cfg, has_validation=True) == "val/all/ndcg@10"
    cfg = compose_config(["eval.metrics=[recall]", "eval.ks=[5]"])
    assert monitor_key(cfg, has_validation=True) == "val/all/recall@5"
    assert monitor_key(compose_config([]), has_validation=True) == "val/all/ndcg@20"
    assert monitor_key(compose_config([]), has_validation=False) is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["eval.ks=[10]", "optimized_metric=val/all/ndcg@20"], "is not computed: eval.metrics"),
        (["optimized_metric=test/all/ndcg@20"], "selects on the test split"),
        (["optimized_metric=val/everyone/ndcg@20"], "unknown group 'everyone'"),
        (["optimized_metric=ndcg"], "is not a metric key"),
    ],
)
def test_a_monitor_that_cannot_be_computed_fails_before_any_work(overrides, message):
    with pytest.raises(ConfigError, match=message):
        check_config(compose_config(overrides))


def test_eval_ks_without_20_trains_and_selects_on_what_is_computed(tmp_path, data_root):
    proc = cli(
        "data=ml100k",
        "model=mf",
        "eval.ks=[10]",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        *QUICK,
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert "val/all/ndcg@10" in history[0] and "val/all/ndcg@20" not in history[0]


def test_an_impossible_model_and_loss_fail_at_start_naming_both(tmp_path):
    # EMCDR trained with in-batch softmax ran silently (source triples against target users).
    with pytest.raises(ConfigError, match="loss SoftmaxLoss .* model EMCDR"):
        check_config(compose_config(["model=emcdr", "loss=softmax"]))
    with pytest.raises(ConfigError, match="loss BPRLoss needs sampled negatives"):
        check_config(compose_config(["sampler=in_batch"]))


def test_a_validation_error_is_one_readable_message(tmp_path):
    # It came after a 27-line Hydra traceback, and named data.source.path, not data.path.
    proc = cli("data=folder", f"hydra.run.dir={tmp_path}", "tracker=none", timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("gnnrec-train: error: missing value(s) for data.path")


def test_device_errors_name_the_key_the_user_sets(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ConfigError, match="^device='cuda' but CUDA is not available"):
        train(["device=cuda", *QUICK], output_dir=tmp_path)
    assert not (tmp_path / "metrics.json").exists()


@pytest.mark.slow
def test_gowalla_pop_with_the_default_settings(tmp_path, data_root):
    proc = cli("data=gowalla", "model=pop", "tracker=none", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test/all/recall@20"] == pytest.approx(0.04163, abs=5e-5)
