"""Mean ± std over seeds of saved runs, as a Markdown table.

    python experiments/summarize.py outputs/cdr_amazon_movies/multiruns/<time> [more folders]
"""

from __future__ import annotations

import argparse

from gnnrec.report import collect_runs, markdown_mean_std, mean_std_table

DEFAULT_KEYS = [
    "test/warm/ndcg@20",
    "test/warm/recall@20",
    "test/cold/ndcg@20",
    "test/cold/recall@20",
    "test/all/sampled_hr@10",
    "test/all/sampled_ndcg@10",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folders", nargs="+", help="run or multirun folders")
    parser.add_argument("--keys", nargs="+", default=DEFAULT_KEYS, help="metrics.json keys")
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


if __name__ == "__main__":
    main()
