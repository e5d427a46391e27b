r"""Top-K ranking metrics as one table ``name -> function``, with ties at their expected cost.

A metric is one function ``(ranking: Ranking, k: int) -> Tensor[n]`` in :data:`METRICS`;
adding a metric is adding one function there. A :class:`Ranking` holds, for ``n`` users and
the first ``W`` positions of their ranked lists:

* ``expected_hits[u, r]`` :math:`= e_r`, the probability that position ``r`` (0-based)
  holds a ground-truth item;
* ``first_hit[u, r]`` :math:`= f_r`, the probability that the first ground-truth item is at
  position ``r``;
* ``num_truth[u]`` :math:`= |T|`, the number of ground-truth items (masked ones included).

**Ties.** Items with equal scores are ordered uniformly at random, and every metric is its
*exact expectation* over that order (neither optimistic nor pessimistic). A tied block is a
run of ``t`` items with equal score starting at position ``a``, ``h`` of them ground truth.
Inside the block every position is a ground-truth item with probability ``h / t``, so
:math:`e_r = h / t` for :math:`a \le r < a + t`. Blocks are independent, and given no
ground-truth item in the block's first ``x`` positions, the next one is one with probability
``h / (t - x)``; hence, with :math:`q_r = (t - h - x) / (t - x)` at offset
:math:`x = r - a` and :math:`S_r = \prod_{j \le r} q_j` (the probability of no hit in
positions ``0..r``), :math:`f_r = S_{r-1} - S_r` (:math:`S_{-1} = 1`). This is
:math:`P(X > x) = \binom{t-h}{x} / \binom{t}{x}` for the first hit's offset inside the first
block that holds one. Without ties :math:`e` is the 0/1 hit matrix and :math:`f` the one-hot
first hit, so the definitions below reduce to the usual ones.

Definitions, for cut-off :math:`K` (positions :math:`r \ge W` count as misses):

.. math::
    \text{Recall@}K = \frac{\sum_{r < K} e_r}{|T|}, \qquad
    \text{Precision@}K = \frac{\sum_{r < K} e_r}{K}, \qquad
    \text{NDCG@}K = \frac{\sum_{r < K} e_r / \log_2(r + 2)}
    {\sum_{r < \min(|T|, K)} 1 / \log_2(r + 2)},

    \text{Hit@}K = \sum_{r < K} f_r, \qquad
    \text{MRR@}K = \sum_{r < K} \frac{f_r}{r + 1}.

Recall, Precision and DCG are linear in the hits, so plugging in :math:`e` gives their exact
expectation; Hit and MRR depend on the first hit only, hence :math:`f`. NDCG's ideal DCG
does not depend on the order, so NDCG is the expected DCG over it. Recall divides by
:math:`|T|` as in the LightGCN paper and code (not by :math:`\min(K, |T|)`). For tie-free
scores these coincide with the unweighted ``torch_geometric.metrics.LinkPred*`` metrics,
and NDCG with ties coincides with ``sklearn.metrics.ndcg_score(..., ignore_ties=False)``
(``tests/evaluate`` checks both).

A user with fewer than ``K`` rankable candidates gets misses at the missing positions;
Precision@K still divides by ``K``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["METRICS", "METRIC_NAMES", "Ranking", "ranking_metrics"]

_DTYPE = torch.float64


@dataclass(frozen=True)
class Ranking:
    """What the metrics need from ranked lists (float64, one row per user).

    Attributes:
        expected_hits: ``[n, W]`` probability that position ``r`` holds a truth item.
        first_hit: ``[n, W]`` probability that the first truth item is at position ``r``.
        num_truth: ``[n]`` number of ground-truth items of every user (``> 0``).
    """

    expected_hits: Tensor
    first_hit: Tensor
    num_truth: Tensor

    def __post_init__(self) -> None:
        e, f, t = self.expected_hits, self.first_hit, self.num_truth
        if e.dim() != 2 or e.shape != f.shape or t.dim() != 1 or t.size(0) != e.size(0):
            raise ValueError(
                f"expected expected_hits and first_hit [n, W] and num_truth [n], got "
                f"{tuple(e.shape)}, {tuple(f.shape)} and {tuple(t.shape)}"
            )
        if t.numel() and int(t.min()) <= 0:
            raise ValueError("every user needs at least one ground-truth item (num_truth > 0)")

    @property
    def width(self) -> int:
        """Number of ranked positions ``W``."""
        return self.expected_hits.size(1)

    @classmethod
    def from_hits(cls, hits: Tensor, num_truth: Tensor) -> Ranking:
        """A tie-free ranking: ``hits[u, r]`` is whether position ``r`` holds a truth item."""
        if hits.dim() != 2:
            raise ValueError(f"expected hits [n, W], got {tuple(hits.shape)}")
        hits_f = hits.to(_DTYPE)
        survive = torch.cumprod(1.0 - hits_f, dim=1)
        return cls(hits_f, _first_hit(survive), num_truth)

    @classmethod
    def from_top(
        cls,
        values: Tensor,
        hits: Tensor,
        num_truth: Tensor,
        tail_size: Tensor | None = None,
        tail_truth: Tensor | None = None,
    ) -> Ranking:
        """The expected ranking of a top list whose equal scores are in random order.

        Args:
            values: ``[n, W]`` scores of the top ``W`` items, non-increasing along each row;
                ``-inf`` marks a masked (or missing) item, which is never a hit.
            hits: ``[n, W]`` boolean, whether the item at each position is ground truth.
            num_truth: ``[n]`` number of ground-truth items of every user.
            tail_size: ``[n]`` number of items *outside* the top list whose score equals
                ``values[:, -1]`` (they belong to the last tied block); ``None``: zero.
            tail_truth: ``[n]`` how many of those are ground-truth items.

        Returns:
            The :class:`Ranking` whose entries are exact expectations over random tie order.
        """
        if values.dim() != 2 or values.shape != hits.shape:
            raise ValueError(
                f"expected values and hits of one shape [n, W], got {tuple(values.shape)} "
                f"and {tuple(hits.shape)}"
            )
        n, width = values.shape
        device = values.device
        hits_f = (hits & (values != float("-inf"))).to(_DTYPE)
        if width == 0:
            return cls(hits_f, hits_f.clone(), num_truth)
        # Block ids: a new block starts wherever the score changes.
        new_block = torch.ones(n, width, dtype=torch.bool, device=device)
        new_block[:, 1:] = values[:, 1:] != values[:, :-1]
        block = new_block.cumsum(1) - 1
        size = torch.zeros(n, width, dtype=_DTYPE, device=device)
        size.scatter_add_(1, block, torch.ones_like(hits_f))
        truth = torch.zeros(n, width, dtype=_DTYPE, device=device).scatter_add_(1, block, hits_f)
        if tail_size is not None:
            last = block[:, -1:]
            size.scatter_add_(1, last, tail_size.to(_DTYPE).unsqueeze(1))
            if tail_truth is not None:
                truth.scatter_add_(1, last, tail_truth.to(_DTYPE).unsqueeze(1))
        t = size.gather(1, block)
        h = truth.gather(1, block)
        positions = torch.arange(width, device=device).expand(n, width)
        start = torch.where(new_block, positions, 0).cummax(1).values
        x = (positions - start).to(_DTYPE)
        survive = torch.cumprod(((t - h - x) / (t - x)).clamp_(min=0.0), dim=1)
        return cls(h / t, _first_hit(survive), num_truth)


def _first_hit(survive: Tensor) -> Tensor:
    """``f_r = S_{r-1} - S_r`` from ``S_r`` = P(no hit in positions ``0..r``)."""
    before = torch.ones_like(survive)
    before[:, 1:] = survive[:, :-1]
    return before - survive


def _discount(width: int, device: torch.device) -> Tensor:
    return 1.0 / torch.arange(2, width + 2, dtype=_DTYPE, device=device).log2()


def recall(ranking: Ranking, k: int) -> Tensor:
    """Expected share of the user's truth items in the top ``k``."""
    return ranking.expected_hits[:, :k].sum(1) / ranking.num_truth.to(_DTYPE)


