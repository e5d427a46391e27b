"""Every experiment file runs: one batch each (slow: ``make test-slow``)."""

import pytest

from gnnrec.api import compose
from gnnrec.config import CONFIG_DIR
from gnnrec.run import run
from tests.test_run import assert_per_user_matches

EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_runs_one_batch(experiment, tmp_path, data_root):
    # The embedding cache stays the shared default (content-keyed): text experiments
    # encode their items once across test runs.
    cfg = compose(
        [
            f"experiment={experiment}",
            "trainer.fast_dev_run=true",
            "trainer.progress=false",
            "tracker=none",
            "eval.sampled_negatives=0",
            "test_curve_every=0",
        ]
    )
    metrics = run(cfg, output_dir=tmp_path)
    assert metrics["test/all/num_users"] > 0
    assert_per_user_matches(tmp_path, metrics)
    assert (tmp_path / "per_user.parquet").is_file()
