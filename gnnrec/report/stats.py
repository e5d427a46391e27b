"""Mean ± std over seeds, and paired per-user significance tests against a baseline.

Pairing. ``per_user.parquet`` carries each user's raw id (``user_id``) and fingerprints
of the processed data and of the split (``data_fingerprint``, ``split_fingerprint``).
A compared run pairs with the baseline runs of the *same split* (a seed usually draws
its own split; with ``data.split.seed`` fixed, all training seeds share one), and
users are joined on ``(task, user_id)``, never on internal indices, which other data or
preprocessing renumber. A run whose seed a baseline run shares while their splits
differ is refused, naming both runs and whether the data or only the split differs;
files without these columns (older runs) are refused with the command that rewrites
them (``gnnrec-evaluate <run>``). Within a split each side's value of a user is its
mean over that side's runs there; a user paired in several splits is then *averaged
over them*, so every user counts once and the tests see one paired difference per
distinct user, ``d_u = mean_s(method_{s,u}) - mean_s(baseline_{s,u})``. Counting a user once per seed
instead would treat the same person's repeated measurements as independent and
overstate the evidence; the seed-to-seed variation of the whole model is what the
summary's std reports.

Tests on the ``d_u``: Student's paired t-test (:func:`scipy.stats.ttest_rel`) and the
Wilcoxon signed-rank test (:func:`scipy.stats.wilcoxon`, zero differences dropped,
``method="auto"``: exact for at most 50 non-zero differences without ties, else the
normal approximation), both two-sided. When every difference is zero both p-values are
1.0 (the methods are identical on these users; scipy's Wilcoxon refuses this case); with
fewer than two users they are NaN. Holm's step-down adjustment is applied over all rows
of the table (all compared groups and metrics), separately for each test, counting
*repeated* rows once: a row whose paired per-user values (users, baseline and compared
values) equal another row's of the same compared group and metric, such as
``test/warm/...`` on single-domain data where every user is warm and ``warm`` repeats
``all``, is one test, not two. It is tested with the row it repeats (``all`` if that is
one of them, else the first in the table), shows that row's p-values, names it in
``same_as`` and ``note``, and is left out of the Holm count. A row with fewer than
:data:`gnnrec.keys.FEW_USERS` paired users is marked in ``note``: its p-values rest on
too few users to tell methods apart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gnnrec.keys import ALL, COLD_ITEM, COLD_ITEM_ONLY, FEW_USERS, parse_metric_key
from gnnrec.report.groups import find_label
from gnnrec.report.runs import Run

__all__ = [
    "check_unique_seeds",
    "find_label",
    "holm",
    "pair_runs",
    "paired_users",
    "paired_tests",
    "read_per_user",
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


FINGERPRINTS = ("data_fingerprint", "split_fingerprint")
"""``per_user.parquet`` columns naming the processed data and the split a run evaluated."""


@dataclass(frozen=True)
class PerUser:
    """A run's ``per_user.parquet`` with its fingerprints (one value each per file)."""

    run: Run
    frame: pd.DataFrame
    data: str
    split: str


def read_per_user(run: Run) -> PerUser:
    """``run``'s per-user rows, checked to carry raw user ids and the two fingerprints.

    Raises:
        FileNotFoundError: The run has no ``per_user.parquet``.
        ValueError: The file predates raw ids and fingerprints (re-evaluate the run), or
            holds more than one fingerprint.
    """
    frame = run.per_user()
    missing = [c for c in ("task", "user_id", "group", *FINGERPRINTS) if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{run.per_user_path} has no column(s) {missing}: it was written before per-user "
            "rows carried raw user ids and data/split fingerprints, so its users cannot be "
            f"paired safely. Rewrite it with `gnnrec-evaluate {run.path}`"
        )
    values = {}
    for column in FINGERPRINTS:
        found = frame[column].unique()
        if len(found) != 1:
            raise ValueError(
                f"{run.per_user_path}: column {column} must hold one value, has {found}"
            )
        values[column] = str(found[0])
    frame = frame.assign(user_id=frame["user_id"].astype(str))
    return PerUser(run, frame, values["data_fingerprint"], values["split_fingerprint"])


