"""EASE^R: the closed-form item-item regression with a zero diagonal; nothing to train."""

from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack
from torch import Tensor

from gnnrec.models.base import Recommender
from gnnrec.nn.scoring import InteractionScorer, interaction_matrix
from gnnrec.utils.runtime import available_memory

__all__ = ["EASE"]

log = logging.getLogger(__name__)

_GIB = 2**30
_BLOCK_ENTRIES = 2**24
"""Gram-matrix entries built at once (one ``[n, b]`` float64 block, 128 MiB)."""
_MEMORY_SHARE = 0.9
"""The share of the available memory the dense ``n x n`` matrix may take."""


class EASE(Recommender):
    r"""EASE\ :sup:`R` (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019).

    The item-item weights minimise :math:`\|X - XB\|_F^2 + \lambda \|B\|_F^2` subject to
    :math:`\operatorname{diag}(B) = 0`, whose solution is closed-form:

    .. math::
        P = (X^\top X + \lambda I)^{-1}, \qquad
        B = I - P \operatorname{diag}(1 / \operatorname{diag} P)
        \;\; (B_{ij} = -P_{ij} / P_{jj},\; B_{jj} = 0), \qquad
        \hat{y}_u = \mathbf{x}_u B

    with :math:`X` the binary user x item matrix of the training interactions of every
    domain, so a user's source-domain history reaches target items.

    **Memory.** :math:`P` and :math:`B` are dense ``n x n`` float64 matrices over the
    ``n`` fitted items; the Gram matrix is built in column blocks and inverted in place
    (Cholesky, LAPACK ``potrf`` / ``potri``), and :math:`B` overwrites :math:`P`, so the
    fit needs about :math:`8 n^2` bytes: 12.5 GiB for Gowalla's 40,981 items, 56 GiB for
    the 86,423 items of ``amazon_bcm``. When that exceeds 90% of the available memory the
    constructor fails, naming the item count and ``model.max_items``. ``max_items``
    fits on every target-domain item plus the source items with the most training
    interactions (equal counts: smaller index first); interactions with the other items
    are dropped, and those items score 0. ``docs/extending.md`` gives measured times.

    Args:
        num_users: Number of users.
        num_items: Number of items of every domain.
        train_users: ``[E]`` user of every training interaction.
        train_items: ``[E]`` item of every training interaction.
        item_domain: ``[num_items]`` domain of every item.
        target_domain: The evaluated domain (its items are always fitted).
        reg: The L2 weight :math:`\lambda` (``> 0``).
        max_items: Fit on at most this many items (``None``: all).

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
        item_domain: Tensor,
        target_domain: int,
        reg: float = 500.0,
        max_items: int | None = None,
    ) -> None:
        super().__init__()
        if reg <= 0:
            raise ValueError(f"model.reg must be > 0 (the inverse needs it), got {reg}")
        if max_items is not None and max_items < 1:
            raise ValueError(f"model.max_items must be at least 1 or null, got {max_items}")
        self.reg, self.max_items, self.num_items = float(reg), max_items, int(num_items)
        x = interaction_matrix(train_users, train_items, num_users, num_items)
        self.items = _fitted_items(x, np.asarray(item_domain), target_domain, max_items)
        _check_memory(self.items.size, num_items, max_items)
        t0 = time.perf_counter()
        self.interactions = x[:, self.items].tocsr()
        self.weights = _ease_weights(self.interactions.tocsc(), self.reg)
        self.fit_time_s = time.perf_counter() - t0
        self.position = np.full(num_items, -1, dtype=np.int64)
        self.position[self.items] = np.arange(self.items.size)
        log.info(
            "EASE: %d of %d items fitted in %.1f s", self.items.size, num_items, self.fit_time_s
        )

    def reset_parameters(self) -> None:
        """Nothing to reset: the weights are a function of the data."""

    def forward(self) -> InteractionScorer:
        return InteractionScorer(self.interactions, self._columns, num_items=self.num_items)

    def _columns(self, items: np.ndarray):
        pos = self.position[items]
        fitted = pos >= 0
        whole = pos.size == self.items.size and np.array_equal(pos, np.arange(pos.size))

        def score(rows: sp.csr_matrix) -> np.ndarray:
            full = rows @ self.weights  # [B, n] dense
            if whole:
                return full
            out = np.zeros((rows.shape[0], items.size))
            out[:, fitted] = full[:, pos[fitted]]
            return out

        return score

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.interactions.shape[0]}, {self.num_items}, "
            f"reg={self.reg}, fitted_items={self.items.size})"
        )


def _fitted_items(
    x: sp.csr_matrix, item_domain: np.ndarray, target: int, max_items: int | None
) -> np.ndarray:
    """Sorted ids of the fitted items: all, or the target's plus the most-interacted others."""
    n = x.shape[1]
    if max_items is None or n <= max_items:
        return np.arange(n)
    is_target = item_domain == target
    num_target = int(is_target.sum())
    if num_target > max_items:
        raise ValueError(
            f"model=ease: model.max_items={max_items} is below the {num_target:,} items of "
            "the target domain, which are always fitted; raise model.max_items"
        )
    counts = np.asarray(x.sum(axis=0)).ravel()
    others = np.flatnonzero(~is_target)
    order = np.lexsort((others, -counts[others]))  # most interactions first, then index
    keep = others[order[: max_items - num_target]]
    return np.sort(np.concatenate([np.flatnonzero(is_target), keep]))


