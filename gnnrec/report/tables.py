"""Tables of runs: one run on the console, groups as Markdown, CSV and LaTeX."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd
from rich.console import Console
from rich.table import Table

__all__ = [
    "latex_significance",
    "latex_summary",
    "markdown_mean_std",
    "markdown_significance",
    "markdown_summary",
    "mean_std_table",
    "metrics_table",
]

_COLUMNS = (
    "recall@20",
    "ndcg@20",
    "hit@20",
    "mrr@20",
    "recall@50",
    "ndcg@50",
    "sampled_hr@10",
    "sampled_ndcg@10",
)


def metrics_table(
    metrics: Mapping[str, float],
    split: str = "test",
    title: str = "",
    console: Console | None = None,
) -> Table:
    """Print (and return) one row per user group of ``split`` with the headline metrics."""
    groups = sorted(
        {k.split("/")[1] for k in metrics if k.startswith(f"{split}/") and k.count("/") == 2}
    )
    columns = [c for c in _COLUMNS if any(f"{split}/{g}/{c}" in metrics for g in groups)]
    table = Table(title=f"{title} ({split})" if title else split)
    table.add_column("group")
    table.add_column("users", justify="right")
    for c in columns:
        table.add_column(c, justify="right")
    order = {"warm": 0, "cold": 1, "all": 9}
    for g in sorted(groups, key=lambda g: (order.get(g, 5), g)):
        users = metrics.get(f"{split}/{g}/num_users")
        row = [g, "" if users is None else str(int(users))]
        row += [
            f"{metrics[f'{split}/{g}/{c}']:.4f}" if f"{split}/{g}/{c}" in metrics else ""
            for c in columns
        ]
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
    lines = ["| run | seeds | " + " | ".join(keys) + " |", "|---|---:|" + "---:|" * len(keys)]
    for name, row in table.iterrows():
        cells = [f"{row[f'{k} mean']:.{digits}f} ± {row[f'{k} std']:.{digits}f}" for k in keys]
        lines.append(f"| {name} | {int(row['runs'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


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


def _markdown(header: Sequence[str], align: str, rows: Sequence[Sequence[str]]) -> str:
    marks = {"l": "---", "r": "---:"}
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks[a] for a in align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


_LATEX_SPECIAL = {c: "\\" + c for c in "&%$#_{}"} | {
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
}


def _tex(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(c, c) for c in str(text))


def _latex(header: Sequence[str], align: str, rows: Sequence[Sequence[str]]) -> str:
    """A booktabs ``tabular``; cells are escaped except those already in math mode."""

    def cell(text: str) -> str:
        return text if text.startswith("$") else _tex(text)

    lines = [
        rf"\begin{{tabular}}{{{align}}}",
        r"\toprule",
        " & ".join(_tex(h) for h in header) + r" \\",
        r"\midrule",
        *(" & ".join(cell(c) for c in row) + r" \\" for row in rows),
        r"\bottomrule",
        r"\end{tabular}",
    ]
    return "\n".join(lines) + "\n"


def _summary_rows(
    summary: pd.DataFrame, metrics: Sequence[str], digits: int, pm: str, label
) -> list[list[str]]:
    return [
        [label(name), str(int(row["n_seeds"]))] + [_mean_std(row, m, digits, pm) for m in metrics]
        for name, row in summary.iterrows()
    ]


def markdown_summary(summary: pd.DataFrame, metrics: Sequence[str], digits: int = 4) -> str:
    """A Markdown table of ``mean ± std`` cells, one row per group.

    Args:
        summary: :func:`gnnrec.report.stats.summarize`'s frame.
        metrics: The metric columns to show, in order.
        digits: Decimals of means and stds; a single seed shows the mean alone.
    """
    rows = _summary_rows(summary, metrics, digits, " ± ", _md_label)
    return _markdown(["run", "seeds", *metrics], "lr" + "r" * len(metrics), rows)


def latex_summary(summary: pd.DataFrame, metrics: Sequence[str], digits: int = 4) -> str:
    """:func:`markdown_summary` as a booktabs LaTeX ``tabular`` (``$mean \\pm std$``)."""
    rows = _summary_rows(summary, metrics, digits, r" \pm ", str)
    rows = [[*row[:2], *(f"${c}$" if c else "" for c in row[2:])] for row in rows]
    return _latex(["run", "seeds", *metrics], "lr" + "r" * len(metrics), rows)


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


def _significance_rows(table: pd.DataFrame, digits: int, label, pct: str) -> list[list[str]]:
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
                "n/a" if math.isnan(change) else f"{change:+.1f}{pct}",
                _p(r["t_p"]),
                _p(r["wilcoxon_p"]),
                _p(r["t_p_holm"]),
                _p(r["wilcoxon_p_holm"]),
            ]
            + ([r["note"]] if "note" in table and table["note"].astype(bool).any() else [])
        )
    return rows


def _significance_header(table: pd.DataFrame) -> tuple[list[str], str]:
    notes = "note" in table and table["note"].astype(bool).any()
    header = _SIG_HEADER + (["note"] if notes else [])
    return header, "ll" + "r" * (len(_SIG_HEADER) - 2) + ("l" if notes else "")


def markdown_significance(table: pd.DataFrame, digits: int = 4) -> str:
    """A Markdown table of :func:`gnnrec.report.stats.significance`'s rows.

    ``baseline`` and ``mean`` are the two groups' means over the paired users, ``diff``
    their difference and ``change`` the relative difference; p-values have three
    significant digits.
    """
    header, align = _significance_header(table)
    return _markdown(header, align, _significance_rows(table, digits, _md_label, "%"))


def latex_significance(table: pd.DataFrame, digits: int = 4) -> str:
    """:func:`markdown_significance` as a booktabs LaTeX ``tabular``."""
    header, align = _significance_header(table)
    return _latex(header, align, _significance_rows(table, digits, str, "%"))