def _select(per_user: PerUser, metric: str) -> pd.DataFrame:
    """The rows of ``metric``'s user group: ``task``, ``user_id`` and ``value``."""
    from gnnrec.evaluate.tasks import MAIN

    key = parse_metric_key(metric)
    if key is None or key.split != "test" or key.prefix or key.k is None:
        raise ValueError(
            f"per-user values exist for test metrics '<test>/<group>/<metric>@<k>' only, got "
            f"{metric!r}"
        )
    column = metric.split("/")[-1]
    frame, where = per_user.frame, per_user.run.per_user_path
    if column not in frame.columns:
        raise KeyError(
            f"{where} has no column {column!r} (needed for {metric}); its columns: "
            f"{list(frame.columns)}"
        )
    if key.group == ALL:
        rows = frame[frame["task"] == MAIN]
    elif key.group in (COLD_ITEM, COLD_ITEM_ONLY):
        rows = frame[frame["task"] == key.group]
    else:
        rows = frame[(frame["task"] == MAIN) & (frame["group"] == key.group)]
    if rows["user_id"].duplicated().any():
        raise ValueError(f"{where}: a user_id appears twice in the rows of {metric}")
    return rows[["task", "user_id", column]].rename(columns={column: "value"})


def _mismatch(base: PerUser, other: PerUser) -> str:
    what = (
        "different data (data_fingerprint differs: other data files or preprocessing)"
        if base.data != other.data
        else "the same data but different splits (split_fingerprint differs)"
    )
    return (
        f"cannot pair run {other.run.path} ({other.run.label!r}, seed {other.run.seed}) with "
        f"baseline run {base.run.path} ({base.run.label!r}, seed {base.run.seed}): they "
        f"evaluated {what}, so their users are not the same people on the same held-out "
        "items. Compare runs over one data set and split (fix data.split.seed to share a "
        "split across training seeds)"
    )


def pair_runs(
    baseline: Sequence[Run], other: Sequence[Run], cache: dict | None = None
) -> list[tuple[list[PerUser], list[PerUser]]]:
    """The runs of two groups matched by ``split_fingerprint``.

    A compared run pairs with every baseline run on its split. A run whose seed a
    baseline run shares while their splits differ is refused (that pair would join other
    people); a run with neither a shared split nor a shared seed is left out.

    Returns:
        One ``(baseline runs, other runs)`` entry per shared split.

    Raises:
        ValueError: A refused pair (the message names both runs and whether the data or
            only the split differs), or no shared split at all.
    """
    cache = {} if cache is None else cache

    def read(run: Run) -> PerUser:
        if run.path not in cache:
            cache[run.path] = read_per_user(run)
        return cache[run.path]

    base = [read(r) for r in baseline]
    comp = [read(r) for r in other]
    by_split: dict[str, tuple[list[PerUser], list[PerUser]]] = {}
    for c in comp:
        partners = [b for b in base if b.split == c.split]
        if not partners:
            same_seed = [b for b in base if b.run.seed == c.run.seed]
            if same_seed:
                raise ValueError(_mismatch(same_seed[0], c))
            continue
        entry = by_split.setdefault(c.split, (partners, []))
        entry[1].append(c)
    if not by_split:
        raise ValueError(
            _mismatch(base[0], comp[0])
            + f"; no run of {comp[0].run.label!r} shares a split with the baseline's runs"
        )
    return list(by_split.values())


def paired_users(
    baseline: Sequence[Run],
    other: Sequence[Run],
    metric: str,
    cache: dict | None = None,
) -> tuple[pd.DataFrame, list[str], int]:
    """Per-user values of two groups, paired on raw user ids within a shared split.

    Within a split, each side's value of a user is its mean over that side's runs on
    the split (training seeds, when ``data.split.seed`` is fixed); users are joined on
    ``(task, user_id)``; a user paired in several splits is then averaged over them.

    Returns:
        ``(frame, seeds, unpaired)``: ``frame`` indexed by ``(task, user_id)`` with
        ``baseline``, ``other`` and ``n_splits`` columns; the seeds of the compared
        group's paired runs; how many users of a shared split one group evaluated alone.

    Raises:
        FileNotFoundError: A compared run has no ``per_user.parquet``.
        ValueError: See :func:`pair_runs`; or the groups share no user.
    """
    pieces, unpaired, seeds = [], 0, []
    for base_runs, other_runs in pair_runs(baseline, other, cache):
        sides = []
        for runs in (base_runs, other_runs):
            rows = pd.concat([_select(p, metric) for p in runs], ignore_index=True)
            sides.append(rows.groupby(["task", "user_id"], sort=False)["value"].mean())
        joined = pd.concat(sides, axis=1, keys=["value_b", "value_o"], join="inner")
        unpaired += len(sides[0]) + len(sides[1]) - 2 * len(joined)
        pieces.append(joined.reset_index())
        seeds += [p.run.seed for p in other_runs]
    paired = pd.concat(pieces, ignore_index=True)
    b_label, o_label = baseline[0].label, other[0].label
    if paired.empty:
        raise ValueError(
            f"{o_label!r} and the baseline {b_label!r} have no user in common for {metric} "
            "on their shared splits"
        )
    frame = paired.groupby(["task", "user_id"], sort=False).agg(
        baseline=("value_b", "mean"), other=("value_o", "mean"), n_splits=("value_b", "size")
    )
    return frame, sorted(set(seeds), key=_seed_key), unpaired


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


