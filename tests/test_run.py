"""End-to-end runs on real data, made small by overrides."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from gnnrec.config import compose_config
from gnnrec.keys import metric_key
from gnnrec.run import run

FAST = [
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=3",
    "trainer.progress=false",
    "eval.sampled_negatives=99",
]


def assert_per_user_matches(run_dir, metrics, metric="ndcg@20"):
    """Every group mean of per_user.parquet is the metrics.json value of that group."""
    rows = pd.read_parquet(Path(run_dir) / "per_user.parquet")
    checked = 0
    for (_task, group), frame in rows.groupby(["task", "group"]):
        assert metrics[f"test/{group}/{metric}"] == pytest.approx(frame[metric].mean(), rel=1e-9)
        assert metrics[f"test/{group}/num_users"] == len(frame)
        checked += 1
    main = rows[rows["task"] == "main"]
    assert metrics[f"test/all/{metric}"] == pytest.approx(main[metric].mean(), rel=1e-9)
    return checked


def compose(cache_dir, *overrides):
    return compose_config([f"paths.cache_dir={cache_dir}", *FAST, *overrides])


@pytest.mark.parametrize("model", ["pop", "mf", "lightgcn", "random"])
def test_run_writes_the_metrics_contract(model, cache_dir, tmp_path, data_root):
    cfg = compose(cache_dir, f"model={model}", "tracker=none")
    metrics = run(cfg, output_dir=tmp_path)
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk == pytest.approx(metrics)
    for split in ("val", "test"):
        n = {g: metrics[metric_key(split, g, "num_users")] for g in ("warm", "cold", "all")}
        assert n["all"] == n["warm"] + n["cold"]
        for metric in ("recall", "ndcg", "hit", "mrr", "precision", "sampled_hr"):
            for k in (10, 20, 50) if metric != "sampled_hr" else (10,):
                value = {g: metrics[metric_key(split, g, metric, k)] for g in n}
                # "all" is the user-weighted mean of its groups
                pooled = (value["warm"] * n["warm"] + value["cold"] * n["cold"]) / n["all"]
                assert value["all"] == pytest.approx(pooled, rel=1e-9)
            if metric in ("recall", "hit"):  # more recommendations never find fewer items
                values = [metrics[metric_key(split, "all", metric, k)] for k in (10, 20, 50)]
                assert values == sorted(values)
    assert metrics["test/warm/num_users"] > 1000 and metrics["test/cold/num_users"] > 100
    assert "best_epoch" in metrics and metrics["time/total_s"] > 0
    if model in ("mf", "lightgcn"):
        assert (tmp_path / "checkpoints" / "last.pt").is_file()
    if model == "random":  # the random level: Recall@50 of ~18k Movies is about 50/18k
        assert metrics["test/warm/recall@50"] == pytest.approx(50 / 18143, rel=0.5)
    # Popularity with real counts beats random ranking of ~18k movies by far.
    if model == "pop":
        assert metrics["test/warm/recall@50"] > 10 * 50 / 18143


def test_same_seed_gives_identical_metrics(cache_dir, tmp_path, data_root):
    overrides = ("model=lightgcn", "tracker=none", "deterministic=true", "seed=3")
    a = run(compose(cache_dir, *overrides), output_dir=tmp_path / "a")
    b = run(compose(cache_dir, *overrides), output_dir=tmp_path / "b")
    keys = [k for k in a if not k.startswith("time/")]
    assert {k: a[k] for k in keys} == {k: b[k] for k in keys}


def test_hydra_command_line_launch(cache_dir, tmp_path, data_root):
    """A real `python -m gnnrec.train` launch writes its run folder."""
    run_dir = tmp_path / "run"
    env = {**os.environ, "WANDB_MODE": "offline"}
    cmd = [
        sys.executable,
        "-m",
        "gnnrec.train",
        f"paths.cache_dir={cache_dir}",
        *FAST,
        "model=mf",
        "tracker=none",
        f"hydra.run.dir={run_dir}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert "test/cold/ndcg@20" in metrics
    assert (run_dir / ".hydra" / "overrides.yaml").is_file()
    assert "warm" in proc.stdout and "cold" in proc.stdout


def test_unknown_key_on_the_command_line_fails_clearly(tmp_path):
    cmd = [sys.executable, "-m", "gnnrec.train", "trainer.max_epoch=3", f"hydra.run.dir={tmp_path}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "trainer.max_epoch" in proc.stderr
    assert not (tmp_path / "metrics.json").exists()


def test_target_domain_not_in_data_fails_clearly(cache_dir, tmp_path, data_root):
    from gnnrec.data.schema import DataError

    with pytest.raises(DataError, match=r"'music'.*\['books', 'cds', 'movies'\]"):
        run(compose(cache_dir, "data.target_domain=music", "tracker=none"), output_dir=tmp_path)


def test_resume_from_run_folder(cache_dir, tmp_path, data_root):
    first = run(compose(cache_dir, "model=mf", "tracker=none"), output_dir=tmp_path)
    resumed = run(
        compose(
            cache_dir,
            "model=mf",
            "tracker=none",
            "trainer.max_epochs=3",
            f"trainer.resume={tmp_path}",
        ),
        output_dir=tmp_path / "resumed",
    )
    assert first["epochs"] == 2 and resumed["epochs"] == 3
    assert Path(tmp_path / "resumed" / "checkpoints" / "last.pt").is_file()


def write_folder_dataset(folder, rng_seed=0):
    """Two domains of a user's own data in the documented folder format."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(rng_seed)
    folder.mkdir()
    for domain, n_items in (("games", 60), ("music", 80)):
        rows = []
        for u in range(120):
            for t, i in enumerate(rng.choice(n_items, size=int(rng.integers(2, 8)), replace=False)):
                rows.append(
                    (f"user{u:03d}", f"{domain[0]}{i:04d}", float(rng.integers(1, 6)), 1000 + t)
                )
        inter = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
        inter.to_csv(folder / f"{domain}.inter.csv", index=False)
        items = pd.DataFrame({"item_id": sorted(inter.item_id.unique())})
        items["title"] = "title of " + items.item_id
        items.to_csv(folder / f"{domain}.item.csv", index=False)


def test_bring_your_own_folder_dataset(cache_dir, tmp_path):
    folder = tmp_path / "mydata"
    write_folder_dataset(folder)
    cfg = compose(
        cache_dir,
        "data=folder",
        f"data.path={folder}",
        "data.domains=[games,music]",
        "data.target_domain=music",
        "model=lightgcn",
        "tracker=none",
    )
    metrics = run(cfg, output_dir=tmp_path / "run")
    assert metrics["test/warm/num_users"] > 50 and metrics["test/cold/num_users"] > 5
    rows = pd.read_parquet(tmp_path / "run" / "per_user.parquet")
    cold = rows[(rows["task"] == "main") & (rows["group"] == "cold")]
    assert cold["ndcg@20"].mean() == pytest.approx(metrics["test/cold/ndcg@20"])
    assert set(cold["user_id"]) <= {f"user{u:03d}" for u in range(120)}
