"""Figures of groups of runs: bars of final metrics, learning curves over epochs.

The functions build :class:`matplotlib.figure.Figure` objects directly, without pyplot:
nothing is shown, no global backend is switched (a notebook keeps its own), and
``fig.savefig`` renders with Agg. Notebooks display the returned figure as is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from gnnrec.keys import ALL, HEADLINE_METRICS, metric_key
from gnnrec.report.runs import Run

CURVE_METRIC = metric_key("val", ALL, *HEADLINE_METRICS[0])
"""The default learning-curve key, ``val/all/ndcg@20``."""

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["curve_frame", "plot_bars", "plot_curves", "short_label"]


def short_label(label: str, skip: Sequence[str] = ()) -> str:
    """A legend label: ``label`` without overrides starting with ``skip``, ``model=`` dropped.

    ``"model=lightgcn loss=bpr"`` -> ``"lightgcn loss=bpr"``; the full label when nothing
    would be left.
    """
    kept = [o for o in label.split() if not o.startswith(tuple(skip))]
    return " ".join(o.removeprefix("model=") for o in kept) or label


def plot_bars(
    summary: pd.DataFrame,
    metrics: Sequence[str] | None = None,
    title: str = "",
) -> Figure:
    """Grouped bars: one group of bars per metric, one bar per run group, std error bars.

    Args:
        summary: :func:`gnnrec.report.stats.summarize`'s frame (index: group labels;
            ``"<metric> mean"`` and ``"<metric> std"`` columns).
        metrics: The metrics to draw; by default every metric of ``summary``.
        title: Figure title.

    Returns:
        The figure (save it with ``fig.savefig(path)``).
    """
    from matplotlib.figure import Figure

    if metrics is None:
        metrics = [c.removesuffix(" mean") for c in summary.columns if c.endswith(" mean")]
    missing = [m for m in metrics if f"{m} mean" not in summary.columns]
    if missing:
        raise KeyError(f"the summary has no column for {missing}; it has {list(summary.columns)}")
    n = max(len(summary), 1)
    fig = Figure(figsize=(min(3 + 0.4 * len(metrics) * n, 16), 4.5), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / n
    for j, (name, row) in enumerate(summary.iterrows()):
        xs = [i + j * width for i in range(len(metrics))]
        means = [row[f"{m} mean"] for m in metrics]
        stds = [row[f"{m} std"] for m in metrics]
        ax.bar(xs, means, width, yerr=stds, capsize=3, label=short_label(str(name)))
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(metrics))], list(metrics))
    if len(metrics) > 3:
        ax.tick_params(axis="x", labelrotation=20)
        for tick in ax.get_xticklabels():
            tick.set_horizontalalignment("right")
    ax.set_ylabel("mean over seeds (error bar: std)")
    if title:
        ax.set_title(title)
    fig.legend(loc="outside lower center", ncols=min(n, 3), fontsize="small")
    return fig


def curve_frame(runs: Sequence[Run], key: str) -> pd.DataFrame:
    """``key`` per epoch and group: mean and std (ddof=1) over the group's seeds.

    Returns:
        Columns ``run`` (the group label), ``epoch`` (as recorded, 0-based), ``mean``,
        ``std`` (NaN where one seed has the epoch), ``n`` (seeds at that epoch) and
        ``minutes`` (mean over those seeds of the history's ``time/elapsed_s`` / 60, the
        wall clock since training began; NaN in histories without it); groups whose
        histories lack ``key`` are absent.
    """
    points = [
        {
            "run": r.label,
            "seed": r.seed,
            "epoch": rec["epoch"],
            "value": rec[key],
            "minutes": rec.get("time/elapsed_s", float("nan")) / 60,
        }
        for r in runs
        for rec in r.history
        if key in rec and "epoch" in rec
    ]
    if not points:
        return pd.DataFrame(columns=["run", "epoch", "mean", "std", "n", "minutes"])
    frame = pd.DataFrame(points)
    order = {label: i for i, label in enumerate(dict.fromkeys(r.label for r in runs))}
    out = (
        frame.groupby(["run", "epoch"], sort=False)
        .agg(
            mean=("value", "mean"),
            std=("value", lambda v: v.std(ddof=1)),
            n=("value", "size"),
            minutes=("minutes", "mean"),
        )
        .reset_index()
    )
    return out.sort_values(["run", "epoch"], key=lambda c: c.map(order) if c.name == "run" else c)


def plot_curves(
    runs: Sequence[Run],
    metric: str = CURVE_METRIC,
    loss: str | None = "train/loss",
    x: str = "epoch",
    reference: Mapping[str, float] | None = None,
) -> Figure:
    """Learning curves from the runs' histories: one line per group, std band over seeds.

    Args:
        runs: Labelled runs (their ``history``).
        metric: History key of the first panel (e.g. ``"val/all/ndcg@20"``, or
            ``"curve/test/all/ndcg@20"`` for runs with ``test_curve_every``).
        loss: History key of a second panel; ``None`` for one panel.
        x: ``"epoch"`` (counted from 1, history's ``epoch + 1``) or ``"minutes"`` (wall
            clock since training began, the mean over seeds of ``time/elapsed_s``; for
            accuracy against training time).
        reference: History key -> a published value, drawn as a dashed horizontal line
            on that key's panel (e.g. ``{"curve/test/all/recall@20": 0.1830}``).

    Returns:
        The figure.

    Raises:
        ValueError: No run's history holds ``metric`` (nor ``loss``); an unknown ``x``;
            a ``reference`` key that is neither ``metric`` nor ``loss``;
            ``x="minutes"`` with histories that have no ``time/elapsed_s``.
    """
    if x not in ("epoch", "minutes"):
        raise ValueError(f"x must be 'epoch' or 'minutes', got {x!r}")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    keys = [metric] + ([loss] if loss else [])
    stray = sorted(set(reference or ()) - set(keys))
    if stray:
        raise ValueError(f"reference keys {stray} are not plotted; the panels are {keys}")
    frames = {k: curve_frame(runs, k) for k in keys}
    if all(f.empty for f in frames.values()):
        seen = sorted({k for r in runs for rec in r.history for k in rec})
        raise ValueError(
            f"no run's history holds {' or '.join(keys)}; keys in the histories: "
            f"{seen[:20] if seen else 'none (no history.json)'}"
        )
    fig = Figure(figsize=(5.5 * len(keys), 4), layout="constrained")
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    colors = {label: f"C{i}" for i, label in enumerate(dict.fromkeys(r.label for r in runs))}
    for ax, key in zip(axes, keys, strict=True):
        for label, group in frames[key].groupby("run", sort=False):
            if x == "minutes":
                xs = group["minutes"].to_numpy(float)
                if np.isnan(xs).any():
                    raise ValueError(
                        f"x='minutes' needs time/elapsed_s in every history; {label!r} has "
                        "records without it (runs made before it was recorded)"
                    )
            else:
                xs = group["epoch"].to_numpy() + 1
            mean, std = group["mean"].to_numpy(float), group["std"].fillna(0).to_numpy(float)
            c = colors[label]
            marker = "o" if len(xs) < 30 else None
            ax.plot(xs, mean, color=c, marker=marker, ms=3, label=short_label(str(label)))
            ax.fill_between(xs, mean - std, mean + std, color=c, alpha=0.2, lw=0)
        xlabel = "epoch" if x == "epoch" else "wall-clock minutes since training began"
        ax.set(xlabel=xlabel, ylabel=key, title=f"{key} (mean ± std over seeds)")
        if x == "epoch":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if reference and key in reference:
            ax.axhline(reference[key], ls="--", color="grey", label=f"reference {reference[key]}")
        if frames[key].empty:
            ax.text(0.5, 0.5, f"no history has {key}", ha="center", transform=ax.transAxes)
    handles = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    fig.legend(
        handles.values(), handles.keys(), loc="outside lower center", ncols=2, fontsize="small"
    )
    return fig
