"""The Python API: same run folder as the command line, re-evaluation from checkpoints."""

import json

import pandas as pd
import pytest
from omegaconf import OmegaConf

from gnnrec.api import compose, evaluate, load_run_config, train
from gnnrec.run import load_split

FAST = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.progress=false",
    "tracker=none",
    "eval.sampled_negatives=0",
]


@pytest.fixture(scope="module")
def mf_run(tmp_path_factory, data_root):
    root = tmp_path_factory.mktemp("api")
    overrides = ["data=ml100k", "model=mf", f"paths.cache_dir={root / 'cache'}", *FAST]
    out = root / "run"
    return overrides, out, train(overrides, output_dir=out)


def test_train_leaves_a_run_folder_like_the_command_line(mf_run):
    overrides, out, metrics = mf_run
    assert json.loads((out / "metrics.json").read_text()) == pytest.approx(metrics)
    assert OmegaConf.to_container(OmegaConf.load(out / ".hydra" / "overrides.yaml")) == overrides
    saved = OmegaConf.load(out / ".hydra" / "config.yaml")
    assert saved.model._target_ == "gnnrec.models.MF" and saved.data.name == "ml100k"
    assert (out / "history.json").is_file() and (out / "checkpoints" / "last.pt").is_file()


def test_per_user_metrics_average_to_the_reported_ones(mf_run):
    _, out, metrics = mf_run
    per_user = pd.read_parquet(out / "per_user.parquet")
    main = per_user[per_user["task"] == "main"]
    assert len(main) == metrics["test/all/num_users"]
    assert main["user_idx"].is_unique
    for key in ("ndcg@20", "recall@20", "hit@10", "mrr@50"):
        assert main[key].mean() == pytest.approx(metrics[f"test/all/{key}"], abs=1e-9)
        for group, rows in main.groupby("group"):
            assert rows[key].mean() == pytest.approx(metrics[f"test/{group}/{key}"], abs=1e-9)


def test_evaluate_reproduces_a_saved_run(mf_run):
    _, out, metrics = mf_run
    before = pd.read_parquet(out / "per_user.parquet")
    (out / "per_user.parquet").unlink()
    again = evaluate(out)
    assert again == pytest.approx({k: v for k, v in metrics.items() if k.startswith("test/")})
    pd.testing.assert_frame_equal(pd.read_parquet(out / "per_user.parquet"), before)


def test_evaluate_refuses_a_run_that_does_not_reproduce(mf_run, tmp_path):
    _, out, metrics = mf_run
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    for name in (".hydra", "checkpoints"):
        (tampered / name).symlink_to(out / name)
    changed = {**metrics, "test/all/ndcg@20": metrics["test/all/ndcg@20"] + 0.01}
    (tampered / "metrics.json").write_text(json.dumps(changed))
    with pytest.raises(ValueError, match=r"does not reproduce metrics.json.*test/all/ndcg@20"):
        evaluate(tampered)
    assert not (tampered / "per_user.parquet").exists()


def test_load_run_config_names_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.yaml"):
        load_run_config(tmp_path)


def test_a_bare_string_is_one_override():
    # it used to be split into characters ("Error parsing override 'm'")
    assert compose("model=mf").model._target_ == "gnnrec.models.MF"
    assert compose(["model=mf", "seed=3"]).seed == 3


def test_source_edges_off_keeps_the_held_out_rows(tmp_path, data_root):
    common = ["data.preprocess.kcore=3", f"paths.cache_dir={tmp_path}"]
    _, full = load_split(compose(common))
    data, target_only = load_split(compose([*common, "data.source_edges=false"]))
    pd.testing.assert_frame_equal(full.test, target_only.test)
    pd.testing.assert_frame_equal(full.val, target_only.val)
    target = full.target_domain_idx
    assert (target_only.train["domain_idx"] == target).all()
    assert len(target_only.train) == int((full.train["domain_idx"] == target).sum())
    assert len(full.train) > len(target_only.train)
