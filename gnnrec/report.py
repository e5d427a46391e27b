"""Readable tables of runs' metrics: one run on the console, many runs as mean ± std."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

__all__ = ["collect_runs", "markdown_mean_std", "mean_std_table", "metrics_table"]

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


def collect_runs(folders: list[str | Path]) -> pd.DataFrame:
    """One row per run folder holding ``metrics.json``: its Hydra overrides and metrics.

    Args:
        folders: Run folders, or parents searched recursively for ``metrics.json``.

    Returns:
        A frame with an ``overrides`` column (the run's overrides without ``seed``),
        a ``seed`` column, a ``run_dir`` column and one column per metric.
    """
    rows = []
    for folder in folders:
        for path in sorted(Path(folder).rglob("metrics.json")):
            run_dir = path.parent
            overrides_file = run_dir / ".hydra" / "overrides.yaml"
            overrides = (
                OmegaConf.to_container(OmegaConf.load(overrides_file))
                if overrides_file.is_file()
                else []
            )
            seed = next((o.split("=", 1)[1] for o in overrides if o.startswith("seed=")), "0")
            rest = [o for o in overrides if not o.startswith("seed=")]
            metrics = json.loads(path.read_text())
            rows.append(
                {"run_dir": str(run_dir), "overrides": " ".join(rest), "seed": seed, **metrics}
            )
    return pd.DataFrame(rows)


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
