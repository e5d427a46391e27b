"""The ranking tasks of a split: who is ranked, against which candidates, with what masked.

* **main** (groups ``warm``, ``cold``, ``zero_shot``, ``all``): every held-out user,
  ranked against the target domain's *whole catalogue* (every item row of the domain,
  interacted with or not). Validation masks the user's target training items; test
  masks training and validation items.
* **cold_item** (group ``cold_item``): users with a held-out positive that has no
  training interaction (a *cold item*), ranked against the same candidates with the
  same masks, counting only the cold positives as truth; their other held-out
  positives of the split are masked, so they count neither as hits nor as misses.
* **cold_item_only** (group ``cold_item_only``): the same users and truth, ranked
  against the cold items only: every target item without a training interaction
  (the item-cold-start convention). There, knowing which items are new is worth
  nothing, so a model cannot win by it.

What makes an item cold is its *training* degree, which a model may know; how much
that knowledge alone is worth among all items is measured by ``model=random
model.cold_first=true``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gnnrec.data.split import Split
from gnnrec.evaluate.evaluator import RankingTask
from gnnrec.keys import COLD_ITEM, COLD_ITEM_ONLY, USER_GROUPS

__all__ = ["TASKS", "cold_item_tasks", "cold_items", "ranking_tasks", "split_tasks"]

MAIN = "main"
TASKS = (MAIN, COLD_ITEM, COLD_ITEM_ONLY)
"""Task names, as in ``per_user.parquet``'s ``task`` column."""


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
            for g in USER_GROUPS
        }
    users, items = _pairs(truth)
    ex_users, ex_items = _pairs(ex)
    return RankingTask.from_pairs(users, items, candidates, ex_users, ex_items, groups)


def _target(split: Split, item_domain: np.ndarray) -> tuple[np.ndarray, pd.DataFrame]:
    candidates = np.flatnonzero(np.asarray(item_domain) == split.target_domain_idx)
    train_target = split.train[split.train["domain_idx"] == split.target_domain_idx]
    return candidates, train_target


def cold_items(split: Split, item_domain: np.ndarray) -> np.ndarray:
    """Target-domain items without any training interaction (sorted ids)."""
    candidates, _ = _target(split, item_domain)
    seen = np.unique(split.train["item_idx"].to_numpy(np.int64))
    return candidates[~np.isin(candidates, seen)]


def ranking_tasks(split: Split, item_domain: np.ndarray) -> tuple[RankingTask | None, RankingTask]:
    """The main tasks ``(val, test)``; ``val`` is ``None`` without validation rows."""
    candidates, train_target = _target(split, item_domain)
    val = _task(split.val, [train_target], candidates) if len(split.val) else None
    test = _task(split.test, [train_target, split.val], candidates)
    return val, test


def cold_item_tasks(
    split: Split, item_domain: np.ndarray, only: bool = False
) -> tuple[RankingTask | None, RankingTask | None]:
    """The cold-item tasks ``(val, test)``, each ``None`` without a cold positive.

    Args:
        split: The split.
        item_domain: ``[num_items]`` domain of every item.
        only: Rank among the cold items only (``cold_item_only``) instead of among all
            target items (``cold_item``).
    """
    candidates, train_target = _target(split, item_domain)
    cold = cold_items(split, item_domain)
    name = COLD_ITEM_ONLY if only else COLD_ITEM
    pool = cold if only else candidates

    def build(truth: pd.DataFrame, exclude: list[pd.DataFrame]) -> RankingTask | None:
        if not len(truth):
            return None
        is_cold = np.isin(truth["item_idx"].to_numpy(np.int64), cold)
        if not is_cold.any():
            return None
        rows = truth[is_cold]
        groups = {name: np.unique(rows["user_idx"].to_numpy(np.int64))}
        return _task(rows, [*exclude, truth[~is_cold]], pool, groups)

    return build(split.val, [train_target]), build(split.test, [train_target, split.val])


def split_tasks(split: Split, item_domain: np.ndarray) -> dict[str, dict[str, RankingTask]]:
    """``{"val": {task: RankingTask}, "test": {...}}`` for every task that has users."""
    out: dict[str, dict[str, RankingTask]] = {"val": {}, "test": {}}
    pairs = {
        MAIN: ranking_tasks(split, item_domain),
        COLD_ITEM: cold_item_tasks(split, item_domain),
        COLD_ITEM_ONLY: cold_item_tasks(split, item_domain, only=True),
    }
    for name, (val, test) in pairs.items():
        if val is not None:
            out["val"][name] = val
        if test is not None:
            out["test"][name] = test
    return out
