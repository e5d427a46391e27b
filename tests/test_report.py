"""gnnrec.report: grouping over seeds, paired significance tests, tables and figures.

Synthetic run folders hold hand-chosen per-user values; the expected p-values are
computed here from those definitions with plain Python (t statistic by its formula,
Wilcoxon by enumerating every sign assignment), not by the report's pandas code.
"""

import dataclasses
import importlib.util
import io
import itertools
import json
import math
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console
from scipy import stats

from gnnrec.report import (
    NoRunsError,
    collect_runs,
    curve_frame,
    holm,
    load_runs,
    main,
    markdown_mean_std,
    mean_std_table,
    metrics_table,
    plot_curves,
    report,
    short_label,
)
from gnnrec.report.stats import FINGERPRINTS, find_label

# ---------------------------------------------------------------- synthetic runs
SEEDS = (0, 1, 2)
USERS = range(6)
COLD = {0: {4, 5}, 1: {3, 5}, 2: {4, 5}}  # cold-start users depend on the seed
COLD_ITEM_USERS = (1, 2)
COMMON = ["experiment=cdr", "trainer.max_epochs=5"]
GROUPS = {  # label -> (overrides, seeds)
    "model=pop": (["model=pop"], SEEDS),
    "model=mf": (["model=mf"], SEEDS),
    "model=mf loss=softmax": (["model=mf", "loss=softmax"], (0, 1)),
}
# model=mf's ndcg@20 minus model=pop's, per seed and user (task main) ...
DELTA_MF = {
    0: [0.05, -0.02, 0.07, 0.11, -0.03, 0.13],
    1: [0.04, 0.01, -0.06, 0.09, 0.12, -0.01],
    2: [0.08, -0.04, 0.02, -0.05, 0.10, 0.06],
}
# ... and on the cold-item task. model=mf loss=softmax equals model=pop everywhere.
DELTA_MF_CI = {0: {1: 0.010, 2: -0.004}, 1: {1: 0.020, 2: -0.008}, 2: {1: 0.030, 2: 0.001}}


def value(label, seed, user, task="main"):
    """ndcg@20 of a user (recall@20 is twice it)."""
    if task == "main":
        base = 0.05 * user + 0.01 * seed
        return base + (DELTA_MF[seed][user] if label == "model=mf" else 0.0)
    base = 0.02 * user + 0.005 * seed
    return base + (DELTA_MF_CI[seed][user] if label == "model=mf" else 0.0)


def group_of(seed, user):
    return "cold" if user in COLD[seed] else "warm"


def per_user_frame(label, seed, split=None, data="data-a"):
    """The run's rows; users ``u`` have raw ids ``"u<u>"``; the split is ``split-<seed>``."""
    rows = [("main", u, group_of(seed, u), value(label, seed, u)) for u in USERS]
    rows += [("cold_item", u, "cold_item", value(label, seed, u, "ci")) for u in COLD_ITEM_USERS]
    frame = pd.DataFrame(rows, columns=["task", "user_idx", "group", "ndcg@20"])
    frame.insert(2, "user_id", [f"u{u}" for u in frame["user_idx"]])
    frame["recall@20"] = 2 * frame["ndcg@20"]
    frame["data_fingerprint"] = data
    frame["split_fingerprint"] = f"split-{seed}" if split is None else split
    return frame


def write_run(folder, overrides, per_user, history=None, metrics_extra=None):
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    metrics = {"best_epoch": 2}
    selections = {
        "all": per_user["task"] == "main",
        "warm": per_user["group"] == "warm",
        "cold": per_user["group"] == "cold",
        "cold_item": per_user["task"] == "cold_item",
    }
    for group, rows in selections.items():
        for metric in ("ndcg@20", "recall@20"):
            metrics[f"test/{group}/{metric}"] = float(per_user.loc[rows, metric].mean())
        metrics[f"test/{group}/num_users"] = int(rows.sum())
    metrics.update(metrics_extra or {})
    (folder / "metrics.json").write_text(json.dumps(metrics))
    per_user.to_parquet(folder / "per_user.parquet", index=False)
    if history is not None:
        (folder / "history.json").write_text(json.dumps(history))


