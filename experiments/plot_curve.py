"""Plot test-curve Recall@20 and NDCG@20 of runs against epochs or wall-clock minutes.

python experiments/plot_curve.py RUN_DIR OUT.png [--paper-recall 0.1830 --paper-ndcg 0.1554]
python experiments/plot_curve.py RUN_A=paper RUN_B=fast OUT.png --x minutes --paper-recall 0.1830

Each run is ``RUN_DIR`` or ``RUN_DIR=LABEL``; the curves are ``<prefix>/recall@20`` and
``<prefix>/ndcg@20`` of its ``history.json`` (``test_curve_every`` records them), drawn by
:func:`gnnrec.report.plot_curves` with the paper's figures as reference lines. ``--x
minutes`` uses the history's ``time/elapsed_s``: training and validation since the fit
began, without the test-curve evaluations. A history written before ``time/elapsed_s``
existed gets the running sum of its ``time/epoch_s`` instead (training steps only), and
the script says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
from pathlib import Path

from gnnrec.report import load_runs, plot_curves


def with_clock(history: list[dict], run_dir: Path) -> list[dict]:
    """``history`` with ``time/elapsed_s`` filled from the epoch times where it is missing."""
    if all("time/elapsed_s" in r for r in history):
        return history
    print(f"{run_dir}: no time/elapsed_s; minutes = running sum of time/epoch_s")
    clock = itertools.accumulate(r["time/epoch_s"] for r in history)
    return [{**r, "time/elapsed_s": t} for r, t in zip(history, clock, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="RUN_DIR[=LABEL] ... OUT.png")
    parser.add_argument("--prefix", default="curve/test/all", help="metric prefix to plot")
    parser.add_argument("--x", choices=["epoch", "minutes"], default="epoch")
    parser.add_argument("--paper-recall", type=float, default=None)
    parser.add_argument("--paper-ndcg", type=float, default=None)
    args = parser.parse_args()
    *specs, out = args.paths
    if not specs:
        parser.error("give at least one run folder and the output file")

    runs = []
    for spec in specs:
        folder, _, label = spec.partition("=")
        run_dir = Path(folder)
        found = load_runs([run_dir])
        if len(found) != 1:
            parser.error(f"{run_dir} holds {len(found)} runs; give one run folder per curve")
        (run,) = found
        history = with_clock(run.history, run_dir) if args.x == "minutes" else run.history
        runs.append(dataclasses.replace(run, label=label or run_dir.name, history=history))
    recall, ndcg = f"{args.prefix}/recall@20", f"{args.prefix}/ndcg@20"
    paper = {recall: args.paper_recall, ndcg: args.paper_ndcg}
    fig = plot_curves(
        runs,
        metric=recall,
        loss=ndcg,
        x=args.x,
        reference={k: v for k, v in paper.items() if v is not None},
    )
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=120)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
