"""Readable tables of a run's metrics."""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Console
from rich.table import Table

__all__ = ["metrics_table"]

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
    (console or Console()).print(table)
    return table