def history(seed):
    return [
        {
            "epoch": e,
            "train/loss": 1 / (e + 1) + 0.1 * seed,
            "val/all/ndcg@20": 0.01 * e + 0.001 * seed,
            "time/elapsed_s": 30.0 * (e + 1) + 6.0 * seed,
        }
        for e in range(3)
    ]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A multirun folder: 3 groups x seeds, with location-only overrides that differ."""
    root = tmp_path_factory.mktemp("sweep")
    job = 0
    for label, (overrides, seeds) in GROUPS.items():
        for seed in seeds:
            location = [f"paths.cache_dir=/scratch/{job}", "tracker=none", f"hydra.run.dir=r{job}"]
            all_overrides = [*COMMON, *overrides, *location, f"seed={seed}"]
            if label == "model=mf" and seed == 2:  # the order of overrides does not matter
                all_overrides = all_overrides[::-1]
            write_run(
                root / str(job),
                all_overrides,
                per_user_frame(label, seed),
                history=None if label == "model=pop" else history(seed),
            )
            job += 1
    return root


def squeeze(markdown):
    """Markdown with runs of spaces as one (tabulate pads the columns)."""
    return re.sub(r" {2,}", " ", markdown)


# ------------------------------------------------------ independent expectations
def paired_values(label, metric):
    """Per user of ``metric``'s group: (model=pop, label) values averaged over shared seeds."""
    _, group, name = metric.split("/")
    scale = 2.0 if name == "recall@20" else 1.0
    seeds = GROUPS[label][1]
    pairs: dict[int, list[tuple[float, float]]] = {}
    for seed in seeds:
        if group == "cold_item":
            users, task = COLD_ITEM_USERS, "ci"
        else:
            users = [u for u in USERS if group == "all" or group_of(seed, u) == group]
            task = "main"
        for u in users:
            pair = (value("model=pop", seed, u, task), value(label, seed, u, task))
            pairs.setdefault(u, []).append(tuple(scale * x for x in pair))
    base = [statistics.mean(b for b, _ in v) for v in pairs.values()]
    other = [statistics.mean(o for _, o in v) for v in pairs.values()]
    return base, other, len(seeds)


def paired_differences(label, metric):
    """d_u = mean over the shared seeds of (label - model=pop), users of ``metric``'s group."""
    base, other, n_seeds = paired_values(label, metric)
    return [o - b for b, o in zip(base, other, strict=True)], n_seeds


def t_test_p(d):
    n = len(d)
    t = statistics.mean(d) / (statistics.stdev(d) / math.sqrt(n))
    return 2 * stats.t.sf(abs(t), n - 1)


def wilcoxon_exact_p(d):
    """Two-sided exact signed-rank p-value (no zeros, no tied |d|) by enumeration."""
    magnitudes = sorted(abs(x) for x in d)
    assert len(set(magnitudes)) == len(d) and 0 not in magnitudes
    rank = {m: i + 1 for i, m in enumerate(magnitudes)}
    w = sum(rank[abs(x)] for x in d if x > 0)
    sums = [
        sum(r for r, s in zip(range(1, len(d) + 1), signs, strict=True) if s)
        for signs in itertools.product((0, 1), repeat=len(d))
    ]
    low = sum(s <= w for s in sums) / len(sums)
    high = sum(s >= w for s in sums) / len(sums)
    return min(1.0, 2 * min(low, high))


def holm_by_hand(p):
    order = sorted(range(len(p)), key=lambda i: p[i])
    out, running = [0.0] * len(p), 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - k) * p[i]))
        out[i] = running
    return out


# ------------------------------------------------------------------------ tests
def test_groups_by_overrides_without_seed_and_location(sweep):
    runs = load_runs([sweep])
    assert [r.label for r in runs] == ["model=pop"] * 3 + ["model=mf"] * 3 + [
        "model=mf loss=softmax"
    ] * 2
    assert [r.seed for r in runs] == ["0", "1", "2", "0", "1", "2", "0", "1"]
    assert runs[0].overrides == ("experiment=cdr", "trainer.max_epochs=5", "model=pop")
    assert short_label("model=mf loss=softmax") == "mf loss=softmax"


def test_label_is_every_override_for_a_single_group_and_config_seed(tmp_path):
    write_run(tmp_path / "a", ["model=mf", "paths.data_dir=/x"], per_user_frame("model=mf", 0))
    (tmp_path / "a" / ".hydra" / "config.yaml").write_text("seed: 5\n")
    (run,) = load_runs([tmp_path])
    assert (run.label, run.seed, run.overrides) == ("model=mf", "5", ("model=mf",))


