"""Top-K evaluation: per-user ranking metrics and the full-ranking evaluator."""

from gnnrec.evaluate.evaluator import Evaluator, RankingTask
from gnnrec.evaluate.metrics import METRIC_NAMES, ranking_metrics
from gnnrec.evaluate.tasks import ranking_tasks

__all__ = ["METRIC_NAMES", "Evaluator", "RankingTask", "ranking_metrics", "ranking_tasks"]
