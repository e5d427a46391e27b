"""Reports of saved runs: tables over seeds, paired significance tests, figures.

``gnnrec-report`` (:func:`main`) and :func:`report` read run folders, group them by
their resolved config apart from the seeds and locations, and write mean ± std tables,
paired per-user tests against a baseline and figures. :func:`metrics_table` prints one
run's metrics at the end of ``gnnrec-train``. See ``docs/report.md``.
"""

from gnnrec.report.core import (
    DEFAULT_METRICS,
    Report,
    default_metrics,
    group_notes,
    main,
    report,
)
from gnnrec.report.groups import find_label, format_value, group_labels, resolved_config
from gnnrec.report.plots import curve_frame, plot_bars, plot_curves, short_label
from gnnrec.report.runs import IGNORED_KEYS, NoRunsError, Run, collect_runs, load_runs
from gnnrec.report.stats import (
    holm,
    pair_runs,
    paired_tests,
    paired_users,
    read_per_user,
    significance,
    summarize,
)
from gnnrec.report.tables import (
    latex_significance,
    latex_summary,
    markdown_mean_std,
    markdown_significance,
    markdown_summary,
    mean_std_table,
    metrics_table,
)

__all__ = [
    "DEFAULT_METRICS",
    "IGNORED_KEYS",
    "NoRunsError",
    "Report",
    "Run",
    "collect_runs",
    "curve_frame",
    "default_metrics",
    "find_label",
    "format_value",
    "group_labels",
    "group_notes",
    "holm",
    "latex_significance",
    "latex_summary",
    "load_runs",
    "main",
    "markdown_mean_std",
    "markdown_significance",
    "markdown_summary",
    "mean_std_table",
    "metrics_table",
    "pair_runs",
    "paired_tests",
    "paired_users",
    "plot_bars",
    "plot_curves",
    "read_per_user",
    "report",
    "resolved_config",
    "short_label",
    "significance",
    "summarize",
]
