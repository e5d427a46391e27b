"""Shared set-up for the benchmarks: the real Gowalla split, loaded through gnnrec."""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from gnnrec.config import ROOT
from gnnrec.data import LightGCNSource, load_dataset
from gnnrec.data.split import split_interactions

DATA_DIR = Path(os.environ.get("GNNREC_DATA_DIR", ROOT.parent / "shared" / "data"))
CACHE_DIR = Path(os.environ.get("GNNREC_CACHE_DIR", ROOT / ".cache"))


def gowalla_split():
    """The LightGCN Gowalla data and its fixed split."""
    data = load_dataset(
        LightGCNSource(DATA_DIR / "gowalla-lightgcn"), preprocess={}, cache_dir=CACHE_DIR
    )
    return data, split_interactions(data)


def interleaved_medians(
    fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 2
) -> dict[str, float]:
    """Median seconds per call of each function, timed round-robin so noise hits all alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def step_arguments(doc: str, repeats: int, **defaults: int) -> argparse.Namespace:
    """The command line of the training-step benchmarks: ``--threads``, ``--repeats``,
    ``--negatives``, ``--batch`` (and ``--dim`` when given a default); sets torch's
    threads and seed."""
    import torch

    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--repeats", type=int, default=repeats, help="timed steps per spelling")
    parser.add_argument("--negatives", type=int, default=64, help="K negatives per pair")
    parser.add_argument("--batch", type=int, default=8192, help="pairs per step")
    if "dim" in defaults:
        parser.add_argument("--dim", type=int, default=defaults["dim"], help="embedding size")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    return args


def report_speeds(args: argparse.Namespace, dim: int, times: dict[str, float], base: str) -> None:
    """Print the median seconds of each spelling and its speed against ``base``'s."""
    print(
        f"batch {args.batch} x K {args.negatives}, dim {dim}, {args.threads} thread(s): "
        "median seconds per forward + backward"
    )
    for name, seconds in times.items():
        print(f"  {name:13s} {seconds:8.4f} s   {times[base] / seconds:5.2f}x {base}'s speed")
