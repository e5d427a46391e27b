"""A run folder holds one run: finished folders are refused, metrics record their config."""

import json

import pytest
from omegaconf import OmegaConf

from gnnrec.api import compose
from gnnrec.errors import ConfigError
from gnnrec.report import load_runs
from gnnrec.track.run_folder import (
    check_recorded_config,
    check_run_folder,
    clear_run_folder,
    config_fingerprint,
)


def finished_run(folder, overrides=("model=mf",), fingerprint=True):
    """A run folder as gnnrec-train leaves it; ``fingerprint=False``: as older gnnrec did."""
    cfg = compose(list(overrides))
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    metrics = {"best_epoch": 1, "test/all/ndcg@20": 0.25}
    if fingerprint:
        metrics["config_fingerprint"] = config_fingerprint(cfg)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "history.json").write_text("[]")
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "best.pt").write_bytes(b"old")
    return folder


def test_a_finished_folder_is_refused_unless_overwritten_or_continued(tmp_path):
    run_dir = finished_run(tmp_path / "run")
    with pytest.raises(ConfigError) as err:
        check_run_folder(run_dir, overwrite=False, resume=None)
    assert str(err.value) == (
        f"{run_dir} already holds a finished run (metrics.json); a second run there would mix "
        "the two runs' files. Choose a new folder (hydra.run.dir=..., or output_dir= of "
        f"gnnrec.api.train), continue that run with trainer.resume={run_dir}, or replace it "
        "with overwrite=true"
    )
    # resuming from somewhere else is still a second run in this folder
    with pytest.raises(ConfigError, match="already holds a finished run"):
        check_run_folder(run_dir, overwrite=False, resume=str(tmp_path / "elsewhere"))
    check_run_folder(run_dir, overwrite=True, resume=None)
    check_run_folder(run_dir, overwrite=False, resume=str(run_dir))
    check_run_folder(run_dir, overwrite=False, resume=str(run_dir / "checkpoints" / "last.pt"))
    check_run_folder(tmp_path / "new", overwrite=False, resume=None)
    (run_dir / "metrics.json").unlink()  # an unfinished run's folder may be reused
    check_run_folder(run_dir, overwrite=False, resume=None)
    with pytest.raises(ConfigError, match="^overwrite must be true or false, got 'yes'$"):
        check_run_folder(run_dir, overwrite="yes", resume=None)


def test_clearing_removes_every_output_of_the_earlier_run(tmp_path):
    run_dir = finished_run(tmp_path / "run")
    (run_dir / "per_user.parquet").write_bytes(b"old")
    with pytest.warns(UserWarning) as record:
        removed = clear_run_folder(run_dir, resume=None)
    assert [p.name for p in removed] == [
        "metrics.json",
        "history.json",
        "per_user.parquet",
        "checkpoints",
    ]
    assert [str(w.message) for w in record] == [
        f"{run_dir}: removed metrics.json, history.json, per_user.parquet, checkpoints of an "
        "earlier run"
    ]
    assert sorted(p.name for p in run_dir.iterdir()) == [".hydra"]


def test_continuing_in_place_keeps_everything(tmp_path):
    run_dir = finished_run(tmp_path / "run")
    before = sorted(p.name for p in run_dir.rglob("*"))
    assert clear_run_folder(run_dir, resume=str(run_dir)) == []
    assert sorted(p.name for p in run_dir.rglob("*")) == before


def test_the_report_refuses_metrics_written_under_another_config(tmp_path):
    run_dir = finished_run(tmp_path / "run")
    recorded = json.loads((run_dir / "metrics.json").read_text())["config_fingerprint"]
    config = run_dir / ".hydra" / "config.yaml"
    config.write_text(OmegaConf.to_yaml(compose(["model=lightgcn"])))  # a second run's
    actual = config_fingerprint(OmegaConf.load(config))
    message = (
        f"{run_dir}: metrics.json was written under another config than .hydra/config.yaml "
        f"(config_fingerprint {recorded} in metrics.json, {actual} of the config): the folder "
        "mixes two runs. Rerun it into a new folder, or remove it"
    )
    with pytest.raises(ValueError) as err:
        load_runs([tmp_path])
    assert str(err.value) == message
    with pytest.raises(ValueError) as err:
        check_recorded_config(run_dir, recorded)
    assert str(err.value) == message


def test_the_report_reads_matching_and_older_runs(tmp_path):
    finished_run(tmp_path / "0", ["model=mf", "seed=0"])
    finished_run(tmp_path / "1", ["model=mf", "seed=1"], fingerprint=False)  # older gnnrec
    runs = load_runs([tmp_path])
    assert [r.seed for r in runs] == ["0", "1"]
    assert [r.metrics for r in runs] == [{"best_epoch": 1, "test/all/ndcg@20": 0.25}] * 2
    assert runs[0].label == runs[1].label  # one group


def test_new_keys_do_not_split_groups_from_older_runs(tmp_path):
    finished_run(tmp_path / "0", ["model=mf", "seed=0", "overwrite=true"])
    old = finished_run(tmp_path / "1", ["model=mf", "seed=1"], fingerprint=False)
    cfg = OmegaConf.load(old / ".hydra" / "config.yaml")
    del cfg["overwrite"]
    del cfg.trainer["resume_mismatch"]
    (old / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    runs = load_runs([tmp_path])
    assert runs[0].label == runs[1].label == "model=mf"  # one group


def test_the_fingerprint_is_the_same_for_the_config_and_its_yaml(tmp_path):
    cfg = compose(["model=lightgcn", "optimizer.lr=1e-3", "data.split.seed=7"])
    path = tmp_path / "config.yaml"
    path.write_text(OmegaConf.to_yaml(cfg))
    assert config_fingerprint(OmegaConf.load(path)) == config_fingerprint(cfg)
    assert config_fingerprint(compose(["model=mf"])) != config_fingerprint(cfg)
