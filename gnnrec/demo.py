"""``make demo``: what text buys. ID LightGCN next to the text-enhanced LightGCN.

Both runs use ``experiment=demo`` (Amazon Books + CDs -> Movies, short schedule) and
the same code path as ``gnnrec-train``; the text model uses the cached MiniLM item
embeddings (encoded once, on the first demo). Extra arguments are Hydra overrides
applied to every run, e.g. ``python -m gnnrec.demo trainer.max_epochs=2``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from gnnrec.config import compose_config
from gnnrec.keys import COLD, COLD_ITEM, COLD_ITEM_ONLY, HEADLINE_METRICS, WARM, metric_key

__all__ = ["RUNS", "main", "comparison_table"]

RUNS: dict[str, list[str]] = {
    "LightGCN (IDs)": ["model=lightgcn"],
    "LightGCN + MiniLM text": ["model=lightgcn_text", "loss=softmax"],
    # Users as the mean of their training items' embeddings: no profile texts to encode.
    "MiniLM zero-shot (no training)": ["model=text_zeroshot", "model.user_input=mean"],
    # What knowing which items are new is worth: cold items first, otherwise random.
    "Random, new items first (floor)": ["model=random", "model.cold_first=true"],
}
COLUMNS = [
    (group, metric, k)
    for metric, k in HEADLINE_METRICS
    for group in (WARM, COLD, COLD_ITEM, COLD_ITEM_ONLY)
]


def comparison_table(results: dict[str, dict[str, float]], split: str = "test") -> Table:
    """One row per run, the headline metrics of each user group as columns."""
    table = Table(title=f"Books + CDs -> Movies ({split}, full ranking)")
    table.add_column("model")
    for group, metric, k in COLUMNS:
        table.add_column(f"{group}\n{metric}@{k}", justify="right")
    for name, metrics in results.items():
        cells = [metrics.get(metric_key(split, group, metric, k)) for group, metric, k in COLUMNS]
        table.add_row(name, *("-" if v is None else f"{v:.4f}" for v in cells))
    return table


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    from gnnrec.run import run

    overrides = list(sys.argv[1:] if argv is None else argv)
    console = Console(width=max(Console().width, 120))
    results = {}
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    for name, extra in RUNS.items():
        cfg = compose_config(["experiment=demo", *extra, *overrides])
        out = Path(cfg.paths.log_dir) / "demo" / stamp / extra[0].split("=")[1]
        console.rule(f"[bold]{name}")
        results[name] = run(cfg, output_dir=out)
    console.print(comparison_table(results))
    console.print(
        "cold: users with no Movies history (ranked from Books/CDs behaviour); cold_item: "
        "held-out Movies nobody interacted with in training, ranked among all Movies; "
        "cold_item_only: the same, ranked among the untrained Movies only."
    )
    return results


if __name__ == "__main__":
    main()
