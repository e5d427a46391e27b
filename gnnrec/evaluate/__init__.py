"""Top-K evaluation: tasks from a split, the protocol object, the evaluator and metrics."""

from gnnrec.evaluate.evaluator import Evaluator, RankingTask
from gnnrec.evaluate.metrics import METRIC_NAMES, ranking_metrics
from gnnrec.evaluate.protocol import AUTO, Protocol
from gnnrec.evaluate.tasks import TASKS, cold_item_tasks, cold_items, ranking_tasks, split_tasks

__all__ = [
    "AUTO",
    "METRIC_NAMES",
    "TASKS",
    "Evaluator",
    "Protocol",
    "RankingTask",
    "cold_item_tasks",
    "cold_items",
    "ranking_metrics",
    "ranking_tasks",
    "split_tasks",
]
