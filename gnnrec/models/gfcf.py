"""GF-CF: a linear item-item graph filter plus the ideal low-pass filter; nothing to train."""

from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds
from torch import Tensor

from gnnrec.models.base import Recommender
from gnnrec.nn.scoring import InteractionScorer, interaction_matrix

__all__ = ["GFCF"]

log = logging.getLogger(__name__)

_RANK_TOL = 1e-10
"""Singular values below this fraction of the largest count as zero (rank below ``k``)."""


class GFCF(Recommender):
    r"""GF-CF (Shen et al., "How Powerful is Graph Convolution for Recommendation?",
    CIKM 2021): the normalised item-item filter plus an ideal low-pass filter.

    .. math::
        \tilde{R} = D_U^{-1/2} R\, D_I^{-1/2}, \qquad
        \hat{y}_u = \mathbf{r}_u \tilde{R}^\top \tilde{R}
            + \alpha\, \mathbf{r}_u D_I^{-1/2} V_k V_k^\top D_I^{1/2}

    with :math:`R` the binary user x item matrix of the training interactions of every
    domain (so a user's source-domain history reaches target items), :math:`D_U, D_I`
    the user and item degrees (a node of degree 0 gets 0 in every power), and
    :math:`V_k` the right singular vectors of the ``k`` largest singular values of
    :math:`\tilde{R}`: the eigenvectors of :math:`\tilde{R}^\top\tilde{R}` that pass the
    ideal low-pass filter. The paper's settings: ``k = 256``, ``alpha = 0.3`` on Gowalla
    and Yelp2018, ``alpha = 0`` (the linear filter alone) on Amazon-Book.

    The top-``k`` SVD is ARPACK's (:func:`scipy.sparse.linalg.svds`, start vector from
    ``seed``), which reproduces the exact subspace (to 1e-15 where a dense SVD can
    check it; the paper used SVDLIBC's ``sparsesvd``); the randomized
    :func:`torch.svd_lowrank` was off by 1e-2 at equal cost, so it is not offered.
    Components whose singular value is 0 (data of rank below ``k``) are dropped; when
    ``k`` is not below the smaller side of :math:`R`, a dense SVD is used.

    Scores are computed a chunk of users at a time (:class:`~gnnrec.nn.scoring.Scorer`):
    :math:`(\mathbf{r}_u \tilde{R}^\top)` is a dense ``[chunk, num_users]`` block, its
    product with the candidate columns of :math:`\tilde{R}` and the low-rank term are
    ``[chunk, num_candidates]``; the largest stored operator is ``[num_items, k]``.

    Args:
        num_users: Number of users.
        num_items: Number of items of every domain.
        train_users: ``[E]`` user of every training interaction.
        train_items: ``[E]`` item of every training interaction.
        k: Singular vectors of the ideal low-pass filter (``>= 1``).
        alpha: Weight :math:`\alpha` of the low-pass term (``>= 0``; 0 skips the SVD).
        seed: Seed of ARPACK's start vector.

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
        k: int = 256,
        alpha: float = 0.3,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if k < 1:
            raise ValueError(f"model.k must be at least 1, got {k}")
        if alpha < 0:
            raise ValueError(f"model.alpha must be >= 0, got {alpha}")
        self.k, self.alpha, self.seed = int(k), float(alpha), int(seed)
        t0 = time.perf_counter()
        self.interactions = interaction_matrix(train_users, train_items, num_users, num_items)
        user_deg = np.asarray(self.interactions.sum(axis=1)).ravel()
        item_deg = np.asarray(self.interactions.sum(axis=0)).ravel()
        user_scale = _inverse_sqrt(user_deg)
        item_scale = _inverse_sqrt(item_deg)
        norm = sp.diags(user_scale) @ self.interactions @ sp.diags(item_scale)
        self.norm = norm.tocsr()  # R~ [num_users, num_items]
        self.norm_t = norm.T.tocsr()  # R~^T, for the chunk's r_u R~^T
        self.rank = 0
        if self.alpha > 0:
            v = _top_right_singular_vectors(self.norm, self.k, self.seed)
            self.rank = v.shape[1]
            self.left = item_scale[:, None] * v  # D_I^-1/2 V_k [num_items, rank]
            self.right = (np.sqrt(item_deg)[:, None] * v).T.copy()  # V_k^T D_I^1/2
        self.fit_time_s = time.perf_counter() - t0
        log.info("GF-CF: fitted in %.1f s (rank %d)", self.fit_time_s, self.rank)

    def reset_parameters(self) -> None:
        """Nothing to reset: the filters are a function of the data."""

    def forward(self) -> InteractionScorer:
        return InteractionScorer(self.interactions, self._columns)

    def _columns(self, items: np.ndarray):
        norm_c_t = self.norm[:, items].T.tocsr()  # [N, num_users]
        right_c = self.right[:, items] if self.rank else None

        def score(rows: sp.csr_matrix) -> np.ndarray:
            user_side = (self.norm @ rows.T).toarray()  # (r_u R~^T)^T [num_users, B]
            linear = (norm_c_t @ user_side).T  # [B, N]
            if right_c is None:
                return linear
            out = (rows @ self.left) @ right_c
            out *= self.alpha
            out += linear
            return out

        return score

    def __repr__(self) -> str:
        users, items = self.interactions.shape
        return f"{type(self).__name__}({users}, {items}, k={self.k}, alpha={self.alpha})"


def _inverse_sqrt(degree: np.ndarray) -> np.ndarray:
    out = np.zeros_like(degree, dtype=np.float64)
    np.divide(1.0, np.sqrt(degree), out=out, where=degree > 0)
    return out


def _top_right_singular_vectors(matrix: sp.csr_matrix, k: int, seed: int) -> np.ndarray:
    """``[n, r]`` right singular vectors of the ``r <= k`` largest nonzero singular values."""
    if k < min(matrix.shape) - 1:
        _, s, vt = svds(matrix, k=k, solver="arpack", rng=np.random.default_rng(seed))
    else:
        _, s, vt = np.linalg.svd(matrix.toarray(), full_matrices=False)
    order = np.argsort(-s, kind="stable")[:k]
    s, vt = s[order], vt[order]
    keep = s > _RANK_TOL * (s[0] if s.size else 0.0)
    return np.ascontiguousarray(vt[keep].T)
