"""Top-K evaluation: per-user ranking metrics and the full-ranking evaluator."""

from gnnrec.evaluate.evaluator import Evaluator, RankingTask
from gnnrec.evaluate.metrics import METRIC_NAMES, ranking_metrics

__all__ = ["METRIC_NAMES", "Evaluator", "RankingTask", "ranking_metrics"]
