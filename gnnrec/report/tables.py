"""Tables of runs: one run on the console, groups as Markdown, CSV and LaTeX."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd
from rich.console import Console
from rich.table import Table

from gnnrec.keys import GROUPS, HEADLINE_METRICS, NUM_USERS, metric_key, parse_metric_key

__all__ = [
    "latex_significance",
    "latex_summary",
    "markdown_mean_std",
    "markdown_significance",
    "markdown_summary",
    "mean_std_table",
    "metrics_table",
]

_EXTRA_COLUMNS = (("hit", 20), ("mrr", 20), ("recall", 50), ("ndcg", 50))
"""Columns shown after :data:`gnnrec.keys.HEADLINE_METRICS`, when a run has them; then the
sampled metrics (``sampled_*``)."""


def _columns(metrics: Mapping[str, float], split: str) -> list[str]:
    present = {
        f"{k.metric}@{k.k}"
        for key in metrics
        if (k := parse_metric_key(key)) and k.split == split and not k.prefix and k.k
    }
    wanted = [f"{m}@{k}" for m, k in (*HEADLINE_METRICS, *_EXTRA_COLUMNS)]
    sampled = sorted(c for c in present if c.startswith("sampled_"))
    return [c for c in wanted if c in present] + sampled


def metrics_table(
    metrics: Mapping[str, float],
    split: str = "test",
    title: str = "",
    console: Console | None = None,
) -> Table:
    """Print (and return) one row per user group of ``split`` with the headline metrics.

    Groups come in :data:`gnnrec.keys.GROUPS` order; columns are the headline metrics,
    then ``hit``/``mrr``/``@50`` and the sampled metrics that the run has.
    """
    parsed = [k for key in metrics if (k := parse_metric_key(key)) and k.split == split]
    groups = {k.group for k in parsed if not k.prefix}
    columns = _columns(metrics, split)
    table = Table(title=f"{title} ({split})" if title else split)
    table.add_column("group")
    table.add_column("users", justify="right")
    for c in columns:
        table.add_column(c, justify="right")
    order = {g: i for i, g in enumerate(GROUPS)}
    for g in sorted(groups, key=lambda g: (order.get(g, len(order)), g)):
        users = metrics.get(metric_key(split, g, NUM_USERS))
        row = [g, "" if users is None else str(int(users))]
        for c in columns:
            key = f"{split}/{g}/{c}"
            row.append(f"{metrics[key]:.4f}" if key in metrics else "")
        table.add_row(*row)
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=160)  # logs and pipes: never truncate the columns
    console.print(table)
    return table


def mean_std_table(runs: pd.DataFrame, keys: list[str], by: str = "overrides") -> pd.DataFrame:
    """Mean and standard deviation (ddof=1) over seeds of each ``key``, per group."""
    grouped = runs.groupby(by, sort=False)
    out = pd.DataFrame({"runs": grouped.size()})
    for key in keys:
        out[f"{key} mean"] = grouped[key].mean()
        out[f"{key} std"] = grouped[key].std(ddof=1)
    return out


def markdown_mean_std(table: pd.DataFrame, keys: list[str], digits: int = 4) -> str:
    """Render :func:`mean_std_table` as a Markdown table of ``mean ± std`` cells."""
    frame = pd.DataFrame(
        {
            "run": [str(n) for n in table.index],
            "seeds": [str(int(n)) for n in table["runs"]],
            **{
                k: [
                    f"{m:.{digits}f} ± {s:.{digits}f}"
                    for m, s in zip(table[f"{k} mean"], table[f"{k} std"], strict=True)
                ]
                for k in keys
            },
        }
    )
    return _markdown(frame, "lr" + "r" * len(keys))


def _fmt(value: float, digits: int) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _p(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3g}"


def _mean_std(row: pd.Series, metric: str, digits: int, pm: str) -> str:
    mean, std = row[f"{metric} mean"], row[f"{metric} std"]
    if math.isnan(mean):
        return ""
    return _fmt(mean, digits) if math.isnan(std) else f"{mean:.{digits}f}{pm}{std:.{digits}f}"


def _md_label(label: str) -> str:
    if label.startswith("("):
        return label
    return " ".join(f"`{o}`" for o in label.split()).replace("|", "\\|")


def _markdown(frame: pd.DataFrame, align: str) -> str:
    """``frame`` (string cells) through :meth:`pandas.DataFrame.to_markdown` (tabulate)."""
    colalign = tuple({"l": "left", "r": "right"}[a] for a in align)
    return frame.to_markdown(index=False, colalign=colalign, disable_numparse=True)


def _latex(frame: pd.DataFrame, align: str, text_columns: list[str]) -> str:
    """A booktabs ``tabular`` from :meth:`pandas.io.formats.style.Styler.to_latex`.

    Headers and the ``text_columns`` are escaped; other cells are already LaTeX.
    """
    styler = frame.style.hide(axis="index")
    styler = styler.format(escape="latex", subset=text_columns)
    styler = styler.format_index(escape="latex", axis=1)
    return styler.to_latex(column_format=align, hrules=True)


def _summary_frame(
    summary: pd.DataFrame, metrics: Sequence[str], digits: int, pm: str, label
) -> pd.DataFrame:
    rows = [
        [label(str(name)), str(int(row["n_seeds"]))]
        + [_mean_std(row, m, digits, pm) for m in metrics]
        for name, row in summary.iterrows()
    ]
    return pd.DataFrame(rows, columns=["run", "seeds", *metrics])


def markdown_summary(summary: pd.DataFrame, metrics: Sequence[str], digits: int = 4) -> str:
    """A Markdown table of ``mean ± std`` cells, one row per group.

    Args:
        summary: :func:`gnnrec.report.stats.summarize`'s frame.
        metrics: The metric columns to show, in order.
        digits: Decimals of means and stds; a single seed shows the mean alone.
    """
    frame = _summary_frame(summary, metrics, digits, " ± ", _md_label)
    return _markdown(frame, "lr" + "r" * len(metrics))


def latex_summary(summary: pd.DataFrame, metrics: Sequence[str], digits: int = 4) -> str:
    """:func:`markdown_summary` as a booktabs LaTeX ``tabular`` (``$mean \\pm std$``)."""
    frame = _summary_frame(summary, metrics, digits, r" \pm ", str)
    for m in metrics:
        frame[m] = [f"${c}$" if c else "" for c in frame[m]]
    return _latex(frame, "lr" + "r" * len(metrics), ["run", "seeds"])


_SIG_HEADER = [
    "run",
    "metric",
    "users",
    "seeds",
    "baseline",
    "mean",
    "diff",
    "change",
    "t-test p",
    "Wilcoxon p",
    "t-test p (Holm)",
    "Wilcoxon p (Holm)",
]


def _significance_frame(table: pd.DataFrame, digits: int, label) -> pd.DataFrame:
    notes = "note" in table and table["note"].astype(bool).any()
    rows = []
    for _, r in table.iterrows():
        change = r["rel_change_pct"]
        rows.append(
            [
                label(r["run"]),
                r["metric"],
                str(int(r["n_users"])),
                str(int(r["n_seeds"])),
                _fmt(r["baseline_mean"], digits),
                _fmt(r["mean"], digits),
                f"{r['diff']:+.{digits}f}",
                "n/a" if math.isnan(change) else f"{change:+.1f}%",
                _p(r["t_p"]),
                _p(r["wilcoxon_p"]),
                _p(r["t_p_holm"]),
                _p(r["wilcoxon_p_holm"]),
            ]
            + ([r["note"]] if notes else [])
        )
    return pd.DataFrame(rows, columns=_SIG_HEADER + (["note"] if notes else []))


def _significance_align(frame: pd.DataFrame) -> str:
    return "ll" + "r" * (len(_SIG_HEADER) - 2) + ("l" if "note" in frame else "")


def markdown_significance(table: pd.DataFrame, digits: int = 4) -> str:
    """A Markdown table of :func:`gnnrec.report.stats.significance`'s rows.

    ``baseline`` and ``mean`` are the two groups' means over the paired users, ``diff``
    their difference and ``change`` the relative difference; p-values have three
    significant digits.
    """
    frame = _significance_frame(table, digits, _md_label)
    return _markdown(frame, _significance_align(frame))


def latex_significance(table: pd.DataFrame, digits: int = 4) -> str:
    """:func:`markdown_significance` as a booktabs LaTeX ``tabular``."""
    frame = _significance_frame(table, digits, str)
    return _latex(frame, _significance_align(frame), list(frame.columns))
