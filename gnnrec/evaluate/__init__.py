"""Top-K evaluation: the metric table, the full-ranking evaluator and the sampled protocol."""

from gnnrec.evaluate.evaluator import Evaluator, RankingTask
from gnnrec.evaluate.metrics import METRIC_NAMES, METRICS, Ranking, ranking_metrics
from gnnrec.evaluate.sampled import SAMPLED_METRICS, SAMPLED_NAMES
from gnnrec.evaluate.tasks import ranking_tasks

__all__ = [
    "METRICS",
    "METRIC_NAMES",
    "SAMPLED_METRICS",
    "SAMPLED_NAMES",
    "Evaluator",
    "Ranking",
    "RankingTask",
    "ranking_metrics",
    "ranking_tasks",
]