def _check_memory(n: int, num_items: int, max_items: int | None) -> None:
    """Refuse a fit whose dense ``n x n`` matrix would not fit in the available memory."""
    need = 8 * n * n
    free = available_memory()
    if free is None or need <= _MEMORY_SHARE * free:
        return
    fits = int(np.sqrt(_MEMORY_SHARE * free / 8))
    if n < num_items:
        which = f"the {n:,} fitted items (model.max_items={max_items})"
    else:
        which = f"the {num_items:,} items of this data"
    raise ValueError(
        f"model=ease: {which} need a dense {n:,} x {n:,} float64 matrix "
        f"({need / _GIB:.1f} GiB), more than {_MEMORY_SHARE:.0%} of the "
        f"{free / _GIB:.1f} GiB available; set model.max_items={fits} or lower (every "
        "target-domain item plus the most-interacted source items), or use model=itemknn "
        "or model=gfcf, which need no items x items matrix"
    )


def _ease_weights(x: sp.csc_matrix, reg: float) -> np.ndarray:
    """``B = I - P diag(1/diag P)``, ``P = (X^T X + reg I)^-1``, dense ``[n, n]``, in place."""
    n = x.shape[1]
    gram = np.empty((n, n))
    xt = x.T.tocsr()
    block = max(1, _BLOCK_ENTRIES // max(n, 1))
    for start in range(0, n, block):
        stop = min(start + block, n)
        gram[:, start:stop] = (xt @ x[:, start:stop]).toarray()
    gram.flat[:: n + 1] += reg
    # LAPACK reads the C-ordered array as its transpose, the same symmetric matrix: its
    # upper triangle is our lower one. potrf then potri leave P there, in place.
    factor, info = lapack.dpotrf(gram.T, lower=0, clean=0, overwrite_a=1)
    if info == 0:
        factor, info = lapack.dpotri(factor, lower=0, overwrite_c=1)
    if info != 0:
        raise ValueError(f"model=ease: X^T X + reg I is not positive definite (LAPACK {info})")
    if not np.shares_memory(factor, gram):  # a copy (not expected): take its result
        gram[...] = factor.T
    block = max(1, _BLOCK_ENTRIES // max(n, 1))
    for start in range(0, n, block):  # mirror the lower triangle, a row strip at a time
        stop = min(start + block, n)
        diag = gram[start:stop, start:stop]
        diag[...] = np.tril(diag) + np.tril(diag, -1).T
        gram[start:stop, stop:] = gram[stop:, start:stop].T
    diagonal = gram.diagonal().copy()
    gram /= -diagonal[None, :]
    gram.flat[:: n + 1] = 0.0
    return gram