def _repeats(rows: Sequence[dict], frames: Sequence[pd.DataFrame]) -> list[str]:
    """For each row, the metric of the row it repeats (``""``: its own test).

    Rows repeat each other when they share the compared group and the metric column
    (``ndcg@20``) and their paired per-user values are equal, whatever the task; of each
    set of repeats the row of group ``all`` (else the first) is tested.
    """
    classes: list[list[int]] = []
    for i, (row, frame) in enumerate(zip(rows, frames, strict=True)):
        values = frame.reset_index(level="task", drop=True).sort_index()
        for members in classes:
            j = members[0]
            if (rows[j]["run"], rows[j]["metric"].split("/")[-1]) == (
                row["run"],
                row["metric"].split("/")[-1],
            ) and values.equals(frames[j].reset_index(level="task", drop=True).sort_index()):
                members.append(i)
                break
        else:
            classes.append([i])
    same_as = [""] * len(rows)
    for members in classes:
        groups = [parse_metric_key(rows[i]["metric"]).group for i in members]
        tested = members[groups.index(ALL)] if ALL in groups else members[0]
        for i in members:
            if i != tested:
                same_as[i] = rows[tested]["metric"]
    return same_as


def significance(
    runs: Sequence[Run], baseline: str, metrics: Sequence[str], few_users: int = FEW_USERS
) -> pd.DataFrame:
    """Paired per-user tests of every group against ``baseline`` (see the module docstring).

    Args:
        runs: Labelled runs (:func:`gnnrec.report.runs.load_runs`).
        baseline: A group label, or a part of exactly one (:func:`find_label`).
        metrics: Test metric keys; other keys (``val/...``) have no per-user values and
            are skipped.
        few_users: Rows with 2 to ``few_users - 1`` paired users are marked in ``note``.

    Returns:
        One row per (group, metric): ``run``, ``baseline``, ``metric``, ``n_users``,
        ``n_seeds``, ``baseline_mean`` and ``mean`` (over the paired users),
        ``diff`` (``mean - baseline_mean``), ``rel_change_pct`` (``100 * diff /
        baseline_mean``, NaN when that is 0), ``t_p``, ``wilcoxon_p``, ``t_p_holm``,
        ``wilcoxon_p_holm``, ``same_as`` (the metric of the row this one repeats, whose
        test it shows; ``""`` for a row tested on its own) and ``note``.
    """
    label = find_label(runs, baseline)
    base = [r for r in runs if r.label == label]
    keys = [m for m in metrics if (k := parse_metric_key(m)) and k.split == "test" and not k.prefix]
    cache: dict = {}
    rows, frames, notes = [], [], []
    for other_label in _labels(runs):
        if other_label == label:
            continue
        other = [r for r in runs if r.label == other_label]
        for metric in keys:
            frame, seeds, unpaired = paired_users(base, other, metric, cache)
            t_p, w_p, note = paired_tests(frame["other"].to_numpy(), frame["baseline"].to_numpy())
            b_mean, o_mean = frame["baseline"].mean(), frame["other"].mean()
            row_notes = [note] if note else []
            if 2 <= len(frame) < few_users:
                row_notes.append(
                    f"{len(frame)} paired users, fewer than {few_users}: too few to tell the "
                    "methods apart"
                )
            if unpaired:
                row_notes.append(f"{unpaired} users evaluated by one group only, left out")
            left = len(other) - len([r for r in other if r.seed in seeds])
            if left:
                row_notes.append(f"{left} run(s) without a baseline run on their split, left out")
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
                }
            )
            frames.append(frame)
            notes.append(row_notes)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    same_as = _repeats(rows, frames)
    index = {(r["run"], r["metric"]): i for i, r in enumerate(rows)}
    tested = [i for i, s in enumerate(same_as) if not s]
    for column in ("t_p", "wilcoxon_p"):
        adjusted = np.full(len(rows), np.nan)
        adjusted[tested] = holm(table[column].to_numpy()[tested])
        for i, s in enumerate(same_as):
            if s:
                j = index[(rows[i]["run"], s)]
                table.loc[i, column] = table.loc[j, column]
                adjusted[i] = adjusted[j]
        table[f"{column}_holm"] = adjusted
    for i, s in enumerate(same_as):
        if s:
            notes[i].append(
                f"same paired per-user values as {s}: tested once, there (counted once in the "
                "Holm adjustment)"
            )
            j = index[(rows[i]["run"], s)]
            notes[j].append(f"also stands for {rows[i]['metric']} (same paired per-user values)")
    table["same_as"] = same_as
    table["note"] = ["; ".join(n) for n in notes]
    return table
