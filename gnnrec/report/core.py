"""One call from saved runs to tables, tests and figures: :func:`report`.

from gnnrec.report import report
rep = report(["outputs/cdr/multiruns/2026-01-01_00-00-00"], baseline="model=pop")
rep.summary            # mean and std over seeds, one row per group
rep.significance       # paired per-user tests against model=pop
print(rep.markdown())
rep.plot_curves()      # a matplotlib Figure
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from gnnrec.keys import (
    FEW_USERS,
    GROUPS,
    HEADLINE_METRICS,
    NUM_USERS,
    SAME_AS,
    metric_key,
    parse_metric_key,
)
from gnnrec.report.plots import CURVE_METRIC, plot_bars, plot_curves
from gnnrec.report.runs import IGNORED_KEYS, Run, load_runs
from gnnrec.report.stats import check_unique_seeds, find_label, significance, summarize
from gnnrec.report.tables import (
    latex_significance,
    latex_summary,
    markdown_significance,
    markdown_summary,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["DEFAULT_METRICS", "Report", "default_metrics", "group_notes", "report"]

DEFAULT_METRICS = tuple(
    metric_key("test", group, metric, k) for group in GROUPS for metric, k in HEADLINE_METRICS
)
"""Metrics shown by default (those that at least one run has): the headline metrics of
:data:`gnnrec.keys.HEADLINE_METRICS` for every group of :data:`gnnrec.keys.GROUPS`."""


def default_metrics(runs: Sequence[Run]) -> list[str]:
    """The :data:`DEFAULT_METRICS` that at least one run recorded."""
    return [m for m in DEFAULT_METRICS if any(m in r.metrics for r in runs)]


def _check_metrics(runs: Sequence[Run], metrics: Sequence[str]) -> None:
    absent = [m for m in metrics if not any(m in r.metrics for r in runs)]
    if absent:
        keys = sorted({k for r in runs for k in r.metrics if k.startswith("test/")})
        raise KeyError(
            f"no run recorded {absent}; test keys the runs have: {keys[:30]}"
            + (" ..." if len(keys) > 30 else "")
        )


@dataclass
class Report:
    """Runs grouped by configuration, their summary and optional significance tests.

    Attributes:
        runs: The labelled runs (:class:`gnnrec.report.runs.Run`).
        metrics: The reported metric keys.
        summary: Mean and std over seeds per group (:func:`gnnrec.report.stats.summarize`).
        significance: Paired tests against the baseline
            (:func:`gnnrec.report.stats.significance`), or ``None`` without a baseline.
        baseline: The baseline's group label, or ``None``.
        digits: Decimals of means and stds in the Markdown and LaTeX tables.
        notes: Remarks printed under the tables (skipped metrics, user groups that repeat
            another or have few users: :func:`group_notes`).
    """

    runs: list[Run]
    metrics: list[str]
    summary: pd.DataFrame
    significance: pd.DataFrame | None = None
    baseline: str | None = None
    digits: int = 4
    notes: list[str] = field(default_factory=list)

    def summary_markdown(self) -> str:
        """The summary as a Markdown section."""
        return (
            "## Mean ± std over seeds\n\n"
            + markdown_summary(self.summary, self.metrics, self.digits)
            + "\n\nGroups: runs whose resolved configs are equal apart from the seeds and "
            "the location-only keys; labels show the choices and keys that differ between "
            "groups. "
            "std: sample standard deviation (ddof=1) over the seeds; a single seed shows "
            "the mean alone.\n"
        )

    def significance_markdown(self) -> str:
        """The significance tests as a Markdown section (empty without a baseline)."""
        if self.significance is None:
            return ""
        if self.significance.empty:
            return f"## Paired tests against `{self.baseline}`\n\nNo other group to compare.\n"
        distinct = int((self.significance["same_as"] == "").sum())
        return (
            f"## Paired tests against `{self.baseline}`\n\n"
            + markdown_significance(self.significance, self.digits)
            + "\n\nPer-user test metrics (`per_user.parquet`) paired on raw user ids within "
            "each split both groups evaluated (same `split_fingerprint`), each user's values "
            "averaged over those runs (one pair per user); `baseline` and `mean` are means "
            "over these users. Two-sided paired t-test and Wilcoxon signed-rank test; Holm "
            f"adjustment over the {distinct} distinct comparisons of this table, per test (a "
            "row whose paired per-user values repeat another row's is tested once, with "
            f"that row: `note` names it); rows with fewer than {FEW_USERS} paired users are "
            "marked in `note`.\n"
        )

    def markdown(self) -> str:
        """Summary, significance tests and notes as one Markdown document."""
        parts = [self.summary_markdown(), self.significance_markdown()]
        if self.notes:
            parts.append("\n".join(f"- {n}" for n in self.notes) + "\n")
        return "\n".join(p for p in parts if p)

    def plot_bars(self, metrics: Sequence[str] | None = None) -> Figure:
        """Grouped bars of ``metrics`` (default: the report's), std over seeds as errors."""
        return plot_bars(self.summary, list(metrics or self.metrics))

    def plot_curves(
        self, metric: str = CURVE_METRIC, loss: str | None = "train/loss", x: str = "epoch"
    ) -> Figure:
        """Learning curves of the groups (see :func:`gnnrec.report.plots.plot_curves`)."""
        return plot_curves(self.runs, metric, loss, x)

    def write(self, out: str | Path, curve_metric: str = CURVE_METRIC) -> list[Path]:
        """Write the tables and figures into ``out``, each file atomically.

        Files: ``summary.md``/``.csv``/``.tex``; ``significance.md``/``.csv``/``.tex``
        with a baseline; ``bars.png``; ``curves.png`` when some run has a history with
        ``curve_metric`` or ``train/loss``.

        Returns:
            The written paths.
        """
        from gnnrec.utils.io import atomic_write

        out = Path(out)
        texts = {
            "summary.md": self.summary_markdown(),
            "summary.csv": self.summary.to_csv(),
            "summary.tex": latex_summary(self.summary, self.metrics, self.digits),
        }
        if self.significance is not None:
            texts["significance.md"] = self.significance_markdown()
            texts["significance.csv"] = self.significance.to_csv(index=False)
            if not self.significance.empty:
                texts["significance.tex"] = latex_significance(self.significance, self.digits)
        written = [
            atomic_write(out / name, lambda tmp, text=text: tmp.write_text(text))
            for name, text in texts.items()
        ]
        figures = {"bars.png": self.plot_bars()}
        try:
            figures["curves.png"] = self.plot_curves(curve_metric)
        except ValueError as err:
            self.notes.append(f"curves.png not written: {err}")
        for name, fig in figures.items():
            written.append(
                atomic_write(
                    out / name, lambda tmp, fig=fig: fig.savefig(tmp, format="png", dpi=120)
                )
            )
        return written


def report(
    folders: Sequence[str | Path],
    metrics: Sequence[str] | None = None,
    baseline: str | None = None,
    out: str | Path | None = None,
    curve_metric: str = CURVE_METRIC,
    digits: int = 4,
    ignore: Iterable[str] = IGNORED_KEYS,
    label: Callable[[Run], str] | None = None,
) -> Report:
    """Read runs, group them over seeds, test them against a baseline, optionally write.

    Args:
        folders: Run folders, multirun folders or their parents (searched recursively).
        metrics: Metric keys to report; by default :data:`DEFAULT_METRICS` that exist.
        baseline: Group label (or a part of exactly one) to test the others against,
            with paired per-user tests; needs every compared run's ``per_user.parquet``.
        out: Folder to write tables and figures into (:meth:`Report.write`).
        curve_metric: History key of the learning-curve figure.
        digits: Decimals of means and stds in the tables.
        ignore: Top-level config keys whose overrides do not define a group
            (:data:`gnnrec.report.runs.IGNORED_KEYS`).
        label: Names each run's group instead of the labels derived from the configs,
            e.g. ``lambda run: run.path.parent.name`` for runs laid out as
            ``<group>/<seed>``; runs it names alike form one group.

    Returns:
        The :class:`Report`.

    Raises:
        FileNotFoundError: A folder, or a needed ``per_user.parquet``, does not exist.
        KeyError: No run recorded one of ``metrics``.
        ValueError: No run found; two runs of one group share a seed; ``baseline``
            matches no group or several; compared groups share no seed or user.
    """
    runs = load_runs(folders, ignore=ignore)
    if label is not None:
        runs = [replace(r, label=label(r)) for r in runs]
    check_unique_seeds(runs)
    metrics = list(metrics) if metrics else default_metrics(runs)
    if not metrics:
        raise KeyError(
            f"none of the default metrics {list(DEFAULT_METRICS)} was recorded; pass metrics"
        )
    _check_metrics(runs, metrics)
    rep = Report(runs=runs, metrics=metrics, summary=summarize(runs, metrics), digits=digits)
    rep.notes += group_notes(runs, metrics)
    if baseline is not None:
        rep.baseline = find_label(runs, baseline)
        rep.significance = significance(runs, rep.baseline, metrics)
        skipped = [m for m in metrics if not m.startswith("test/")]
        if skipped:
            rep.notes.append(f"no per-user values (test metrics only), not tested: {skipped}")
    if out is not None:
        rep.write(out, curve_metric)
    return rep


def group_notes(runs: Sequence[Run], metrics: Sequence[str]) -> list[str]:
    """Notes on the user groups of ``metrics`` that the runs flagged (``metrics.json``).

    A group that repeats another (``"<split>/<group>/same_as"``: the same users,
    held-out items and candidates) and a group with fewer than
    :data:`gnnrec.keys.FEW_USERS` users (``"<split>/<group>/num_users"``) get one note
    each, with how many runs say so.
    """
    notes = []
    groups = dict.fromkeys(
        (k.split, k.group) for m in metrics if (k := parse_metric_key(m)) and not k.prefix
    )
    for split, group in groups:
        name = f"{split}/{group}"
        same = [r.metrics.get(metric_key(split, group, SAME_AS)) for r in runs]
        repeated = sorted({str(s) for s in same if s is not None})
        if repeated:
            count = sum(s is not None for s in same)
            notes.append(
                f"{name} repeats {', '.join(f'{split}/{g}' for g in repeated)} in {count} of "
                f"{len(runs)} runs (the same users, held-out items and candidates): its "
                "numbers are not a separate result"
            )
        users = [r.metrics.get(metric_key(split, group, NUM_USERS)) for r in runs]
        few = [int(u) for u in users if u is not None and int(u) < FEW_USERS]
        if few:
            span = f"{min(few)}" if min(few) == max(few) else f"{min(few)} to {max(few)}"
            notes.append(
                f"{name} has fewer than {FEW_USERS} users in {len(few)} of {len(runs)} runs "
                f"({span} users): its means are too noisy to rank methods by"
            )
    return notes


def main(argv: Sequence[str] | None = None) -> None:
    """``gnnrec-report``: tables, significance tests and figures of saved runs."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="gnnrec-report",
        description="Mean ± std over seeds of saved runs grouped by their overrides, "
        "paired per-user significance tests against a baseline, Markdown/CSV/LaTeX tables "
        "and figures. See docs/report.md.",
    )
    parser.add_argument("folders", nargs="+", type=Path, help="run or multirun folders")
    parser.add_argument(
        "--metrics",
        nargs="+",
        metavar="KEY",
        help="metric keys (default: the headline metrics of every group present)",
    )
    parser.add_argument("--baseline", metavar="LABEL", help="group label to test against")
    parser.add_argument("--out", type=Path, metavar="DIR", help="write tables and figures here")
    parser.add_argument(
        "--curve-metric", default=CURVE_METRIC, metavar="KEY", help="curves.png metric"
    )
    parser.add_argument("--digits", type=int, default=4, metavar="N", help="decimals (4)")
    args = parser.parse_args(argv)
    try:
        rep = report(
            args.folders,
            metrics=args.metrics,
            baseline=args.baseline,
            digits=args.digits,
        )
        written = rep.write(args.out, args.curve_metric) if args.out else []
    except (FileNotFoundError, KeyError, ValueError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        parser.exit(2, f"gnnrec-report: error: {message}\n")
    print(rep.markdown())
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
