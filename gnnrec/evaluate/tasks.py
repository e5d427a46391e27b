"""Validation and test ranking tasks from a split."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gnnrec.data.split import GROUPS, Split
from gnnrec.evaluate.evaluator import RankingTask

__all__ = ["ranking_tasks"]


def _pairs(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return rows["user_idx"].to_numpy(np.int64), rows["item_idx"].to_numpy(np.int64)


def _task(truth: pd.DataFrame, exclude: list[pd.DataFrame], candidates: np.ndarray) -> RankingTask:
    ex = pd.concat([e[["user_idx", "item_idx"]] for e in exclude], ignore_index=True)
    groups = {
        g: np.unique(truth.loc[truth["group"] == g, "user_idx"].to_numpy(np.int64)) for g in GROUPS
    }
    users, items = _pairs(truth)
    ex_users, ex_items = _pairs(ex)
    return RankingTask.from_pairs(users, items, candidates, ex_users, ex_items, groups)


def ranking_tasks(split: Split, item_domain: np.ndarray) -> tuple[RankingTask | None, RankingTask]:
    """Full-ranking tasks over every target-domain item.

    Validation masks each user's training items; test masks training and validation
    items. Users are grouped ``warm`` / ``cold`` as in the split (``all`` is added by
    the task).

    Returns:
        ``(val_task, test_task)``; ``val_task`` is ``None`` when the split has no
        validation rows.
    """
    candidates = np.flatnonzero(np.asarray(item_domain) == split.target_domain_idx)
    train_target = split.train[split.train["domain_idx"] == split.target_domain_idx]
    val = _task(split.val, [train_target], candidates) if len(split.val) else None
    test = _task(split.test, [train_target, split.val], candidates)
    return val, test
