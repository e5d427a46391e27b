"""The benchmark page's v0.1 comparison (experiments/cdr_benchmark.py)."""

import importlib.util
import math
import sys
from pathlib import Path

import pytest

from gnnrec.report.runs import Run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "cdr_benchmark", ROOT / "experiments" / "cdr_benchmark.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def _run(label, overrides, seed, **metrics):
    return Run(Path(f"/runs/{label}/{seed}"), overrides, str(seed), metrics, label=label)


def test_v01_figures_are_the_old_page(bench):
    before = bench.load_before()
    # Spot checks against the v0.1 page (commit 10fee37): Pop's warm NDCG@20 on Movies,
    # R-GCN's old command, the ML-100K KG row and the single-seed zero-shot Pop row.
    pop = before[("cdr_amazon_movies", "encoder=none model=pop", "test/warm/ndcg@20")]
    assert (pop.mean, pop.std, pop.seeds) == (0.0096, 0.0004, 3)
    old_rgcn = "model=rgcn trainer.batch_size=8192 trainer.max_epochs=20"
    assert before[("cdr_amazon_books", old_rgcn, "test/cold/recall@20")].mean == 0.0015
    kg = before[("rgcn_ml100k", "model.use_kg=True trainer.max_epochs=50", "test/all/ndcg@20")]
    assert kg.mean == 0.0798
    zs_pop = before[
        (
            "zeroshot_amazon_movies",
            "model=pop encoder=none trainer.max_epochs=10",
            "test/zero_shot/ndcg@20",
        )
    ]
    assert (zs_pop.seeds, zs_pop.se2()) == (1, 0.0)
    # every PREDECESSORS target is a v0.1 command
    commands = {command for _, command, _ in before}
    assert set(bench.PREDECESSORS.values()) <= commands


