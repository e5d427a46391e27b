"""Mean ± std over seeds, and paired per-user significance tests against a baseline.

Pairing. Which users are cold-start depends on the seed (the split draws them per
seed), so two groups are compared only on the seeds both have, and within a seed only
on the users both evaluated: rows are joined on ``(seed, user_idx)``. A user evaluated
under several seeds is then *averaged over those seeds* (per method), so every user
counts once and the tests see one paired difference per distinct user,
``d_u = mean_s(method_{s,u}) - mean_s(baseline_{s,u})``. Counting a user once per seed
instead would treat the same person's repeated measurements as independent and
overstate the evidence; the seed-to-seed variation of the whole model is what the
summary's std reports.

Tests on the ``d_u``: Student's paired t-test (:func:`scipy.stats.ttest_rel`) and the
Wilcoxon signed-rank test (:func:`scipy.stats.wilcoxon`, zero differences dropped,
``method="auto"``: exact for at most 50 non-zero differences without ties, else the
normal approximation), both two-sided. When every difference is zero both p-values are
1.0 (the methods are identical on these users; scipy's Wilcoxon refuses this case); with
fewer than two users they are NaN. Holm's step-down adjustment is applied over all rows
of the table (all compared groups and metrics), separately for each test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from gnnrec.report.runs import Run

__all__ = [
    "check_unique_seeds",
    "find_label",
    "holm",
    "paired_users",
    "paired_tests",
    "significance",
    "summarize",
]


def _labels(runs: Sequence[Run]) -> list[str]:
    return list(dict.fromkeys(r.label for r in runs))


def _seed_key(seed: str) -> tuple:
    return (0, int(seed), "") if seed.lstrip("-").isdigit() else (1, 0, seed)


def check_unique_seeds(runs: Sequence[Run]) -> None:
    """Raise when one group holds two runs of the same seed (they would count twice)."""
    seen: dict[tuple[str, str], Run] = {}
    for r in runs:
        other = seen.setdefault((r.label, r.seed), r)
        if other is not r:
            raise ValueError(
                f"group {r.label!r} has two runs with seed {r.seed}: {other.path} and "
                f"{r.path}; a seed must count once, so pass only one of them"
            )


def summarize(runs: Sequence[Run], metrics: Sequence[str]) -> pd.DataFrame:
    """Mean and std (ddof=1) over seeds of each metric, one row per group.

    Args:
        runs: Labelled runs (:func:`gnnrec.report.runs.load_runs`).
        metrics: Metric keys (``"test/cold/ndcg@20"``); a run without a key is left out
            of that key's mean.

    Returns:
        A frame indexed by group label (``run``) with ``n_seeds``, ``seeds`` (the seeds,
        comma-separated) and ``"<metric> mean"``, ``"<metric> std"`` columns (std is NaN
        for a single seed).
    """
    rows = []
    for label in _labels(runs):
        group = [r for r in runs if r.label == label]
        seeds = sorted((r.seed for r in group), key=_seed_key)
        row: dict[str, object] = {"run": label, "n_seeds": len(group), "seeds": ",".join(seeds)}
        for m in metrics:
            values = pd.Series([r.metrics.get(m, np.nan) for r in group], dtype=float)
            row[f"{m} mean"] = values.mean()
            row[f"{m} std"] = values.std(ddof=1)
        rows.append(row)
    return pd.DataFrame(rows).set_index("run")


def find_label(runs: Sequence[Run], name: str) -> str:
    """The group label ``name`` is, else the only label holding all of its overrides,
    else the only label containing it as a substring.

    ``"model=lightgcn"`` thus picks ``"encoder=none model=lightgcn"`` over
    ``"model=lightgcn_text loss=softmax"``, whole overrides being compared first.

    Raises:
        ValueError: No label, or more than one, matches; the message lists the labels.
    """
    labels = _labels(runs)
    if name in labels:
        return name
    wanted = set(name.split())
    matches = [label for label in labels if wanted <= set(label.split())]
    if len(matches) != 1:
        matches = [label for label in labels if name in label]
    if len(matches) == 1:
        return matches[0]
    listing = "; ".join(repr(label) for label in labels)
    if not matches:
        raise ValueError(f"baseline {name!r} matches no group; the groups are: {listing}")
    raise ValueError(
        f"baseline {name!r} is ambiguous, it is part of {len(matches)} labels "
        f"({'; '.join(map(repr, matches))}); give one exactly. The groups are: {listing}"
    )


def _select(frame: pd.DataFrame, metric: str, where: str) -> pd.DataFrame:
    """The rows of ``frame`` (a per_user.parquet) in ``metric``'s user group."""
    parts = metric.split("/")
    if len(parts) != 3 or parts[0] != "test":
        raise ValueError(
            f"per-user values exist for test metrics '<test>/<group>/<metric>' only, got {metric!r}"
        )
    _, group, column = parts
    missing = {"task", "user_idx", "group", column} - set(frame.columns)
    if missing:
        raise KeyError(
            f"{where} has no column(s) {sorted(missing)} (needed for {metric}); its columns: "
            f"{list(frame.columns)}"
        )
    if group == "all":
        rows = frame[frame["task"] == "main"]
    elif group == "cold_item":
        rows = frame[frame["task"] == "cold_item"]
    else:
        rows = frame[(frame["task"] == "main") & (frame["group"] == group)]
    if rows["user_idx"].duplicated().any():
        raise ValueError(f"{where}: a user_idx appears twice in the rows of {metric}")
    return rows[["user_idx", column]].rename(columns={column: "value"})


