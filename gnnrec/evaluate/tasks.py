"""Validation and test ranking tasks from a split."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gnnrec.data.split import GROUPS, Split
from gnnrec.evaluate.evaluator import RankingTask

__all__ = ["COLD_ITEM", "cold_item_tasks", "ranking_tasks"]

COLD_ITEM = "cold_item"


def _pairs(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return rows["user_idx"].to_numpy(np.int64), rows["item_idx"].to_numpy(np.int64)


def _task(
    truth: pd.DataFrame,
    exclude: list[pd.DataFrame],
    candidates: np.ndarray,
    groups: dict[str, np.ndarray] | None = None,
) -> RankingTask:
    ex = pd.concat([e[["user_idx", "item_idx"]] for e in exclude], ignore_index=True)
    if groups is None:
        groups = {
            g: np.unique(truth.loc[truth["group"] == g, "user_idx"].to_numpy(np.int64))
            for g in GROUPS
        }
    users, items = _pairs(truth)
    ex_users, ex_items = _pairs(ex)
    return RankingTask.from_pairs(users, items, candidates, ex_users, ex_items, groups)


def _target(split: Split, item_domain: np.ndarray) -> tuple[np.ndarray, pd.DataFrame]:
    candidates = np.flatnonzero(np.asarray(item_domain) == split.target_domain_idx)
    train_target = split.train[split.train["domain_idx"] == split.target_domain_idx]
    return candidates, train_target


def ranking_tasks(split: Split, item_domain: np.ndarray) -> tuple[RankingTask | None, RankingTask]:
    """Full-ranking tasks over every target-domain item.

    Validation masks each user's training items; test masks training and validation
    items. Users are grouped ``warm`` / ``cold`` / ``zero_shot`` as in the split
    (``all`` is added by the task).

    Returns:
        ``(val_task, test_task)``; ``val_task`` is ``None`` when the split has no
        validation rows.
    """
    candidates, train_target = _target(split, item_domain)
    val = _task(split.val, [train_target], candidates) if len(split.val) else None
    test = _task(split.test, [train_target, split.val], candidates)
    return val, test


def cold_item_tasks(
    split: Split, item_domain: np.ndarray
) -> tuple[RankingTask | None, RankingTask | None]:
    """Tasks whose ground truth is the held-out positives that never occur in training.

    A *cold item* has no training interaction in any domain. Every user with at least
    one cold-item positive is evaluated (one group, ``cold_item``) with the same
    candidates and masks as :func:`ranking_tasks`; the user's other (warm-item)
    positives of the same split are masked too, so they count neither as hits nor as
    misses. ID-only models can only rank such items from their random initialisation;
    text features give them a representation.

    Returns:
        ``(val_task, test_task)``, each ``None`` when no held-out positive is a cold item.
    """
    candidates, train_target = _target(split, item_domain)
    seen = np.unique(split.train["item_idx"].to_numpy(np.int64))

    def build(truth: pd.DataFrame, exclude: list[pd.DataFrame]) -> RankingTask | None:
        if not len(truth):
            return None
        cold = ~np.isin(truth["item_idx"].to_numpy(np.int64), seen)
        if not cold.any():
            return None
        rows = truth[cold]
        groups = {COLD_ITEM: np.unique(rows["user_idx"].to_numpy(np.int64))}
        return _task(rows, [*exclude, truth[~cold]], candidates, groups)

    return build(split.val, [train_target]), build(split.test, [train_target, split.val])