def test_summary_is_mean_and_sample_std_over_seeds(sweep, tmp_path):
    rep = report([sweep], out=tmp_path / "out")
    assert rep.metrics == [
        f"test/{g}/{m}"
        for g in ("warm", "cold", "all", "cold_item")
        for m in ("ndcg@20", "recall@20")
    ]
    for label, (_, seeds) in GROUPS.items():
        values = [per_user_frame(label, s).query("task == 'main'")["ndcg@20"].mean() for s in seeds]
        row = rep.summary.loc[label]
        assert row["n_seeds"] == len(seeds)
        assert row["test/all/ndcg@20 mean"] == pytest.approx(statistics.mean(values))
        assert row["test/all/ndcg@20 std"] == pytest.approx(statistics.stdev(values))
        cell = f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"
        assert cell in rep.markdown()
    assert "| `model=mf` `loss=softmax` | 2 |" in squeeze(rep.markdown())
    assert rep.significance is None
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "bars.png",
        "curves.png",
        "summary.csv",
        "summary.md",
        "summary.tex",
    ]
    back = pd.read_csv(tmp_path / "out" / "summary.csv", index_col="run")
    pd.testing.assert_frame_equal(back, rep.summary, check_dtype=False)


def test_significance_matches_independent_computation(sweep):
    rep = report([sweep], baseline="pop")
    sig = rep.significance
    assert rep.baseline == "model=pop"
    assert list(sig["run"].unique()) == ["model=mf", "model=mf loss=softmax"]
    assert len(sig) == 2 * len(rep.metrics)
    for _, row in sig.iterrows():
        d, n_seeds = paired_differences(row["run"], row["metric"])
        assert (row["n_users"], row["n_seeds"]) == (len(d), n_seeds)
        assert row["diff"] == pytest.approx(statistics.mean(d), abs=1e-12)
        if row["run"] == "model=mf loss=softmax":
            assert not any(d) and row["diff"] == 0
            assert (row["t_p"], row["wilcoxon_p"]) == (1.0, 1.0)
            assert row["note"] == (
                f"all paired differences are zero; {row['n_users']} paired users, fewer than "
                "30: too few to tell the methods apart"
            )
            continue
        assert row["t_p"] == pytest.approx(t_test_p(d), rel=1e-9)
        assert row["wilcoxon_p"] == pytest.approx(wilcoxon_exact_p(d), rel=1e-9)
        base, other, _ = paired_values(row["run"], row["metric"])
        assert row["baseline_mean"] == pytest.approx(statistics.mean(base))
        assert row["mean"] == pytest.approx(statistics.mean(other))
        change = 100 * (statistics.mean(other) - statistics.mean(base)) / statistics.mean(base)
        assert row["rel_change_pct"] == pytest.approx(change)
    assert list(sig["t_p_holm"]) == pytest.approx(holm_by_hand(list(sig["t_p"])))
    assert list(sig["wilcoxon_p_holm"]) == pytest.approx(holm_by_hand(list(sig["wilcoxon_p"])))
    # cold users differ by seed: users 3 (seed 1), 4 (seeds 0, 2), 5 (all seeds)
    cold = sig[(sig["run"] == "model=mf") & (sig["metric"] == "test/cold/ndcg@20")].iloc[0]
    assert cold["n_users"] == 3
    assert cold["diff"] == pytest.approx((0.09 + (-0.03 + 0.10) / 2 + (0.13 - 0.01 + 0.06) / 3) / 3)


def single_domain_runs(root):
    """model=pop and model=mf, seed 0, on one domain: 40 users, all warm, so warm repeats
    all; 3 of them have a cold item."""
    for label in ("model=pop", "model=mf"):
        rows = []
        for u in range(40):
            delta = 0.002 * ((u * 37) % 11 - 4) if label == "model=mf" else 0.0
            rows.append(("main", u, "warm", 0.01 * (u % 7) + delta))
        for u in range(3):
            rows.append(
                ("cold_item", u, "cold_item", 0.1 * u + (0.01 * u if label == "model=mf" else 0))
            )
        frame = pd.DataFrame(rows, columns=["task", "user_idx", "group", "ndcg@20"])
        frame.insert(2, "user_id", [f"u{u}" for u in frame["user_idx"]])
        frame["recall@20"] = 2 * frame["ndcg@20"]
        frame["data_fingerprint"], frame["split_fingerprint"] = "data-a", "split-0"
        extra = {"test/warm/same_as": "all", "val/warm/same_as": "all"}
        write_run(root / label[6:], [label, "seed=0"], frame, metrics_extra=extra)
    return root


