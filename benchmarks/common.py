"""Shared set-up for the benchmarks: the real Gowalla split, loaded through gnnrec."""

from __future__ import annotations

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
