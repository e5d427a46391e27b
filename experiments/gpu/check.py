"""GPU check: LightGCN on Gowalla and the text LightGCN on Amazon, each under a time budget.

    python experiments/gpu/check.py --out DIR [--minutes 3] [--device cuda]

Runs through :func:`gnnrec.api.train` (the code path of ``gnnrec-train``) with
``device`` as given (``auto`` picks CUDA, bf16 autocast), and writes ``DIR/gpu_check.json``:
per run, the device, epochs done, seconds per epoch and the test metrics reached.
``experiments/gpu/run.sh`` calls it on the device tool's machine; on a CPU it runs the
same way (use small ``--minutes``).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from gnnrec.api import train

RUNS = {
    "lightgcn_gowalla": [
        "experiment=lightgcn_gowalla_paper",
        "test_curve_every=10",
    ],
    "lightgcn_text_movies": [
        "experiment=cdr_amazon_movies",
        "model=lightgcn_text",
        "loss=softmax",
        "model.hidden_dim=256",
        "trainer.eval_every=5",
        "trainer.patience=0",
    ],
}
KEYS = ("test/all/recall@20", "test/all/ndcg@20", "test/warm/ndcg@20", "test/cold/ndcg@20")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=3.0, help="training budget per run")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--encoder", default=".gpu/minilm", help="text encoder (model folder)")
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    args = parser.parse_args(argv)
    encoder = args.encoder if Path(args.encoder).is_dir() else "minilm"
    report = {
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "host": platform.node(),
        "runs": {},
    }
    for name in args.runs:
        overrides = [
            *RUNS[name],
            f"device={args.device}",
            f"trainer.max_time_min={args.minutes}",
            "trainer.max_epochs=1000",
            "trainer.progress=false",
            "tracker=none",
            f"encoder.model={encoder}",
        ]
        t0 = time.perf_counter()
        metrics = train(overrides, output_dir=args.out / "runs" / name)
        report["runs"][name] = {
            "overrides": overrides,
            "wall_s": time.perf_counter() - t0,
            "epochs": metrics.get("epochs"),
            "time/epoch_s": metrics.get("time/epoch_s"),
            "time/test_s": metrics.get("time/test_s"),
            **{k: metrics[k] for k in KEYS if k in metrics},
        }
        print(json.dumps({name: report["runs"][name]}, indent=1), flush=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
