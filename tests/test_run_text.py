"""End-to-end runs of the text and cross-domain models on real data with the real MiniLM."""

import json

import pytest

from gnnrec.config import compose_config
from gnnrec.run import run
from tests.test_run import FAST, assert_per_user_matches, write_folder_dataset

pytestmark = pytest.mark.usefixtures("offline_hub")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("byod") / "mydata"
    write_folder_dataset(path)
    return path


def compose(cache_dir, *overrides):
    return compose_config([f"paths.cache_dir={cache_dir}", "tracker=none", *FAST, *overrides])


def folder_overrides(folder):
    return [
        "data=folder",
        f"data.path={folder}",
        "data.domains=[games,music]",
        "data.target_domain=music",
    ]


@pytest.mark.parametrize(
    "model",
    [
        ["model=lightgcn_text", "loss=softmax"],
        ["model=lightgcn_text", "model.user_input=profile", "model.id_embedding=true"],
        ["model=text_zeroshot"],
        ["model=emcdr"],
        ["model=bitgcf"],
        ["model=rgcn"],
        ["model=rgcn", "encoder=none", "model.decoder=distmult"],
    ],
    ids=lambda m: "-".join(o.split("=")[-1] for o in m),
)
def test_model_runs_on_a_cross_domain_folder_dataset(model, cache_dir, folder, tmp_path):
    metrics = run(compose(cache_dir, *folder_overrides(folder), *model), output_dir=tmp_path)
    assert json.loads((tmp_path / "metrics.json").read_text()) == pytest.approx(metrics)
    assert assert_per_user_matches(tmp_path, metrics) >= 2
    assert assert_per_user_matches(tmp_path, metrics, "sampled_ndcg@10") >= 2
    assert metrics["test/cold/num_users"] > 5


def test_text_model_with_encoder_none_fails_clearly(cache_dir, folder, tmp_path):
    cfg = compose(cache_dir, *folder_overrides(folder), "model=lightgcn_text", "encoder=none")
    with pytest.raises(ValueError, match="encoder=none.*encoder=minilm"):
        run(cfg, output_dir=tmp_path)


def test_cold_items_are_a_reported_group(cache_dir, tmp_path, data_root):
    """Amazon Movies is long-tail: many held-out positives never occur in training."""
    metrics = run(compose(cache_dir, "model=pop", "encoder=none"), output_dir=tmp_path)
    assert metrics["test/cold_item/num_users"] > 500
    assert metrics["val/cold_item/num_users"] > 500
    # Popularity gives every never-seen item the same (lowest) count: they are ranked
    # below all seen items, so top-20 hits on cold items are impossible.
    assert metrics["test/cold_item/recall@20"] == 0.0


def test_zero_shot_domain_reports_its_own_group(cache_dir, tmp_path, data_root):
    cfg = compose(cache_dir, "model=lightgcn", "data.zero_shot_domain=movies")
    metrics = run(cfg, output_dir=tmp_path)
    assert metrics["test/zero_shot/num_users"] > 1000
    assert "test/warm/num_users" not in metrics and "test/cold/num_users" not in metrics
    # Every Movies item is a cold item: nothing of Movies is in training.
    assert metrics["test/cold_item/num_users"] == metrics["test/zero_shot/num_users"]


def test_minilm_zero_shot_beats_random_on_movielens(cache_dir, tmp_path, data_root):
    """Real MiniLM profiles of MovieLens users rank their held-out movies far above chance."""
    metrics = run(compose(cache_dir, "data=ml100k", "model=text_zeroshot"), output_dir=tmp_path)
    users = metrics["test/all/num_users"]
    assert users > 900
    # Random ranking of ~1.6k unseen movies: Recall@50 ~ 50 / 1600 = 0.03.
    assert metrics["test/all/recall@50"] > 2 * 50 / 1682


def test_cold_start_options_train_through_the_command_line(cache_dir, tmp_path, data_root):
    """Item bias, gated fusion and alignment together, launched as ``gnnrec-train``."""
    import math

    import torch

    from tests.test_new_user import cli

    run_dir = tmp_path / "run"
    proc = cli(
        "data=ml100k",
        "model=lightgcn_text",
        "loss=softmax",
        "model.item_bias=logpop",
        "model.bias_init=0.1",
        "model.id_embedding=gate",
        "model.align_weight=0.1",
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=3",
        "trainer.progress=false",
        "eval.sampled_negatives=0",
        "tracker=none",
        f"paths.data_dir={data_root}",
        f"paths.cache_dir={cache_dir}",
        f"hydra.run.dir={run_dir}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["test/all/num_users"] > 900
    assert math.isfinite(metrics["val/all/ndcg@20"]) and metrics["test/all/recall@50"] > 0
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)["model"]
    assert state["id_embedding.weight"].shape == (943 + 1682, 64)
    assert state["beta"].item() != pytest.approx(0.1, abs=1e-7)  # trained
    assert not torch.equal(state["item_gate"], torch.tensor([1.0, -2.0]))