def test_a_group_that_repeats_all_is_tested_once_and_small_groups_are_marked(tmp_path):
    metrics = ["test/warm/ndcg@20", "test/all/ndcg@20", "test/cold_item/ndcg@20"]
    rep = report([single_domain_runs(tmp_path)], baseline="model=pop", metrics=metrics)
    sig = rep.significance
    assert list(sig["metric"]) == metrics
    assert list(sig["n_users"]) == [40, 40, 3]
    assert list(sig["same_as"]) == ["test/all/ndcg@20", "", ""]
    d_all = [0.002 * ((u * 37) % 11 - 4) for u in range(40)]
    d_ci = [0.01 * u for u in range(3)]
    p_all, p_ci = t_test_p(d_all), t_test_p(d_ci)
    assert list(sig["t_p"]) == pytest.approx([p_all, p_all, p_ci], rel=1e-9)
    # Holm over the two distinct tests, not three; the repeat shows its row's values
    adjusted = holm_by_hand([p_all, p_ci])
    assert list(sig["t_p_holm"]) == pytest.approx([adjusted[0], *adjusted], rel=1e-9)
    w_adjusted = holm_by_hand(list(sig["wilcoxon_p"][1:]))
    assert list(sig["wilcoxon_p_holm"]) == pytest.approx([w_adjusted[0], *w_adjusted])
    assert list(sig["note"]) == [
        "same paired per-user values as test/all/ndcg@20: tested once, there (counted once "
        "in the Holm adjustment)",
        "also stands for test/warm/ndcg@20 (same paired per-user values)",
        "3 paired users, fewer than 30: too few to tell the methods apart",
    ]
    text = squeeze(rep.markdown())
    assert "Holm adjustment over the 2 distinct comparisons of this table, per test" in text
    assert rep.notes[:2] == [
        "test/warm repeats test/all in 2 of 2 runs (the same users, held-out items and "
        "candidates): its numbers are not a separate result",
        "test/cold_item has fewer than 30 users in 2 of 2 runs (3 users): its means are too "
        "noisy to rank methods by",
    ]


def test_holm_adjustment_skips_nan():
    out = holm([0.01, 0.04, 0.03, float("nan")])
    assert list(out[:3]) == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(out[3])


