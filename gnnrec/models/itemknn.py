"""Item-based k-nearest neighbours with a shrunk cosine similarity; nothing to train."""

from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse as sp
from torch import Tensor

from gnnrec.models.base import Recommender
from gnnrec.nn.scoring import InteractionScorer, interaction_matrix

__all__ = ["ItemKNN"]

log = logging.getLogger(__name__)

_BLOCK_ENTRIES = 2**24
"""At most this many co-occurrence entries are computed at once while fitting."""


class ItemKNN(Recommender):
    r"""Item-KNN (Sarwar et al., WWW 2001; Deshpande and Karypis, TOIS 2004).

    The cosine similarity of two items' user sets, shrunk towards 0 for items with
    few interactions, keeps each item's ``k`` nearest neighbours; a user's score of an
    item sums the similarities of the neighbours the user has interacted with:

    .. math::
        s_{ji} = \frac{|\mathcal{U}_j \cap \mathcal{U}_i|}{\sqrt{|\mathcal{U}_j|\,
        |\mathcal{U}_i|} + h}, \qquad
        \hat{y}_{ui} = \sum_{j \in N_k(i)} x_{uj}\, s_{ji}

    with :math:`X` the binary user x item matrix of the training interactions of every
    domain (so a user's source-domain history reaches target items through items
    that share users), :math:`h` the shrinkage, and :math:`N_k(i)` the ``k`` items
    :math:`j \ne i` with the largest :math:`s_{ji} > 0`; equal similarities at the
    ``k``-th place go to the smaller item index, so the neighbourhoods are unique.
    Fitting computes the sparse co-occurrences a block of items at a time (at most
    ``2^24`` entries per block) and stores at most ``k`` similarities per item;
    the evaluator asks for scores a chunk of users at a time
    (:class:`~gnnrec.nn.scoring.Scorer`).

    Args:
        num_users: Number of users.
        num_items: Number of items of every domain.
        train_users: ``[E]`` user of every training interaction.
        train_items: ``[E]`` item of every training interaction.
        k: Neighbours kept per item (``>= 1``).
        shrink: Shrinkage :math:`h` added to the cosine's denominator (``>= 0``).

    Shapes:
        forward: ``() -> Scorer`` of ``[num_users, num_items]`` scores
    """

    trains = False

    def __init__(
        self,
        num_users: int,
        num_items: int,
        train_users: Tensor,
        train_items: Tensor,
        k: int = 100,
        shrink: float = 10.0,
    ) -> None:
        super().__init__()
        if k < 1:
            raise ValueError(f"model.k must be at least 1, got {k}")
        if shrink < 0:
            raise ValueError(f"model.shrink must be >= 0, got {shrink}")
        self.k, self.shrink = int(k), float(shrink)
        t0 = time.perf_counter()
        self.interactions = interaction_matrix(train_users, train_items, num_users, num_items)
        self.neighbours = self._similarities(self.interactions.tocsc())
        self.fit_time_s = time.perf_counter() - t0
        log.info(
            "item-KNN: %d neighbour pairs of %d items in %.1f s",
            self.neighbours.nnz,
            num_items,
            self.fit_time_s,
        )

    def reset_parameters(self) -> None:
        """Nothing to reset: the neighbourhoods are a function of the data."""

    def _similarities(self, x: sp.csc_matrix) -> sp.csc_matrix:
        """``[num_items, num_items]`` CSC matrix ``W[j, i] = s_ji`` for ``j`` in ``N_k(i)``."""
        n = x.shape[1]
        item_deg = np.asarray(x.sum(axis=0)).ravel()
        norms = np.sqrt(item_deg)
        xt = x.T.tocsr()
        rows, cols, vals = [], [], []
        for start, stop in _column_blocks(xt @ np.asarray(x.sum(axis=1)).ravel()):
            pairs = (xt @ x[:, start:stop]).tocoo()  # co-occurrence counts, sparse [n, b]
            r, c = pairs.row.astype(np.int64), pairs.col.astype(np.int64)
            other = r != c + start  # no self-neighbour
            r, c, common = r[other], c[other], pairs.data[other]
            sim = common / (norms[r] * norms[c + start] + self.shrink)
            order = np.lexsort((r, -sim, c))  # by item, most similar first, then index
            r, c, sim = r[order], c[order], sim[order]
            counts = np.bincount(c, minlength=stop - start)
            rank = np.arange(c.size) - (np.cumsum(counts) - counts)[c]
            top = rank < self.k
            rows.append(r[top])
            cols.append(c[top] + start)
            vals.append(sim[top])
        return sp.csc_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
        )

    def forward(self) -> InteractionScorer:
        return InteractionScorer(self.interactions, self._columns)

    def _columns(self, items: np.ndarray):
        weights = self.neighbours[:, items].tocsr()  # [num_items, N]

        def score(rows: sp.csr_matrix) -> np.ndarray:
            return (rows @ weights).toarray()

        return score

    def __repr__(self) -> str:
        users, items = self.interactions.shape
        return f"{type(self).__name__}({users}, {items}, k={self.k}, shrink={self.shrink})"


def _column_blocks(bound: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive item ranges whose co-occurrence entries (at most ``bound``) fit a block."""
    cum = np.cumsum(bound)
    blocks, start = [], 0
    while start < bound.size:
        done = cum[start - 1] if start else 0
        stop = int(np.searchsorted(cum, done + _BLOCK_ENTRIES, side="right"))
        stop = max(stop, start + 1)
        blocks.append((start, stop))
        start = stop
    return blocks
