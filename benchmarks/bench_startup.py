"""Start-up cost: imports and an offline W&B cycle, each in a fresh interpreter.

    python -m benchmarks.bench_startup [--repeats 3] [--complete 10]

Times, in fresh subprocesses (the cost a user pays per command), ``import torch`` (the
reference), ``import gnnrec.cli``, ``import gnnrec.run``, and an offline
``WandbTracker.start``/``finish`` cycle with gnnrec's settings
(:data:`gnnrec.track.FAST_SETTINGS`) and with W&B's defaults. Each figure is the median
wall time over ``--repeats`` interleaved rounds and its ratio to the reference of the
same run. ``--complete N`` runs N offline runs back to back in one process and counts
those whose folder W&B itself reports finished when ``finish()`` returns (its
``logs/debug-internal.log`` ends the stream: ``stream: all finished``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

CYCLE = """
import sys, time
from gnnrec.track import WandbTracker
import gnnrec.track.trackers as t
if sys.argv[2] == "defaults":
    t.FAST_SETTINGS = {}
t0 = time.perf_counter()
tracker = WandbTracker(mode="offline")
tracker.start({"a": 1}, sys.argv[1])
t1 = time.perf_counter()
tracker.log({"epoch": 0, "x": 1.0}, step=0)
tracker.finish({"y": 2.0})
print(t1 - t0, time.perf_counter() - t1)
"""

COMPLETE = """
import sys
from pathlib import Path
from gnnrec.track import WandbTracker
ok = 0
for i in range(int(sys.argv[2])):
    folder = Path(sys.argv[1]) / str(i)
    tracker = WandbTracker(mode="offline")
    tracker.start({"i": i}, folder)
    tracker.log({"epoch": 0, "x": float(i)}, step=0)
    tracker.finish({"y": float(i)})
    (log,) = folder.glob("wandb/offline-run-*/logs/debug-internal.log")
    ok += "stream: all finished" in log.read_text()
print(ok)
"""


def _env() -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1"}


def _wall(args: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=_env(), check=True
    )
    return time.perf_counter() - t0, done.stdout


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--complete", type=int, default=10, metavar="N")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        jobs = {
            "import torch (reference)": ["-c", "import torch"],
            "import gnnrec.cli": ["-c", "import gnnrec.cli"],
            "import gnnrec.run": ["-c", "import gnnrec.run"],
            "W&B offline cycle, gnnrec settings": ["-c", CYCLE, f"{tmp}/fast", "fast"],
            "W&B offline cycle, W&B defaults": ["-c", CYCLE, f"{tmp}/slow", "defaults"],
        }
        walls: dict[str, list[float]] = {name: [] for name in jobs}
        inner: dict[str, list[tuple[float, float]]] = {name: [] for name in jobs}
        for _ in range(args.repeats):
            for name, cmd in jobs.items():
                wall, out = _wall(cmd)
                walls[name].append(wall)
                if "cycle" in name:
                    start, finish = map(float, out.split()[-2:])
                    inner[name].append((start, finish))
        ref = statistics.median(walls["import torch (reference)"])
        print(f"| command (fresh interpreter) | median s | x import torch |  # {args.repeats} runs")
        print("|---|---:|---:|")
        for name, ts in walls.items():
            med = statistics.median(ts)
            print(f"| {name} | {med:.2f} | {med / ref:.2f} |")
        for name, pairs in inner.items():
            if pairs:
                start = statistics.median(p[0] for p in pairs)
                finish = statistics.median(p[1] for p in pairs)
                print(f"{name}: start {start:.2f} s, log + finish {finish:.2f} s (in process)")
        if args.complete:
            _, out = _wall(["-c", COMPLETE, f"{tmp}/complete", str(args.complete)])
            print(f"complete offline runs when finish() returned: {out.strip()}/{args.complete}")


if __name__ == "__main__":
    main()