def precision(ranking: Ranking, k: int) -> Tensor:
    """Expected share of the top ``k`` positions holding a truth item."""
    return ranking.expected_hits[:, :k].sum(1) / k


def ndcg(ranking: Ranking, k: int) -> Tensor:
    """Expected DCG@k over the ideal DCG of ``min(|T|, k)`` hits (binary relevance)."""
    e = ranking.expected_hits[:, :k]
    discount = _discount(k, e.device)
    ideal = torch.cat([discount.new_zeros(1), discount.cumsum(0)])
    return (e * discount[: e.size(1)]).sum(1) / ideal[ranking.num_truth.clamp(max=k)]


def hit(ranking: Ranking, k: int) -> Tensor:
    """Probability of at least one truth item in the top ``k``."""
    return ranking.first_hit[:, :k].sum(1)


def mrr(ranking: Ranking, k: int) -> Tensor:
    """Expected reciprocal rank of the first truth item, ``0`` beyond ``k``."""
    f = ranking.first_hit[:, :k]
    return (f / torch.arange(1, f.size(1) + 1, dtype=_DTYPE, device=f.device)).sum(1)


METRICS: dict[str, Callable[[Ranking, int], Tensor]] = {
    "recall": recall,
    "ndcg": ndcg,
    "hit": hit,
    "mrr": mrr,
    "precision": precision,
}
"""The metric table: name -> ``(ranking, k) -> Tensor[n]``."""

METRIC_NAMES = tuple(METRICS)


def ranking_metrics(
    ranking: Ranking,
    ks: Sequence[int],
    names: Sequence[str] = METRIC_NAMES,
) -> dict[str, Tensor]:
    """Per-user values of the named metrics of :data:`METRICS` at every cut-off.

    Args:
        ranking: Expected hits, first-hit distribution and truth counts.
        ks: Cut-offs ``K`` (positive integers).
        names: Metric names, keys of :data:`METRICS`.

    Returns:
        ``{"<name>@<K>": Tensor[n]}`` in float64, one entry per name and cut-off.

    Raises:
        ValueError: For an unknown metric name or a non-positive cut-off.
    """
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {list(METRICS)}")
    if any(int(k) <= 0 for k in ks):
        raise ValueError(f"every cut-off K must be a positive integer, got ks={list(ks)}")
    return {f"{name}@{int(k)}": METRICS[name](ranking, int(k)) for k in ks for name in names}