def test_moved_marks_only_differences_beyond_two_standard_errors(bench):
    table = bench.Table("exp", "t", "model=a", ("test/warm/ndcg@20", "test/cold/ndcg@20"), "f", "")
    S = bench.SeedMean
    before = {
        # old 0.10 ± 0.01 (3 seeds); new 0.13, 0.14, 0.15 -> diff 0.04, se ~0.0082: bold
        ("exp", "model=a", "test/warm/ndcg@20"): S(0.10, 0.01, 3),
        # new mean 0.105 -> diff 0.005 < 2 se: plain
        ("exp", "model=a", "test/cold/ndcg@20"): S(0.10, 0.01, 3),
        ("exp", "model=old", "test/warm/ndcg@20"): S(0.20, 0.0, 1),
    }
    runs = [
        _run(
            "model=a",
            ("experiment=exp", "model=a"),
            s,
            **{"test/warm/ndcg@20": w, "test/cold/ndcg@20": c},
        )
        for s, (w, c) in enumerate([(0.13, 0.10), (0.14, 0.105), (0.15, 0.11)])
    ]
    runs.append(_run("model=new", ("experiment=exp", "model=new"), 0, **{"test/warm/ndcg@20": 0.3}))
    runs.append(_run("model=b", ("experiment=exp", "model=b"), 0, **{"test/warm/ndcg@20": 0.5}))
    bench.PREDECESSORS["model=b"] = "model=old"
    try:
        text = bench.moved_markdown(table, runs, before)
    finally:
        del bench.PREDECESSORS["model=b"]
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| `")}
    se = math.sqrt(0.01**2 / 3 + 0.01**2 / 3)
    assert 0.04 > 2 * se > 0.005
    assert rows["| `model=a`"].endswith(
        "| **0.1000 -> 0.1400 (+0.0400)** | 0.1000 -> 0.1050 (+0.0050) |"
    )
    assert rows["| `model=new`"].endswith("| new | - |")
    # a renamed group is compared with its v0.1 command; one seed each side is never bold
    assert rows["| `model=b` (v0.1: `model=old`)"].endswith("| 0.2000 -> 0.5000 (+0.3000) | - |")


def test_keep_takes_only_the_re_run_sections_of_the_page(bench, tmp_path):
    page = tmp_path / "page.md"
    rerun = "## A (`experiment=cdr_amazon_movies`)\n\ntext\n\n### Mean\n\n| x |\n"
    old = f"## B (`experiment=cdr_amazon_books`)\n\n{bench.NOT_RERUN} old figures\n"
    page.write_text(f"# Title\n\nheader\n\n{rerun}\n{old}")
    assert bench.page_sections(page) == {"cdr_amazon_movies": rerun}
    assert bench.page_sections(tmp_path / "missing.md") == {}
    # a table without runs and nothing kept shows its v0.1 figures, marked
    books = next(t for t in bench.TABLES if t.experiment == "cdr_amazon_books")
    text = bench.not_rerun_markdown(books, bench.load_before())
    assert bench.NOT_RERUN in text
    assert "| `encoder=none model=pop` | 3 | 0.0046 ± 0.0003 |" in text


def test_the_launcher_runs_every_v01_group_and_the_new_floors(bench, tmp_path):
    spec = importlib.util.spec_from_file_location(
        "cdr_benchmark_runs", ROOT / "experiments" / "cdr_benchmark_runs.py"
    )
    runs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runs)
    jobs = runs.jobs([t for t in runs.TABLES if not t.startswith("tuned_")], tmp_path)
    launched = {(o[0].removeprefix("experiment="), " ".join(o[1:-1])): o[-1] for _, o in jobs}
    old = {(e, c) for e, c, _ in bench.load_before()}
    renamed = {v: k for k, v in bench.PREDECESSORS.items()}
    for experiment, command in old:
        assert (experiment, renamed.get(command, command)) in launched, (experiment, command)
    assert ("cdr_amazon_movies", "encoder=none model=random model.cold_first=true") in launched
    # folders are unique, seed by seed, under the root
    folders = [f for f, _ in jobs]
    # Movies 11 groups x 3 seeds, Books 10 x 3, zero-shot 3 + 1 + 1 + 3, ML-100K 2 x 3
    assert len(set(folders)) == len(folders) == 33 + 30 + 8 + 6
    assert folders[0] == tmp_path / "cdr_amazon_movies" / "bitgcf" / "seed0"


def test_a_difference_below_the_shown_digits_is_not_negative_zero(bench):
    table = bench.Table("exp", "t", "model=a", ("test/warm/ndcg@20",), "f", "")
    before = {("exp", "model=a", "test/warm/ndcg@20"): bench.SeedMean(0.0118, 0.0, 1)}
    run = _run("model=a", ("experiment=exp", "model=a"), 0, **{"test/warm/ndcg@20": 0.01178})
    text = bench.moved_markdown(table, [run], before)
    assert "| `model=a` | 0.0118 -> 0.0118 (+0.0000) |" in text


def _launcher():
    spec = importlib.util.spec_from_file_location(
        "cdr_benchmark_runs", ROOT / "experiments" / "cdr_benchmark_runs.py"
    )
    runs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runs)
    return runs


def test_the_tuned_tables_rerun_every_tuned_file_and_the_floors(tmp_path):
    runs = _launcher()
    jobs = runs.jobs(["tuned_amazon_books"], tmp_path)
    by_folder = {f.relative_to(tmp_path).as_posix(): o for f, o in jobs}
    assert len(by_folder) == len(jobs) == 3 * (len(runs.TUNED) + 3)
    assert by_folder["tuned_amazon_books/mf/seed2"] == [
        "experiment=tuned/amazon_books_mf",
        "seed=2",
    ]
    assert by_folder["tuned_amazon_books/pop/seed0"] == [
        "experiment=cdr_amazon_books",
        "encoder=none",
        "model=pop",
        "seed=0",
    ]
    # every tuned model of the tuning driver has its row, and the text model's best
    tune = importlib.util.spec_from_file_location("tune", ROOT / "experiments" / "tune_amazon.py")
    driver = importlib.util.module_from_spec(tune)
    sys.modules[tune.name] = driver  # dataclasses look their module up
    try:
        tune.loader.exec_module(driver)
    finally:
        del sys.modules[tune.name]
    non_text = {m for m in driver.MODELS if m not in driver.TEXT_MODELS}
    assert set(runs.TUNED) == non_text | {"text_best"}


def test_a_row_without_its_tuned_file_fails_by_name(tmp_path, capsys, monkeypatch):
    runs = _launcher()
    monkeypatch.setattr(runs, "TUNED_DIR", tmp_path / "tuned")
    folder = tmp_path / "tuned_amazon_movies" / "mf" / "seed0"
    assert runs.launch(folder, ["experiment=tuned/amazon_movies_mf", "seed=0"]) == 1
    assert (
        f"{tmp_path / 'tuned' / 'amazon_movies_mf.yaml'} does not exist" in capsys.readouterr().out
    )
    assert not folder.exists()


def _tuned_run(folder, seed, warm, cold, val, epochs=None):
    """A run folder of a tuned table: per-user test NDCG@20 ``warm`` (users w0..) and
    ``cold`` (users c0..), validation means ``val`` per group."""
    import json

    import pandas as pd

    rows = [("main", f"w{u}", "warm", v) for u, v in enumerate(warm)]
    rows += [("main", f"c{u}", "cold", v) for u, v in enumerate(cold)]
    frame = pd.DataFrame(rows, columns=["task", "user_id", "group", "ndcg@20"])
    frame.insert(1, "user_idx", range(len(frame)))
    frame["recall@20"] = 2 * frame["ndcg@20"]
    frame["data_fingerprint"] = "amazon"
    frame["split_fingerprint"] = f"split-{seed}"
    (folder / ".hydra").mkdir(parents=True)
    overrides = [f"experiment=tuned/{folder.parent.name}", f"seed={seed}"]
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    metrics = {"best_epoch": 0, "time/total_s": 60.0}
    for group, values in (("all", warm + cold), ("warm", warm), ("cold", cold)):
        metrics[f"test/{group}/ndcg@20"] = sum(values) / len(values)
        metrics[f"test/{group}/recall@20"] = 2 * sum(values) / len(values)
        metrics[f"test/{group}/num_users"] = len(values)
        metrics[f"val/{group}/ndcg@20"] = val[group]
    history = []
    if epochs is not None:
        best, last = epochs
        metrics.update({"best_epoch": best, "epochs": last, "time/epoch_s": 2.0})
        history = [
            {"epoch": e, "val/all/ndcg@20": val["all"], "time/elapsed_s": 2.0 * (e + 1)}
            for e in range(last)
        ]
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "history.json").write_text(json.dumps(history))
    frame.to_parquet(folder / "per_user.parquet", index=False)


def test_the_tuned_section_picks_its_baselines_on_validation(bench, tmp_path, monkeypatch):
    """LightGCN is the strongest baseline on validation overall and on warm users,
    GF-CF on cold users (though LightGCN is better on their test figures): the verdict
    compares the text model with each group's validation choice, never the test one."""
    root, table = tmp_path / "runs", bench.TUNED_TABLES[0]
    warm = [0.10, 0.20, 0.30, 0.40]
    gfcf_cold = [0.02, 0.04, 0.06]
    for seed in (0, 1):
        base = root / table.name
        val_lightgcn = {"all": 0.30, "warm": 0.30, "cold": 0.05}
        val_gfcf = {"all": 0.20, "warm": 0.10, "cold": 0.08}
        # lightgcn is trained for 10 epochs, best at epoch 9: budget-bound
        _tuned_run(base / "lightgcn" / f"seed{seed}", seed, warm, [0.1] * 3, val_lightgcn, (9, 10))
        _tuned_run(base / "gfcf" / f"seed{seed}", seed, [0.05] * 4, gfcf_cold, val_gfcf)
        _tuned_run(
            base / "pop" / f"seed{seed}", seed, [0.01] * 4, [0.01] * 3, val_gfcf | {"all": 0.1}
        )
        text_cold = [1.5 * v for v in gfcf_cold]
        val_text = {"all": 0.5, "warm": 0.5, "cold": 0.5}  # text rows are never a baseline
        _tuned_run(base / "text_best" / f"seed{seed}", seed, warm, text_cold, val_text, (2, 10))
    tuned, trails = tmp_path / "tuned", tmp_path / "tuning"
    tuned.mkdir()
    trails.mkdir()
    (tuned / "amazon_movies_lightgcn.yaml").write_text(
        "# trail: experiments/tuning/amazon_movies_lightgcn.csv\n"
    )
    (trails / "amazon_movies_lightgcn.csv").write_text("trial,train_min\n0,10.5\n1,4.0\n")
    monkeypatch.setattr(bench, "TUNED_DIR", tuned)
    monkeypatch.setattr(bench, "TRAIL_DIR", trails)
    text = bench.tuned_section(table, root, tmp_path / "figures")
    assert "Baseline of the paired tests: **lightgcn**" in text
    lines = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| ")}
    assert (
        "| lightgcn: 2 trials, 14 min | 10 (10) | 2.0 | 1.0 | 2 of 2 seeds |" in lines["| lightgcn"]
    )
    assert "| 2 of 2 seeds |" in lines["| lightgcn"] and "| 0 of 2 seeds |" in lines["| text_best"]
    assert (
        "| nothing to tune |" in lines["| pop"]
        and "| no amazon_movies_gfcf.yaml |" in lines["| gfcf"]
    )
    # warm: text equals lightgcn user by user; cold: +50% over gfcf, the validation choice
    assert lines["| warm"].startswith("| warm | lightgcn | 0.2500 | 0.2500 | +0.0% |")
    assert lines["| warm"].endswith("not worse: **met** |")
    assert lines["| cold"].startswith("| cold | gfcf | 0.0400 | 0.0600 | +50.0% |")
    assert lines["| cold"].endswith(">= +30%: **met** |")
    assert (tmp_path / "figures" / table.curves).is_file()