def paired_users(
    baseline: Sequence[Run],
    other: Sequence[Run],
    metric: str,
    cache: dict | None = None,
) -> tuple[pd.DataFrame, list[str], int]:
    """Per-user values of two groups, paired on ``(seed, user_idx)`` and averaged over seeds.

    Args:
        baseline: The baseline group's runs (one per seed).
        other: The compared group's runs.
        metric: A test metric key, e.g. ``"test/cold/ndcg@20"``.
        cache: Optional dict reused between calls to read each parquet file once.

    Returns:
        ``(frame, seeds, unpaired)``: ``frame`` indexed by ``user_idx`` with ``baseline``,
        ``other`` and ``n_seeds`` (seeds the user was paired in) columns; the shared seeds;
        how many users of a shared seed were evaluated by one group only.

    Raises:
        FileNotFoundError: A run of a shared seed has no ``per_user.parquet``.
        ValueError: The groups share no seed, or no user.
    """
    cache = {} if cache is None else cache
    base_by_seed = {r.seed: r for r in baseline}
    other_by_seed = {r.seed: r for r in other}
    seeds = sorted(set(base_by_seed) & set(other_by_seed), key=_seed_key)
    b_label, o_label = baseline[0].label, other[0].label
    if not seeds:
        raise ValueError(
            f"{o_label!r} (seeds {sorted(other_by_seed, key=_seed_key)}) and the baseline "
            f"{b_label!r} (seeds {sorted(base_by_seed, key=_seed_key)}) share no seed; users "
            "are only paired within a seed, because the split depends on it"
        )
    pieces, unpaired = [], 0
    for seed in seeds:
        sides = []
        for run in (base_by_seed[seed], other_by_seed[seed]):
            if run.path not in cache:
                cache[run.path] = run.per_user()
            sides.append(_select(cache[run.path], metric, str(run.per_user_path)))
        joined = sides[0].merge(sides[1], on="user_idx", suffixes=("_b", "_o"))
        unpaired += len(sides[0]) + len(sides[1]) - 2 * len(joined)
        pieces.append(joined)
    paired = pd.concat(pieces, ignore_index=True)
    if paired.empty:
        raise ValueError(
            f"{o_label!r} and the baseline {b_label!r} have no user in common for {metric} "
            f"in seeds {seeds}; check that both were evaluated on the same data and split"
        )
    frame = paired.groupby("user_idx").agg(
        baseline=("value_b", "mean"), other=("value_o", "mean"), n_seeds=("value_b", "size")
    )
    return frame, seeds, unpaired


