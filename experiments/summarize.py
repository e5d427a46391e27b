"""Mean ± std over seeds of saved runs, as a Markdown table.

    python experiments/summarize.py outputs/cdr_amazon_movies/multiruns/<time> [more folders] \
        [--plot bars.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

from gnnrec.report import collect_runs, markdown_mean_std, mean_std_table

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DEFAULT_KEYS = [
    "test/warm/ndcg@20",
    "test/warm/recall@20",
    "test/cold/ndcg@20",
    "test/cold/recall@20",
    "test/cold_item/ndcg@20",
    "test/cold_item/recall@20",
    "test/all/sampled_hr@10",
    "test/all/sampled_ndcg@10",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folders", nargs="+", help="run or multirun folders")
    parser.add_argument("--keys", nargs="+", default=DEFAULT_KEYS, help="metrics.json keys")
    parser.add_argument("--plot", type=Path, help="grouped bar chart (mean, std error bars)")
    parser.add_argument(
        "--plot-keys", nargs="+", default=["test/warm/ndcg@20", "test/cold/ndcg@20"]
    )
    args = parser.parse_args()
    runs = collect_runs(args.folders)
    if runs.empty:
        raise SystemExit(f"no metrics.json under {args.folders}")
    keys = [k for k in args.keys if k in runs.columns]
    print(markdown_mean_std(mean_std_table(runs, keys), keys))
    extra = [k for k in ("best_epoch", "epochs", "time/epoch_s") if k in runs.columns]
    if extra:
        print()
        print(runs.groupby("overrides", sort=False)[extra].mean().round(2).to_string())
    if args.plot:
        plot_bars(mean_std_table(runs, args.plot_keys), args.plot_keys, args.plot)


def short_label(overrides: str) -> str:
    """A legend label: the run's overrides without the shared experiment and budget ones."""
    skip = ("experiment=", "encoder=none", "trainer.", "hydra.")
    kept = [o for o in overrides.split() if not o.startswith(skip)]
    return " ".join(o.removeprefix("model=") for o in kept) or overrides


def plot_bars(table, keys: list[str], out: Path) -> None:
    """One group of bars per metric, one bar per run group, std as error bars."""
    fig, ax = plt.subplots(figsize=(2.5 + 1.6 * len(keys) * len(table) / 2, 4))
    width = 0.8 / len(table)
    for j, (name, row) in enumerate(table.iterrows()):
        xs = [i + j * width for i in range(len(keys))]
        means = [row[f"{k} mean"] for k in keys]
        stds = [row[f"{k} std"] for k in keys]
        ax.bar(xs, means, width, yerr=stds, capsize=3, label=short_label(name))
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(keys))], keys)
    ax.set_ylabel("mean over seeds (error bar: std)")
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
