"""Example recommendations for a few test users, with item titles.

A qualitative look at a run: for a handful of users of the test task, the top-``k``
items the model recommends (masked items, i.e. training and validation items, are
never recommended), their scores, whether each is a held-out test item, and the
titles of the user's held-out items. The run writes the frame to ``examples.csv``
and logs it as a W&B table.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from gnnrec.evaluate.evaluator import RankingTask
from gnnrec.nn.scoring import Scorer

__all__ = ["EXAMPLE_COLUMNS", "example_recommendations", "item_titles"]

log = logging.getLogger(__name__)

EXAMPLE_COLUMNS = (
    "user_idx",
    "user",
    "group",
    "rank",
    "item_idx",
    "title",
    "score",
    "hit",
    "truth_titles",
)
"""Columns of :func:`example_recommendations`: one row per (user, rank)."""

TRUTH_SEPARATOR = " | "


def item_titles(items: pd.DataFrame, column: str | None) -> np.ndarray:
    """A display title for every item (entry ``j`` is item ``j``).

    Args:
        items: The item table (``InteractionData.items``): column ``item`` (raw id)
            and the text columns.
        column: The title column (``data.text.title_column``). Items whose title is
            empty, and every item when the column is absent (e.g. Gowalla has no
            titles), get their raw item id instead.

    Returns:
        ``object[num_items]`` of strings.
    """
    if "item" not in items.columns:
        raise ValueError(f"the item table has no 'item' column; columns: {list(items.columns)}")
    ids = items["item"].astype(str).to_numpy(dtype=object)
    if not column or column not in items.columns:
        log.info("item column %r not found; example titles are item ids", column)
        return ids
    titles = items[column].fillna("").astype(str).str.strip().to_numpy(dtype=object)
    return np.where(titles != "", titles, ids)


def _row_groups(task: RankingTask) -> np.ndarray:
    """The group of every task row (``warm``, ``cold``, ...; ``all`` when there are none)."""
    group = np.full(task.num_users, "all", dtype=object)
    for name, mask in task.groups.items():
        if name != "all":
            group[mask.cpu().numpy()] = name
    return group


def _pick_rows(group: np.ndarray, num_users: int, seed: int) -> list[int]:
    """``num_users`` seeded random task rows, taken from the groups in turn."""
    rng = np.random.default_rng(seed)
    queues = [rng.permutation(np.flatnonzero(group == name)) for name in sorted(set(group))]
    rows: list[int] = []
    for i in range(max((len(q) for q in queues), default=0)):
        rows.extend(int(q[i]) for q in queues if i < len(q))
        if len(rows) >= num_users:
            break
    return rows[:num_users]


def example_recommendations(
    user_emb: Tensor | Scorer,
    item_emb: Tensor | None,
    task: RankingTask,
    titles: Sequence[str] | np.ndarray,
    num_users: int = 5,
    k: int = 10,
    seed: int = 0,
    user_names: Sequence[str] | np.ndarray | None = None,
) -> pd.DataFrame:
    """Top-``k`` recommendations of ``num_users`` users of ``task``, one row per rank.

    Users are drawn (seeded) from the task's groups in turn, so warm and cold users
    both appear. Scores are ``user_emb[u] @ item_emb[i]`` over ``task.candidates``, as
    in :class:`gnnrec.evaluate.Evaluator`; the user's masked items (``exclude``) are
    never recommended, so a user with fewer than ``k`` unmasked candidates gets fewer
    rows.

    Args:
        user_emb: ``[num_users, d]`` embeddings indexed by global user id, or a
            :class:`~gnnrec.nn.scoring.Scorer` (an item-item model's ``forward``).
        item_emb: ``[num_items, d]`` embeddings indexed by global item id; ``None``
            with a scorer.
        task: The test :class:`~gnnrec.evaluate.evaluator.RankingTask`.
        titles: Title of every item, indexed by global item id (:func:`item_titles`).
        num_users: Users to show.
        k: Recommendations per user.
        seed: Seed of the user draw.
        user_names: Raw id of every user, indexed by global user id; ``None`` leaves
            column ``user`` equal to ``user_idx``.

    Returns:
        Columns :data:`EXAMPLE_COLUMNS`: ``user_idx``, ``user`` (raw id), ``group``,
        ``rank`` (1-based), ``item_idx``, ``title``, ``score``, ``hit`` (the item is
        one of the user's held-out items) and ``truth_titles`` (the user's held-out
        items' titles joined by ``" | "``).
    """
    if num_users < 0 or k <= 0:
        raise ValueError(f"need num_users >= 0 and k > 0, got num_users={num_users}, k={k}")
    num_items = user_emb.num_items if isinstance(user_emb, Scorer) else item_emb.size(0)
    if len(titles) < num_items:
        raise ValueError(
            f"titles has {len(titles)} entries but there are {num_items} items; pass "
            "one title per item (item_titles(data.items, column))"
        )
    group = _row_groups(task)
    rows = _pick_rows(group, num_users, seed)
    records = []
    if rows:
        candidates = task.candidates
        users = task.users[rows]
        with torch.no_grad():
            if isinstance(user_emb, Scorer):
                device = user_emb.device
                scores = user_emb.matrix(users.to(device), candidates.to(device)).cpu()
            else:
                items = item_emb[candidates.to(item_emb.device)].detach().float().cpu()
                scores = user_emb[users.to(user_emb.device)].detach().float().cpu() @ items.T
    for j, row in enumerate(rows):
        masked = torch.zeros(task.num_candidates, dtype=torch.bool)
        masked[task.exclude_indices[task.exclude_indptr[row] : task.exclude_indptr[row + 1]]] = True
        truth = task.truth_indices[task.truth_indptr[row] : task.truth_indptr[row + 1]]
        truth_items = set(candidates[truth].tolist())
        truth_text = TRUTH_SEPARATOR.join(str(titles[i]) for i in sorted(truth_items))
        row_scores = scores[j].masked_fill(masked, float("-inf"))
        top = torch.topk(row_scores, min(k, task.num_candidates)).indices
        top = top[~masked[top]]  # fewer than k unmasked candidates: drop the masked ones
        user = int(users[j])
        for rank, position in enumerate(top.tolist(), start=1):
            item = int(candidates[position])
            records.append(
                {
                    "user_idx": user,
                    "user": str(user_names[user]) if user_names is not None else str(user),
                    "group": str(group[row]),
                    "rank": rank,
                    "item_idx": item,
                    "title": str(titles[item]),
                    "score": float(row_scores[position]),
                    "hit": item in truth_items,
                    "truth_titles": truth_text,
                }
            )
    return pd.DataFrame.from_records(records, columns=list(EXAMPLE_COLUMNS))