def paired_tests(other: np.ndarray, baseline: np.ndarray) -> tuple[float, float, str]:
    """Two-sided paired t-test and Wilcoxon signed-rank p-values, with a note.

    All-zero differences give ``(1.0, 1.0, note)``; fewer than two pairs ``(nan, nan,
    note)``.
    """
    from scipy import stats

    other, baseline = np.asarray(other, dtype=float), np.asarray(baseline, dtype=float)
    diff = other - baseline
    if len(diff) < 2:
        return math.nan, math.nan, "fewer than 2 paired users"
    if not np.any(diff):
        return 1.0, 1.0, "all paired differences are zero"
    t_p = float(stats.ttest_rel(other, baseline).pvalue)
    note = ""
    try:
        w_p = float(stats.wilcoxon(other, baseline).pvalue)
    except ValueError as err:
        w_p, note = math.nan, f"wilcoxon: {err}"
    return t_p, w_p, note


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaNs are left out and stay NaN).

    With the ``m`` p-values sorted, ``p_(1) <= ... <= p_(m)``, the adjusted value of
    ``p_(i)`` is ``max_{j <= i} min(1, (m - j + 1) p_(j))``.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = len(valid)
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        out[idx] = running
    return out


def significance(runs: Sequence[Run], baseline: str, metrics: Sequence[str]) -> pd.DataFrame:
    """Paired per-user tests of every group against ``baseline`` (see the module docstring).

    Args:
        runs: Labelled runs (:func:`gnnrec.report.runs.load_runs`).
        baseline: A group label, or a part of exactly one (:func:`find_label`).
        metrics: Test metric keys; other keys (``val/...``) have no per-user values and
            are skipped.

    Returns:
        One row per (group, metric): ``run``, ``baseline``, ``metric``, ``n_users``,
        ``n_seeds``, ``baseline_mean`` and ``mean`` (over the paired users),
        ``diff`` (``mean - baseline_mean``), ``rel_change_pct`` (``100 * diff /
        baseline_mean``, NaN when that is 0), ``t_p``, ``wilcoxon_p``, ``t_p_holm``,
        ``wilcoxon_p_holm`` and ``note``.
    """
    label = find_label(runs, baseline)
    base = [r for r in runs if r.label == label]
    keys = [m for m in metrics if m.startswith("test/")]
    cache: dict = {}
    rows = []
    for other_label in _labels(runs):
        if other_label == label:
            continue
        other = [r for r in runs if r.label == other_label]
        for metric in keys:
            frame, seeds, unpaired = paired_users(base, other, metric, cache)
            t_p, w_p, note = paired_tests(frame["other"].to_numpy(), frame["baseline"].to_numpy())
            b_mean, o_mean = frame["baseline"].mean(), frame["other"].mean()
            notes = [note] if note else []
            if unpaired:
                notes.append(f"{unpaired} users evaluated by one group only, left out")
            rows.append(
                {
                    "run": other_label,
                    "baseline": label,
                    "metric": metric,
                    "n_users": len(frame),
                    "n_seeds": len(seeds),
                    "baseline_mean": b_mean,
                    "mean": o_mean,
                    "diff": o_mean - b_mean,
                    "rel_change_pct": 100 * (o_mean - b_mean) / b_mean if b_mean else math.nan,
                    "t_p": t_p,
                    "wilcoxon_p": w_p,
                    "note": "; ".join(notes),
                }
            )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table.insert(table.columns.get_loc("note"), "t_p_holm", holm(table["t_p"]))
    table.insert(table.columns.get_loc("note"), "wilcoxon_p_holm", holm(table["wilcoxon_p"]))
    return table
