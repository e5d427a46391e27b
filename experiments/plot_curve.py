"""Plot a run's learning curve from its history.json (train loss and test-curve metrics).

python experiments/plot_curve.py RUN_DIR OUT.png [--paper-recall 0.1830 --paper-ndcg 0.1554]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--prefix", default="curve/test/all", help="metric prefix to plot")
    parser.add_argument("--paper-recall", type=float, default=None)
    parser.add_argument("--paper-ndcg", type=float, default=None)
    parser.add_argument("--title", default="")
    args = parser.parse_args()

    history = json.loads((args.run_dir / "history.json").read_text())
    epochs = [r["epoch"] + 1 for r in history]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(11, 4))
    ax_loss.plot(epochs, [r["train/loss"] for r in history])
    ax_loss.set(xlabel="epoch", ylabel="BPR loss (with L2)", title="training loss")
    for name, paper, color in (
        ("recall@20", args.paper_recall, "C0"),
        ("ndcg@20", args.paper_ndcg, "C1"),
    ):
        pts = [
            (r["epoch"] + 1, r[f"{args.prefix}/{name}"])
            for r in history
            if f"{args.prefix}/{name}" in r
        ]
        if pts:
            ax_metric.plot(*zip(*pts, strict=True), marker="o", color=color, label=f"gnnrec {name}")
        if paper is not None:
            ax_metric.axhline(paper, ls="--", color=color, label=f"paper {name} ({paper})")
    ax_metric.set(xlabel="epoch", ylabel="test metric", title=args.title or args.prefix)
    ax_metric.legend()
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
