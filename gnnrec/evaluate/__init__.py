"""Top-K evaluation: tasks from a split, the protocol object, the metric table, the
full-ranking evaluator and the sampled protocol."""

from gnnrec.evaluate.evaluator import Evaluator, RankingTask
from gnnrec.evaluate.metrics import METRIC_NAMES, METRICS, Ranking, ranking_metrics
from gnnrec.evaluate.protocol import AUTO, GroupFlag, Protocol, flag_groups
from gnnrec.evaluate.sampled import SAMPLED_METRICS, SAMPLED_NAMES
from gnnrec.evaluate.tasks import TASKS, cold_item_tasks, cold_items, ranking_tasks, split_tasks

__all__ = [
    "AUTO",
    "METRICS",
    "METRIC_NAMES",
    "SAMPLED_METRICS",
    "SAMPLED_NAMES",
    "TASKS",
    "Evaluator",
    "GroupFlag",
    "Protocol",
    "Ranking",
    "RankingTask",
    "cold_item_tasks",
    "cold_items",
    "flag_groups",
    "ranking_metrics",
    "ranking_tasks",
    "split_tasks",
]
