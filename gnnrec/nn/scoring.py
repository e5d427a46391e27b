r"""Scores computed a block of users at a time: how item-item models meet the evaluator.

Embedding models rank by :math:`\mathbf{e}_u^\top \mathbf{e}_i`, and their
:meth:`~gnnrec.models.base.Recommender.forward` returns the two tables. An item-item model
(item-KNN, EASE, GF-CF) scores :math:`\hat{y}_u = \mathbf{x}_u S` from the user's row
:math:`\mathbf{x}_u` of the sparse training matrix :math:`X` and an items x items operator
:math:`S`; written as two dense tables that would be ``[num_users, num_items]`` and
``[num_items, num_items]`` (9,333 x 86,423 and 86,423 x 86,423 on the Amazon data). Such a
model's ``forward`` returns a :class:`Scorer` instead, and the evaluator asks it for one
dense ``[chunk, num_candidates]`` block of scores at a time.

A :class:`Scorer` is prepared once per candidate list (:meth:`Scorer.against`, where a
model restricts its operator to those columns) and then called per chunk of users.
:class:`InteractionScorer` is the common case: scores that are a function of the users'
training rows ``X[users]`` (a SciPy CSR block), computed on the CPU in float64.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    import scipy.sparse as sp

__all__ = ["InteractionScorer", "Scorer", "interaction_matrix", "ranking_inputs"]

BlockScores = Callable[[Tensor], Tensor]
"""``users [B] -> [B, N]`` scores against the item list a :class:`Scorer` was prepared for."""


class Scorer(ABC):
    """Scores of users against items, computed block by block.

    Attributes:
        num_users: Users it can score (global ids ``0 .. num_users - 1``).
        num_items: Items it can score (global ids ``0 .. num_items - 1``).
        device: Where the blocks it returns live.
        dtype: Their dtype.
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float64,
    ) -> None:
        self.num_users = int(num_users)
        self.num_items = int(num_items)
        self.device = torch.device(device)
        self.dtype = dtype

    @abstractmethod
    def against(self, items: Tensor) -> BlockScores:
        """Prepare to rank against ``items`` (``[N]`` distinct global ids, any order).

        Returns:
            A function of ``users [B]`` (global ids) returning their ``[B, N]`` scores,
            column ``j`` for ``items[j]``, on :attr:`device` in :attr:`dtype`.
        """

    def matrix(self, users: Tensor, items: Tensor) -> Tensor:
        """``[B, N]`` scores of every user of ``users`` with every item of ``items``."""
        return self.against(items)(users)

    def pairs(self, users: Tensor, items: Tensor) -> Tensor:
        """Scores of ``users[b]`` with ``items[b]`` (``[B]``) or ``items[b, :]`` (``[B, K]``)."""
        distinct, inverse = torch.unique(items, return_inverse=True)
        block = self.against(distinct)(users)
        picked = block.gather(1, inverse.reshape(items.size(0), -1).to(block.device))
        return picked.reshape(items.shape)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.num_users} users, {self.num_items} items)"


def ranking_inputs(out: tuple[Tensor, Tensor] | Scorer) -> tuple[Tensor | Scorer, Tensor | None]:
    """A model's ``forward()`` output as the evaluator's ``(user_emb, item_emb)`` arguments.

    Embedding tables pass through; a :class:`Scorer` becomes ``(scorer, None)``.
    """
    if isinstance(out, Scorer):
        return out, None
    user_emb, item_emb = out
    return user_emb, item_emb


def interaction_matrix(
    users: Tensor | np.ndarray, items: Tensor | np.ndarray, num_users: int, num_items: int
) -> sp.csr_matrix:
    """The binary ``[num_users, num_items]`` float64 CSR matrix of the pairs (a repeat counts once).

    Args:
        users: ``[E]`` user id of every interaction.
        items: ``[E]`` item id of every interaction.
        num_users: Rows.
        num_items: Columns.
    """
    import scipy.sparse as sp  # here: importing the evaluator should not load SciPy

    rows = np.asarray(torch.as_tensor(users).cpu(), dtype=np.int64)
    cols = np.asarray(torch.as_tensor(items).cpu(), dtype=np.int64)
    if rows.shape != cols.shape or rows.ndim != 1:
        raise ValueError(
            f"users and items must be 1-D and equally long, got {rows.shape} and {cols.shape}"
        )
    if rows.size and (
        rows.min() < 0 or rows.max() >= num_users or cols.min() < 0 or cols.max() >= num_items
    ):
        raise ValueError(
            f"interaction ids out of range: users must be in [0, {num_users}) and items in "
            f"[0, {num_items})"
        )
    matrix = sp.csr_matrix(
        (np.ones(rows.size), (rows, cols)), shape=(num_users, num_items), dtype=np.float64
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


ColumnScores = Callable[["sp.csr_matrix"], np.ndarray]
"""``X[users]`` (CSR ``[B, num_items]``) -> dense ``[B, N]`` scores against fixed columns."""


class InteractionScorer(Scorer):
    r"""Scores that are a function of the users' training rows: :math:`f(X_{users})`.

    Args:
        interactions: The binary ``[num_users, n]`` training matrix :math:`X`
            (:func:`interaction_matrix`), over every item or the model's subset of them.
        columns: Given the candidate ids (global, a NumPy array), the function that turns
            a CSR block of rows of ``interactions`` into their dense ``[B, N]`` float64
            scores; it may restrict the model's operator to those columns once.
        num_items: Items of the catalogue (default: the columns of ``interactions``).
    """

    def __init__(
        self,
        interactions: sp.csr_matrix,
        columns: Callable[[np.ndarray], ColumnScores],
        num_items: int | None = None,
    ) -> None:
        num_users, n = interactions.shape
        super().__init__(num_users, n if num_items is None else num_items)
        self.interactions = interactions
        self._columns = columns

    def against(self, items: Tensor) -> BlockScores:
        score_rows = self._columns(np.asarray(items.cpu(), dtype=np.int64))

        def block(users: Tensor) -> Tensor:
            rows = self.interactions[np.asarray(users.cpu(), dtype=np.int64)]
            return torch.from_numpy(np.ascontiguousarray(score_rows(rows), dtype=np.float64))

        return block
