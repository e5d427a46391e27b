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
    jobs = runs.jobs(list(runs.TABLES), tmp_path)
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
