"""Mean ± std over seeds of saved runs, as a Markdown table (a thin wrapper of gnnrec-report).

    python experiments/summarize.py outputs/cdr_amazon_movies/multiruns/<time> [more folders] \
        [--plot bars.png]

``gnnrec-report`` does the same and more (significance tests, CSV/LaTeX, learning
curves); see docs/report.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gnnrec.keys import ALL, COLD, COLD_ITEM, HEADLINE_METRICS, WARM, metric_key
from gnnrec.report import load_runs, markdown_summary, plot_bars, short_label, summarize
from gnnrec.report.stats import check_unique_seeds
from gnnrec.utils.io import atomic_write

__all__ = ["DEFAULT_KEYS", "main", "plot_bars", "short_label"]

DEFAULT_KEYS = [
    *(metric_key("test", g, m, k) for g in (WARM, COLD, COLD_ITEM) for m, k in HEADLINE_METRICS),
    metric_key("test", ALL, "sampled_hr", 10),
    metric_key("test", ALL, "sampled_ndcg", 10),
]


def main(argv: list[str] | None = None) -> None:
    """Print the Markdown table (and the mean epochs and timings); optionally plot bars."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folders", nargs="+", help="run or multirun folders")
    parser.add_argument("--keys", nargs="+", default=DEFAULT_KEYS, help="metrics.json keys")
    parser.add_argument("--plot", type=Path, help="grouped bar chart (mean, std error bars)")
    parser.add_argument(
        "--plot-keys",
        nargs="+",
        default=[metric_key("test", g, *HEADLINE_METRICS[0]) for g in (WARM, COLD)],
    )
    args = parser.parse_args(argv)
    try:
        runs = load_runs(args.folders)
        check_unique_seeds(runs)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(str(err)) from err
    keys = [k for k in args.keys if any(k in r.metrics for r in runs)]
    print(markdown_summary(summarize(runs, keys), keys))
    extra = [
        k for k in ("best_epoch", "epochs", "time/epoch_s") if any(k in r.metrics for r in runs)
    ]
    if extra:
        print()
        table = summarize(runs, extra)[[f"{k} mean" for k in extra]]
        print(table.rename(columns=lambda c: c.removesuffix(" mean")).round(2).to_string())
    if args.plot:
        fig = plot_bars(summarize(runs, args.plot_keys), args.plot_keys)
        atomic_write(args.plot, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
