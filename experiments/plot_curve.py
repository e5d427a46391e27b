"""Plot learning curves from runs' history.json (train loss and test-curve metrics).

python experiments/plot_curve.py RUN_DIR OUT.png [--paper-recall 0.1830 --paper-ndcg 0.1554]
python experiments/plot_curve.py RUN_A=paper RUN_B=fast OUT.png --x minutes --paper-recall 0.1830

Each run is ``RUN_DIR`` or ``RUN_DIR=LABEL``. ``--x epoch`` (default) plots against
epochs; ``--x minutes`` against wall-clock minutes since training began: the history's
``time/elapsed_s`` (training and validation so far), plus, for the test-curve
evaluations (``test_curve_every``), their cost. Histories written before
``time/elapsed_s`` existed get the sum of ``time/epoch_s`` plus one ``time/test_s`` of
metrics.json per test-curve evaluation so far (the script says so).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def wallclock_minutes(history: list[dict], test_s: float, prefix: str) -> list[float]:
    """Minutes since training began at the end of each epoch (its test point excluded)."""
    curve_key = f"{prefix}/recall@20"
    out, elapsed, curves = [], 0.0, 0
    for record in history:
        if "time/elapsed_s" in record:
            base = record["time/elapsed_s"]
        else:
            elapsed += record["time/epoch_s"]
            base = elapsed
        out.append((base + curves * test_s) / 60)
        if curve_key in record:
            curves += 1
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="RUN_DIR[=LABEL] ... OUT.png")
    parser.add_argument("--prefix", default="curve/test/all", help="metric prefix to plot")
    parser.add_argument("--x", choices=["epoch", "minutes"], default="epoch")
    parser.add_argument("--paper-recall", type=float, default=None)
    parser.add_argument("--paper-ndcg", type=float, default=None)
    parser.add_argument("--title", default="")
    args = parser.parse_args()
    *runs, out = args.paths
    if not runs:
        parser.error("give at least one run folder and the output file")

    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(11, 4))
    for n, spec in enumerate(runs):
        folder, _, label = spec.partition("=")
        run_dir = Path(folder)
        label = label or run_dir.name
        history = json.loads((run_dir / "history.json").read_text())
        if args.x == "minutes":
            metrics_file = run_dir / "metrics.json"
            metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
            test_s = float(metrics.get("time/test_s", 0.0))
            if any("time/elapsed_s" not in r for r in history):
                print(
                    f"{run_dir}: no time/elapsed_s; minutes = epoch times + {test_s:.1f} s per test point"
                )
            xs = wallclock_minutes(history, test_s, args.prefix)
        else:
            xs = [r["epoch"] + 1 for r in history]
        ax_loss.plot(xs, [r["train/loss"] for r in history], color=f"C{n}", label=label)
        for name, style in (("recall@20", "-"), ("ndcg@20", ":")):
            pts = [
                (x, r[f"{args.prefix}/{name}"])
                for x, r in zip(xs, history, strict=True)
                if f"{args.prefix}/{name}" in r
            ]
            if pts:
                ax_metric.plot(
                    *zip(*pts, strict=True),
                    style,
                    marker="o",
                    ms=2,
                    color=f"C{n}",
                    label=f"{label} {name}",
                )
    for name, paper, style in (
        ("recall@20", args.paper_recall, "--"),
        ("ndcg@20", args.paper_ndcg, "-."),
    ):
        if paper is not None:
            ax_metric.axhline(paper, ls=style, color="grey", label=f"paper {name} ({paper})")
    xlabel = "epoch" if args.x == "epoch" else "wall-clock minutes of training"
    ax_loss.set(xlabel=xlabel, ylabel="training loss", title="training loss")
    ax_loss.legend()
    ax_metric.set(xlabel=xlabel, ylabel="test metric", title=args.title or args.prefix)
    ax_metric.legend(fontsize=8)
    fig.tight_layout()
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=120)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
