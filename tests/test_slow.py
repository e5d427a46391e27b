"""Long end-to-end runs (``make test-slow``)."""

import pytest

from gnnrec.config import compose_config
from gnnrec.run import run

pytestmark = pytest.mark.slow


def test_demo_lightgcn_beats_popularity_on_validation(data_root, tmp_path):
    """The demo schedule: cross-domain LightGCN must beat the target-domain popularity
    ranking for warm users (validation split only; the test split is not looked at)."""
    common = [f"paths.cache_dir={tmp_path / 'cache'}", "tracker=none", "trainer.progress=false"]
    lightgcn = run(compose_config(["experiment=demo", *common]), output_dir=tmp_path / "lightgcn")
    pop = run(
        compose_config(["experiment=demo", "model=pop", *common]), output_dir=tmp_path / "pop"
    )
    assert lightgcn["val/warm/ndcg@20"] > 1.1 * pop["val/warm/ndcg@20"]
    assert lightgcn["val/cold/ndcg@20"] > 0.0


def test_every_dataset_config_trains_one_batch(data_root, tmp_path):
    for data in ("amazon_bcm", "amazon_fk", "gowalla", "ml100k"):
        cfg = compose_config(
            [
                f"data={data}",
                "model=lightgcn",
                "tracker=none",
                "trainer.fast_dev_run=true",
                "trainer.progress=false",
                "eval.sampled_negatives=0",
                "optimized_metric=null",
                f"paths.cache_dir={tmp_path / 'cache'}",
            ]
        )
        metrics = run(cfg, output_dir=tmp_path / data)
        assert metrics["test/all/num_users"] > 0
