"""GF-CF: a linear item-item graph filter plus the ideal low-pass filter; nothing to train."""

from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse as sp
from scipy.linalg import eigh
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import svds
from torch import Tensor

from gnnrec.models.base import Recommender
from gnnrec.nn.scoring import InteractionScorer, interaction_matrix

__all__ = ["GFCF"]

log = logging.getLogger(__name__)

_RANK_TOL = 1e-10
"""Singular values below this fraction of the largest count as zero (rank below ``k``)."""

_GRAM_RANK_TOL = 1e-10
"""Gram eigenvalues (squared singular values) below this fraction of the largest count as
zero: their singular values, below 1e-5 of the largest, carry too few exact digits."""

GRAM_MAX_SIDE = 16_384
"""Largest smaller side that ``solver="auto"`` hands to the Gram solver (a 2 GiB matrix)."""

SOLVERS = ("auto", "arpack", "gram")


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

    The top-``k`` SVD has two solvers (``solver``):

    * ``"arpack"``: :func:`scipy.sparse.linalg.svds` (start vector from ``seed``; the
      paper used SVDLIBC's ``sparsesvd``). Each vector it returns is exact, but a Krylov
      method misses copies of a repeated singular value, and every connected component
      of the user-item graph gives one singular value 1: on Amazon Movies (105
      components) its top 256 held 67 and 86 of them in two runs, so it was not the
      top-256 subspace (a warning says so). On a connected graph (Gowalla) it
      reproduces the paper. Its cost grows with ``k``: about 67 min for ``k = 1024`` on
      Movies on one thread.
    * ``"gram"``: the top ``k`` eigenpairs of the dense Gram matrix of the smaller side
      (:math:`\tilde{R}\tilde{R}^\top` when users are fewer, then
      :math:`V = \tilde{R}^\top U \Sigma^{-1}`; :math:`\tilde{R}^\top\tilde{R}`
      otherwise) by LAPACK's ``syevr`` (:func:`scipy.linalg.eigh`). Its cost is that of
      the smaller side, ``O(side^3)``, nearly independent of ``k``; it holds a
      ``side x side`` float64 matrix. Squaring the singular values costs precision
      below :math:`10^{-5}\sigma_1`, so those components count as zero here. A dense
      eigensolver returns every copy of a repeated value.
      ``benchmarks/bench_gfcf_svd.py`` measures both on the real data.
    * ``"auto"`` (default): ``"gram"`` when the smaller side is at most
      :data:`GRAM_MAX_SIDE`, ``"arpack"`` otherwise (Gowalla's 29,858 users).

    The randomized :func:`torch.svd_lowrank` was off by 1e-2 at ARPACK's cost, so it is
    not offered. Components whose singular value is 0 (data of rank below ``k``) are
    dropped; when ``k`` is not below the smaller side of :math:`R`, a dense SVD is used.

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
        solver: ``"auto"``, ``"arpack"`` or ``"gram"`` (see above).

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
        solver: str = "auto",
    ) -> None:
        super().__init__()
        if k < 1:
            raise ValueError(f"model.k must be at least 1, got {k}")
        if alpha < 0:
            raise ValueError(f"model.alpha must be >= 0, got {alpha}")
        if solver not in SOLVERS:
            raise ValueError(f"model.solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
        self.k, self.alpha, self.seed = int(k), float(alpha), int(seed)
        if solver == "auto":
            solver = "gram" if min(num_users, num_items) <= GRAM_MAX_SIDE else "arpack"
        self.solver = solver
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
            v = top_right_singular_vectors(self.norm, self.k, self.seed, self.solver)
            self.rank = v.shape[1]
            if self.solver == "arpack":
                _warn_on_missed_components(self.norm, v)
            self.left = item_scale[:, None] * v  # D_I^-1/2 V_k [num_items, rank]
            self.right = (np.sqrt(item_deg)[:, None] * v).T.copy()  # V_k^T D_I^1/2
        self.fit_time_s = time.perf_counter() - t0
        log.info("GF-CF: fitted in %.1f s (rank %d, %s)", self.fit_time_s, self.rank, self.solver)

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
        return (
            f"{type(self).__name__}({users}, {items}, k={self.k}, alpha={self.alpha}, "
            f"solver={self.solver!r})"
        )


def graph_components(matrix: sp.spmatrix) -> int:
    """Connected components that hold an edge, of the bipartite graph of ``matrix``'s rows
    and columns (each gives the normalised matrix one singular value 1)."""
    graph = sp.bmat([[None, matrix], [matrix.T, None]], format="csr")
    _, labels = connected_components(graph, directed=False)
    return int(np.unique(labels[np.diff(graph.indptr) > 0]).size)


def _warn_on_missed_components(norm: sp.csr_matrix, v: np.ndarray) -> None:
    """Warn when ARPACK returned fewer singular values 1 than it should have.

    Every connected component of the user-item graph that has an edge gives the
    normalised matrix one singular value exactly 1, so ``min(k, components)`` of the top
    ``k`` are 1. A Krylov solver finds a repeated singular value only through round-off
    and misses copies of it (on Amazon Movies, 105 components, ARPACK's top 256 held 67
    and 86 in two runs).
    """
    components = graph_components(norm)
    found = int((np.linalg.norm(norm @ v, axis=0) > 1.0 - 1e-9).sum())
    expected = min(components, v.shape[1])
    if found < expected:
        log.warning(
            "GF-CF: ARPACK's top %d singular vectors hold %d singular values 1, the graph's "
            "%d components call for %d; its subspace is not the top %d. "
            "model.solver=gram finds them all.",
            v.shape[1],
            found,
            components,
            expected,
            v.shape[1],
        )


def _inverse_sqrt(degree: np.ndarray) -> np.ndarray:
    out = np.zeros_like(degree, dtype=np.float64)
    np.divide(1.0, np.sqrt(degree), out=out, where=degree > 0)
    return out


def top_right_singular_vectors(
    matrix: sp.csr_matrix, k: int, seed: int = 0, solver: str = "arpack"
) -> np.ndarray:
    """``[n, r]`` right singular vectors of the ``r <= k`` largest nonzero singular values
    of ``matrix``, by ``solver`` (``"arpack"`` or ``"gram"``), largest first."""
    if k >= min(matrix.shape) - 1:
        _, s, vt = np.linalg.svd(matrix.toarray(), full_matrices=False)
    elif solver == "gram":
        return _gram_right_singular_vectors(matrix, k)
    else:
        _, s, vt = svds(matrix, k=k, solver="arpack", rng=np.random.default_rng(seed))
    order = np.argsort(-s, kind="stable")[:k]
    s, vt = s[order], vt[order]
    keep = s > _RANK_TOL * (s[0] if s.size else 0.0)
    return np.ascontiguousarray(vt[keep].T)


def _gram_right_singular_vectors(matrix: sp.csr_matrix, k: int) -> np.ndarray:
    rows, cols = matrix.shape
    wide = rows < cols  # users fewer than items: the rows' Gram matrix is the small one
    gram = (matrix @ matrix.T) if wide else (matrix.T @ matrix)
    side = gram.shape[0]
    values, vectors = eigh(
        gram.toarray(), subset_by_index=[side - k, side - 1], driver="evr", overwrite_a=True
    )
    values, vectors = values[::-1], vectors[:, ::-1]  # largest first
    keep = values > _GRAM_RANK_TOL * max(values[0], 0.0)
    values, vectors = values[keep], vectors[:, keep]
    if not wide:
        return np.ascontiguousarray(vectors)
    # V = R~^T U S^-1: the right singular vectors of the left ones U
    return np.ascontiguousarray((matrix.T @ vectors) / np.sqrt(values))
