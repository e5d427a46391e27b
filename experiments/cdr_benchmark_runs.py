"""Launch the runs of the cross-domain benchmark page, one thread per run.

    python experiments/cdr_benchmark_runs.py RUNS_ROOT [--tables tuned_amazon_movies ...] [--jobs 2]

The tuned tables (``tuned_amazon_<target>``) rerun every model's tuned experiment file
(``conf/experiment/tuned/amazon_<target>_<model>.yaml``, written by
``experiments/tune_amazon.py export`` from its study on validation) over seeds 0-2, next
to the floors (Pop, random) that have nothing to tune; a row whose tuned file does not
exist yet fails with that name. EASE's runs (about 14 GiB each) never run two at once.

Each run goes to ``RUNS_ROOT/<experiment>/<group>/seed<k>`` (a run whose folder holds
``metrics.json`` is skipped, so an interrupted launch continues where it stopped); then
``python experiments/cdr_benchmark.py RUNS_ROOT`` writes the page (``--keep`` when only
some tables were run). Runs are ordered so that the longest of each seed start first.
Set ``GNNREC_CACHE_DIR`` to share the data and embedding caches between launches: the
first text run encodes the 86k Amazon items (about 20 minutes on one thread), and the
others of that data wait for it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

TUNED_DIR = Path(__file__).resolve().parent.parent / "conf" / "experiment" / "tuned"

ID = ["encoder=none"]
RGCN = [
    "encoder=none",
    "model=rgcn",
    "model.edge_dropout=0.4",
    "model.self_loop_dropout=0.2",
    "model.weight_decay=0.01",
    "trainer.max_epochs=20",
]
LGT_SOFTMAX = ["model=lightgcn_text", "trainer.max_epochs=20", "loss=softmax"]
LGT_BPR = ["model=lightgcn_text", "trainer.max_epochs=20", "loss=bpr", "model.normalize=False"]
ZEROSHOT = ["model=text_zeroshot", "model.user_input=mean"]
FLOORS = {
    "pop": [*ID, "model=pop"],
    "random": [*ID, "model=random"],
    "random_cold_first": [*ID, "model=random", "model.cold_first=true"],
    "zs": ZEROSHOT,
}
SEEDS = (0, 1, 2)
# tuned rows, longest first: "text_best" is the cold-start comparison's text model
TUNED = ("text_best", "bitgcf", "lightgcn", "rgcn", "mf", "emcdr", "ease", "gfcf", "itemknn")
ALONE = {"ease"}  # groups of which one run at a time fits in memory


def tuned_table(target: str) -> list[tuple[str, list[str], tuple[int, ...]]]:
    """Every tuned model of ``target``, then the untunable floors on the same split."""
    rows = [(m, [f"experiment=tuned/amazon_{target}_{m}"], SEEDS) for m in TUNED]
    floors = [(name, o, SEEDS) for name, o in FLOORS.items() if name != "zs"]
    return rows + [(n, [f"experiment=cdr_amazon_{target}", *o], s) for n, o, s in floors]


# experiment -> [(group folder, overrides, seeds)], longest first within a seed
TABLES: dict[str, list[tuple[str, list[str], tuple[int, ...]]]] = {
    "tuned_amazon_movies": tuned_table("movies"),
    "tuned_amazon_books": tuned_table("books"),
    "cdr_amazon_movies": [
        ("bitgcf", [*ID, "model=bitgcf"], SEEDS),
        ("lightgcn", [*ID, "model=lightgcn"], SEEDS),
        ("lgt_softmax", LGT_SOFTMAX, SEEDS),
        ("lgt_bpr", LGT_BPR, SEEDS),
        ("rgcn", RGCN, SEEDS),
        ("emcdr", [*ID, "model=emcdr"], SEEDS),
        ("mf", [*ID, "model=mf"], SEEDS),
        *((name, overrides, SEEDS) for name, overrides in FLOORS.items()),
    ],
    "cdr_amazon_books": [
        ("bitgcf", [*ID, "model=bitgcf"], SEEDS),
        ("lgt_softmax", LGT_SOFTMAX, SEEDS),
        ("lightgcn", [*ID, "model=lightgcn"], SEEDS),
        ("rgcn", RGCN, SEEDS),
        ("emcdr", [*ID, "model=emcdr"], SEEDS),
        ("mf", [*ID, "model=mf"], SEEDS),
        *((name, overrides, SEEDS) for name, overrides in FLOORS.items()),
    ],
    "zeroshot_amazon_movies": [
        ("lgt_softmax", LGT_SOFTMAX, SEEDS),
        ("lightgcn", ["model=lightgcn", "encoder=none", "trainer.max_epochs=10"], (0,)),
        ("pop", ["model=pop", "encoder=none", "trainer.max_epochs=10"], (0,)),
        ("zs", ZEROSHOT, SEEDS),
    ],
    "rgcn_ml100k": [
        ("kg", ["model.use_kg=True", "trainer.max_epochs=50"], SEEDS),
        ("nokg", ["model.use_kg=False", "trainer.max_epochs=50"], SEEDS),
    ],
}


def jobs(tables: list[str], root: Path) -> list[tuple[Path, list[str]]]:
    """(run folder, overrides) of every run of ``tables``, seed by seed."""
    out = []
    for table in tables:
        groups = TABLES[table]
        for seed in SEEDS:
            for name, overrides, seeds in groups:
                if seed in seeds:
                    folder = root / table / name / f"seed{seed}"
                    if not any(o.startswith("experiment=") for o in overrides):
                        overrides = [f"experiment={table}", *overrides]
                    out.append((folder, [*overrides, f"seed={seed}"]))
    return out


_ALONE_LOCKS = {name: threading.Lock() for name in ALONE}


def missing_tuned_file(overrides: list[str]) -> Path | None:
    """The tuned experiment file ``overrides`` name when it does not exist."""
    for o in overrides:
        if o.startswith("experiment=tuned/"):
            path = TUNED_DIR / f"{o.split('/', 1)[1]}.yaml"
            return None if path.is_file() else path
    return None


def launch(folder: Path, overrides: list[str]) -> int:
    if (folder / "metrics.json").is_file():
        return 0
    missing = missing_tuned_file(overrides)
    if missing is not None:
        print(f"SKIPPED: {missing} does not exist (experiments/tune_amazon.py export)", flush=True)
        return 1
    lock = _ALONE_LOCKS.get(folder.parent.name)
    if lock is not None:
        with lock:
            return _launch(folder, overrides)
    return _launch(folder, overrides)


def _launch(folder: Path, overrides: list[str]) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "gnnrec.train", *overrides, f"hydra.run.dir={folder}"]
    with (folder / "launch.log").open("w") as log:
        code = subprocess.call(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    print(f"{'done' if code == 0 else f'FAILED ({code})'}: {' '.join(overrides)}", flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="folder for the run folders")
    parser.add_argument("--tables", nargs="+", choices=list(TABLES), default=list(TABLES))
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (one thread each)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = parser.parse_args(argv)
    todo = jobs(args.tables, args.root.resolve())
    if args.dry_run:
        for folder, overrides in todo:
            print(f"gnnrec-train {' '.join(overrides)} hydra.run.dir={folder}")
        return 0
    with ThreadPoolExecutor(args.jobs) as pool:
        codes = list(pool.map(lambda job: launch(*job), todo))
    return int(any(codes))


if __name__ == "__main__":
    sys.exit(main())