def test_significance_files_and_latex(sweep, tmp_path):
    report([sweep], baseline="model=pop", out=tmp_path, metrics=["test/cold/ndcg@20"])
    names = {p.name for p in tmp_path.iterdir()}
    assert {"significance.md", "significance.csv", "significance.tex"} <= names
    assert not any(n.endswith(".tmp") for n in names)
    tex = (tmp_path / "significance.tex").read_text()
    assert tex.startswith("\\begin{tabular}") and "test/cold/ndcg@20" in tex
    assert "model=mf loss=softmax" in tex and "all paired differences are zero" in tex
    assert (
        "$" in (tmp_path / "summary.tex").read_text()
        and "\\pm" in (tmp_path / "summary.tex").read_text()
    )
    md = (tmp_path / "significance.md").read_text()
    assert "| `model=mf` | test/cold/ndcg@20 | 3 | 3 |" in squeeze(md)
    for png in ("bars.png", "curves.png"):
        data = (tmp_path / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_learning_curves_mean_and_std_over_seeds(sweep):
    runs = load_runs([sweep])
    frame = curve_frame(runs, "val/all/ndcg@20")
    assert list(frame["run"].unique()) == ["model=mf", "model=mf loss=softmax"]  # pop: no history
    row = frame[(frame["run"] == "model=mf") & (frame["epoch"] == 1)].iloc[0]
    assert row["mean"] == pytest.approx(0.011) and row["std"] == pytest.approx(0.001)
    fig = plot_curves(runs)
    assert [ax.get_ylabel() for ax in fig.axes] == ["val/all/ndcg@20", "train/loss"]
    with pytest.raises(ValueError, match="no run's history holds nope"):
        plot_curves(runs, metric="nope", loss=None)


def test_learning_curves_against_wall_clock_minutes(sweep):
    runs = load_runs([sweep])
    seeds = sorted({int(r.seed) for r in runs if r.label == "model=mf"})
    frame = curve_frame(runs, "val/all/ndcg@20")
    mf = frame[frame["run"] == "model=mf"]
    expected = [sum(30.0 * (e + 1) + 6.0 * s for s in seeds) / len(seeds) / 60 for e in range(3)]
    assert mf["minutes"].tolist() == pytest.approx(expected)
    fig = plot_curves(runs, loss=None, x="minutes")
    line = fig.axes[0].get_lines()[0]
    assert line.get_xdata().tolist() == pytest.approx(expected)
    assert fig.axes[0].get_xlabel().startswith("wall-clock minutes")
    stale = [
        dataclasses.replace(
            r,
            history=[{k: v for k, v in rec.items() if k != "time/elapsed_s"} for rec in r.history],
        )
        for r in runs
    ]
    with pytest.raises(ValueError, match="needs time/elapsed_s"):
        plot_curves(stale, loss=None, x="minutes")
    with pytest.raises(ValueError, match="x must be 'epoch' or 'minutes'"):
        plot_curves(runs, x="hours")


def test_learning_curves_draw_a_reference_line_on_its_panel_only(sweep):
    runs = load_runs([sweep])
    fig = plot_curves(runs, reference={"train/loss": 0.25})
    metric_ax, loss_ax = fig.axes
    flat = [ln for ln in loss_ax.get_lines() if set(ln.get_ydata()) == {0.25}]
    assert len(flat) == 1 and flat[0].get_linestyle() == "--"
    assert not [ln for ln in metric_ax.get_lines() if set(ln.get_ydata()) == {0.25}]
    with pytest.raises(ValueError, match=r"reference keys \['val/cold/ndcg@20'\] are not plotted"):
        plot_curves(runs, reference={"val/cold/ndcg@20": 0.1})


@pytest.mark.parametrize(
    ("baseline", "message"),
    [("nope", "matches no group"), ("mf", "ambiguous, it is part of 2 labels")],
)
def test_baseline_errors_list_the_labels(sweep, baseline, message):
    with pytest.raises(ValueError, match=message) as err:
        report([sweep], baseline=baseline)
    assert "'model=mf loss=softmax'" in str(err.value) and "'model=pop'" in str(err.value)


def test_baseline_matches_whole_overrides_before_substrings(tmp_path):
    # "model=lightgcn" is a substring of both labels but a whole override of one.
    make_run(tmp_path / "0", ["encoder=none", "model=lightgcn"], {"test/all/ndcg@20": 0.1})
    make_run(tmp_path / "1", ["model=lightgcn_text", "loss=softmax"], {"test/all/ndcg@20": 0.2})
    runs = load_runs([tmp_path])
    assert find_label(runs, "model=lightgcn") == "encoder=none model=lightgcn"
    assert find_label(runs, "lightgcn_text") == "model=lightgcn_text loss=softmax"
    with pytest.raises(ValueError, match="ambiguous"):
        find_label(runs, "lightgcn")


def test_cli_error_exits_2_with_the_message(sweep, capsys):
    with pytest.raises(SystemExit) as err:
        main([str(sweep), "--baseline", "nope"])
    assert err.value.code == 2
    assert "gnnrec-report: error: baseline 'nope' matches no group" in capsys.readouterr().err


def test_no_runs_and_missing_folder(tmp_path):
    with pytest.raises(NoRunsError, match="no metrics.json under"):
        report([tmp_path])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        report([tmp_path / "absent"])
    assert collect_runs([tmp_path]).empty


def test_missing_per_user_names_the_file(sweep, tmp_path):
    copy = shutil.copytree(sweep, tmp_path / "sweep")
    (copy / "4" / "per_user.parquet").unlink()  # model=mf, seed 1
    report([copy])  # the summary needs no per-user values
    with pytest.raises(FileNotFoundError, match=r"4/per_user.parquet does not exist") as err:
        report([copy], baseline="model=pop")
    assert "gnnrec-evaluate" in str(err.value)


def test_groups_without_shared_seed_or_users(sweep, tmp_path):
    copy = shutil.copytree(sweep, tmp_path / "sweep")
    write_run(
        copy / "20", [*COMMON, "model=x", "seed=7"], per_user_frame("model=pop", 0, split="split-7")
    )
    with pytest.raises(ValueError, match=r"no run of 'model=x' shares a split"):
        report([copy], baseline="model=pop")
    shutil.rmtree(copy / "20")
    other = per_user_frame("model=pop", 0).assign(user_id=lambda f: f["user_id"] + "x")
    write_run(copy / "20", [*COMMON, "model=x", "seed=0"], other)
    with pytest.raises(ValueError, match="have no user in common"):
        report([copy], baseline="model=pop")


def test_users_pair_on_raw_ids_not_on_internal_indices(sweep, tmp_path):
    """Other preprocessing renumbers users; the pairs must still join the same people."""
    copy = shutil.copytree(sweep, tmp_path / "sweep")
    expected = report([sweep], baseline="model=pop").significance
    for job in (3, 4, 5):  # the model=mf runs
        frame = pd.read_parquet(copy / str(job) / "per_user.parquet")
        frame["user_idx"] = 5 - frame["user_idx"]  # same people, other numbers
        frame.to_parquet(copy / str(job) / "per_user.parquet", index=False)
    got = report([copy], baseline="model=pop").significance
    pd.testing.assert_frame_equal(got, expected)


@pytest.mark.parametrize(
    ("data", "message"),
    [("data-a", "the same data but different splits"), ("data-b", "different data")],
)
def test_runs_over_other_splits_or_data_are_refused(sweep, tmp_path, data, message):
    copy = shutil.copytree(sweep, tmp_path / "sweep")
    frame = per_user_frame("model=mf", 1, split="split-other", data=data)
    frame.to_parquet(copy / "4" / "per_user.parquet", index=False)  # model=mf, seed 1
    with pytest.raises(ValueError, match=message) as err:
        report([copy], baseline="model=pop")
    text = str(err.value)
    assert f"{copy / '4'}" in text and f"{copy / '1'}" in text  # both runs, by folder


def test_old_per_user_files_are_refused_with_the_fix(sweep, tmp_path):
    copy = shutil.copytree(sweep, tmp_path / "sweep")
    old = per_user_frame("model=mf", 1).drop(columns=["user_id", *FINGERPRINTS])
    old.to_parquet(copy / "4" / "per_user.parquet", index=False)
    with pytest.raises(ValueError, match=r"gnnrec-evaluate .*4`") as err:
        report([copy], baseline="model=pop")
    assert "user_id" in str(err.value)


def test_a_fixed_split_pairs_every_training_seed(tmp_path):
    """data.split.seed fixed: both seeds of each group share one split; users once each."""
    for job, (label, seed) in enumerate(
        [("model=pop", 0), ("model=pop", 1), ("model=mf", 0), ("model=mf", 1)]
    ):
        frame = per_user_frame(label, seed, split="split-fixed")
        frame["group"] = [
            group_of(0, u) if t == "main" else t
            for t, u in zip(frame["task"], frame["user_idx"], strict=True)
        ]
        write_run(tmp_path / str(job), [label, f"seed={seed}"], frame)
    row = report([tmp_path], baseline="model=pop", metrics=["test/all/ndcg@20"]).significance
    row = row.iloc[0]
    assert (row["n_users"], row["n_seeds"]) == (6, 2)
    # per user: mean over seeds 0 and 1 of (mf - pop) = mean of the two DELTA_MF rows
    want = statistics.mean(statistics.mean(DELTA_MF[s][u] for s in (0, 1)) for u in USERS)
    assert row["diff"] == pytest.approx(want)


def test_duplicate_seed_and_unknown_metric(sweep, tmp_path):
    copy = shutil.copytree(sweep, tmp_path / "sweep")
    shutil.copytree(copy / "0", copy / "30")
    with pytest.raises(ValueError, match="'model=pop' has two runs with seed 0"):
        report([copy])
    with pytest.raises(KeyError, match="no run recorded"):
        report([sweep], metrics=["test/all/ndcg@999"])


def test_summarize_script_still_works(sweep, tmp_path, capsys):
    script = Path(__file__).resolve().parents[1] / "experiments" / "summarize.py"
    spec = importlib.util.spec_from_file_location("summarize_script", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main([str(sweep), "--plot", str(tmp_path / "b.png")])
    assert "| `model=mf` `loss=softmax` | 2 |" in squeeze(capsys.readouterr().out)
    assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"


def test_real_runs_end_to_end(tmp_path, data_root):
    """Two tiny real runs through gnnrec.api.train, then the gnnrec-report command."""
    from gnnrec.api import train

    common = [
        "data=ml100k",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.progress=false",
        "tracker=none",
        "eval.sampled_negatives=0",
        f"paths.cache_dir={tmp_path / 'cache'}",
    ]
    metrics = {
        model: train([*common, f"model={model}"], output_dir=tmp_path / "runs" / model)
        for model in ("pop", "mf")
    }
    cli = Path(sys.executable).parent / "gnnrec-report"
    out = tmp_path / "report"
    done = subprocess.run(
        [str(cli), str(tmp_path / "runs"), "--baseline", "model=pop", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "## Paired tests against `model=pop`" in done.stdout
    summary = pd.read_csv(out / "summary.csv", index_col="run")
    for model in ("pop", "mf"):
        for key in ("test/all/ndcg@20", "test/warm/recall@20"):
            assert summary.loc[f"model={model}", f"{key} mean"] == pytest.approx(
                metrics[model][key], rel=1e-12
            )
    sig = pd.read_csv(out / "significance.csv")
    assert set(sig["run"]) == {"model=mf"} and (sig["n_seeds"] == 1).all()
    all_row = sig[sig["metric"] == "test/all/ndcg@20"].iloc[0]
    assert all_row["n_users"] == metrics["mf"]["test/all/num_users"]
    assert all_row["diff"] == pytest.approx(
        metrics["mf"]["test/all/ndcg@20"] - metrics["pop"]["test/all/ndcg@20"]
    )
    # single-domain data: every user is warm, so test/warm repeats test/all and is tested once
    warm_row = sig[sig["metric"] == "test/warm/ndcg@20"].iloc[0]
    assert warm_row["same_as"] == "test/all/ndcg@20"
    assert warm_row["t_p_holm"] == all_row["t_p_holm"]
    assert list(sig.loc[sig["same_as"].isna(), "metric"]) == [
        f"test/{g}/{m}"
        for g in ("all", "cold_item", "cold_item_only")
        for m in ("ndcg@20", "recall@20")
    ]
    assert "Holm adjustment over the 6 distinct comparisons" in squeeze(done.stdout)
    assert {p.name for p in out.iterdir()} >= {"summary.tex", "significance.tex", "bars.png"}


# ------------------------------------------------------- the original helpers
def make_run(folder, overrides, metrics):
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (folder / "metrics.json").write_text(json.dumps(metrics))


def test_mean_and_std_over_seeds(tmp_path):
    make_run(tmp_path / "0", ["model=mf", "seed=0"], {"test/warm/ndcg@20": 0.1})
    make_run(tmp_path / "1", ["model=mf", "seed=1"], {"test/warm/ndcg@20": 0.3})
    make_run(tmp_path / "2", ["model=pop", "seed=0"], {"test/warm/ndcg@20": 0.05})
    runs = collect_runs([tmp_path])
    assert sorted(runs["seed"]) == ["0", "0", "1"]
    table = mean_std_table(runs, ["test/warm/ndcg@20"])
    assert table.loc["model=mf", "runs"] == 2
    assert table.loc["model=mf", "test/warm/ndcg@20 mean"] == pytest.approx(0.2)
    # sample std of {0.1, 0.3}: sqrt(((0.1)^2 + (0.1)^2) / 1)
    assert table.loc["model=mf", "test/warm/ndcg@20 std"] == pytest.approx(0.02**0.5)
    text = markdown_mean_std(table, ["test/warm/ndcg@20"])
    assert "| model=mf | 2 | 0.2000 ± 0.1414 |" in squeeze(text)


def test_console_table_lists_groups_in_order():
    metrics = {
        "test/all/ndcg@20": 0.3,
        "test/cold/ndcg@20": 0.2,
        "test/warm/ndcg@20": 0.4,
        "test/warm/num_users": 10,
        "test/cold/num_users": 5,
        "test/all/num_users": 15,
        "val/warm/ndcg@20": 0.9,
    }
    buffer = io.StringIO()
    metrics_table(metrics, console=Console(file=buffer, width=120))
    lines = [line for line in buffer.getvalue().splitlines() if "│" in line]
    assert [line.split("│")[1].strip() for line in lines] == ["warm", "cold", "all"]
    assert "0.4000" in lines[0] and "0.9000" not in buffer.getvalue()


# ------------------------------------------------- grouping by the resolved config
def config_run(folder, overrides, seed_value=0.1):
    """A run folder whose .hydra/config.yaml is the real composed config of ``overrides``."""
    from omegaconf import OmegaConf

    from gnnrec.api import compose

    make_run(folder, overrides, {"test/all/ndcg@20": seed_value})
    text = OmegaConf.to_yaml(compose(overrides))
    (folder / ".hydra" / "config.yaml").write_text(text)


def test_groups_are_what_ran_not_how_it_was_spelt(tmp_path):
    # The same configuration written three ways, with other locations and seeds.
    config_run(tmp_path / "0", ["model=lightgcn", "seed=0", "paths.cache_dir=/a"])
    config_run(tmp_path / "1", ["model.num_layers=3", "seed=1", "trainer.progress=false"])
    config_run(tmp_path / "2", ["seed=2", "tracker=none", "trainer.resume=null"])
    config_run(tmp_path / "3", ["model.num_layers=2", "seed=0"])
    config_run(tmp_path / "4", ["model=lightgcn_text", "loss=softmax", "seed=0"])
    runs = load_runs([tmp_path])
    labels = [r.label for r in runs]
    assert labels[0] == labels[1] == labels[2] == "model=lightgcn model.num_layers=3 loss=bpr"
    assert labels[3] == "model=lightgcn model.num_layers=2 loss=bpr"
    assert labels[4] == "model=lightgcn_text loss=softmax"
    assert "paths" not in " ".join(labels) and "seed" not in " ".join(labels)
    assert find_label(runs, "model=lightgcn_text") == labels[4]
    assert find_label(runs, "model=lightgcn model.num_layers=2") == labels[3]
    with pytest.raises(ValueError, match="ambiguous"):
        find_label(runs, "model.num_layers=2")  # lightgcn_text runs two layers as well
    assert find_label(runs, "model=lightgcn model.num_layers=3") == labels[0]
    assert find_label(runs, "loss=softmax") == labels[4]
    with pytest.raises(ValueError, match="ambiguous"):
        find_label(runs, "model=lightgcn")  # two groups chose lightgcn; never lightgcn_text


def test_a_fixed_split_seed_groups_training_seeds_and_a_following_one_is_dropped(tmp_path):
    config_run(tmp_path / "0", ["model=mf", "seed=0", "data.split.seed=7"])
    config_run(tmp_path / "1", ["model=mf", "seed=1", "data.split.seed=7"])
    config_run(tmp_path / "2", ["model=mf", "seed=0", "data.split.seed=8"])
    config_run(tmp_path / "3", ["model=mf", "seed=1"])  # data.split.seed follows seed
    config_run(tmp_path / "4", ["model=mf", "seed=2"])
    runs = load_runs([tmp_path])
    assert [r.label for r in runs] == [
        "data.split.seed=7",
        "data.split.seed=7",
        "data.split.seed=8",
        "(defaults)",
        "(defaults)",
    ]
    assert "data.split.seed" not in runs[3].config and runs[0].config["data.split.seed"] == 7


def test_a_label_function_names_the_groups(sweep):
    """Groups named by the caller (e.g. by folder) replace the config-derived labels;
    runs given one name form one group, and the baseline is found by that name."""
    names = {"model=pop": "popularity", "model=mf": "mf", "model=mf loss=softmax": "mf"}
    derived = {r.path: r.label for r in load_runs([sweep])}
    # the two MF groups share seeds 0 and 1: renaming them alike must be refused
    with pytest.raises(ValueError, match="seed"):
        report([sweep], label=lambda r: names[derived[r.path]])
    rep = report(
        [sweep],
        baseline="popularity",
        label=lambda r: {"model=pop": "popularity"}.get(derived[r.path], derived[r.path] + "!"),
    )
    assert rep.baseline == "popularity"
    assert list(rep.summary.index) == ["popularity", "model=mf!", "model=mf loss=softmax!"]
    assert set(rep.significance["run"]) == {"model=mf!", "model=mf loss=softmax!"}
