r"""The sampled ranking protocol: each held-out positive against a few drawn negatives.

Every (user, truth item) pair is ranked against ``N`` negatives drawn uniformly, with
replacement, from the candidates that are neither in the user's truth nor in its exclude
set (DisenCDR / CDRIB / UniCDR style, ``N = 999``). Negatives come from a
:class:`torch.Generator` seeded from ``(seed, block)`` for fixed blocks of pairs, so every
call draws the same negatives whatever the user chunking.

**Ties.** With ``g`` negatives scoring strictly higher than the positive and ``q`` scoring
the same, the positive sits uniformly at random at one of the 0-based positions
``g .. g + q`` (a tied block of ``q + 1`` items holding one truth item), and each metric is
its exact expectation over that position. With :math:`D_r = \sum_{j < r} 1 / \log_2(j + 2)`:

.. math::
    \text{HR@}K = \frac{\max(\min(g + q + 1, K) - g, 0)}{q + 1}, \qquad
    \text{NDCG@}K = \frac{D_{\min(g + q + 1, K)} - D_{\min(g, K)}}{q + 1}.

Without ties (``q = 0``) these are ``[rank <= K]`` and ``[rank <= K] / log2(rank + 1)`` with
``rank = g + 1``. A constant-score model gets ``HR@K = K / (N + 1)`` exactly. A positive
scoring ``-inf`` (masked, e.g. a held-out item that is also excluded) scores 0. Values are
averaged over the user's pairs, then over users. The table :data:`SAMPLED_METRICS` maps each
name to its function ``(greater, tied, k) -> Tensor``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

__all__ = ["SAMPLED_METRICS", "SAMPLED_NAMES", "NegativeSampler", "sampled_hr", "sampled_ndcg"]

_DTYPE = torch.float64


def _cum_discount(upto: Tensor) -> Tensor:
    """``D_r = sum_{j < r} 1 / log2(j + 2)`` for an integer tensor ``r >= 0``."""
    width = int(upto.max()) if upto.numel() else 0
    discount = 1.0 / torch.arange(2, width + 2, dtype=_DTYPE, device=upto.device).log2()
    table = torch.cat([discount.new_zeros(1), discount.cumsum(0)])
    return table[upto]


def sampled_hr(greater: Tensor, tied: Tensor, k: int) -> Tensor:
    """Expected hit rate@k of a positive with ``greater`` / ``tied`` negatives above / level."""
    inside = (torch.clamp(greater + tied + 1, max=k) - greater).clamp_(min=0)
    return inside.to(_DTYPE) / (tied + 1).to(_DTYPE)


def sampled_ndcg(greater: Tensor, tied: Tensor, k: int) -> Tensor:
    """Expected NDCG@k (one relevant item: DCG) of such a positive."""
    hi = torch.clamp(greater + tied + 1, max=k)
    lo = torch.clamp(greater, max=k)
    return (_cum_discount(hi) - _cum_discount(lo)) / (tied + 1).to(_DTYPE)


SAMPLED_METRICS: dict[str, Callable[[Tensor, Tensor, int], Tensor]] = {
    "sampled_hr": sampled_hr,
    "sampled_ndcg": sampled_ndcg,
}
"""The sampled metric table: name -> ``(greater, tied, k) -> Tensor[pairs]``."""

SAMPLED_NAMES = tuple(SAMPLED_METRICS)


class NegativeSampler:
    """Deterministic uniform negatives per (user, truth item) pair, drawn in blocks.

    Pairs are ordered by (row, local item). Block ``b`` holds pairs
    ``[b * S, (b + 1) * S)`` and is drawn with a generator seeded from
    ``(seed, b)``, so negatives do not depend on how users are chunked. A draw is
    exact (no rejection): with the user's forbidden positions ``f_0 < f_1 < ...``
    (truth and exclude), the ``r``-th allowed position is
    ``r + #{j : f_j - j <= r}``, found with one ``searchsorted``.

    Args:
        users: ``[n]`` global user ids (rows), for error messages.
        num_candidates: Number ``m`` of candidate items.
        truth_keys: Sorted flat keys ``row * m + col`` of the truth pairs.
        excl_keys: Flat keys of the masked pairs.
        num_negatives: Negatives per pair ``N``.
        ks: Cut-offs of the sampled metrics.
        seed: Seed of the draws.
    """

    def __init__(
        self,
        users: Tensor,
        num_candidates: int,
        truth_keys: Tensor,
        excl_keys: Tensor,
        num_negatives: int,
        ks: tuple[int, ...],
        seed: int,
    ) -> None:
        m = num_candidates
        n = users.numel()
        self.m = m
        self.num_negatives = num_negatives
        self.ks = ks
        self.seed = seed
        self.block = max(1, 2**20 // self.num_negatives)
        self.pair_rows = torch.div(truth_keys, m, rounding_mode="floor")
        self.pair_cols = truth_keys - self.pair_rows * m
        forbidden = torch.cat([truth_keys, excl_keys]).numpy()
        forbidden = np.sort(forbidden)
        if forbidden.size > 1:
            forbidden = forbidden[np.concatenate(([True], forbidden[1:] != forbidden[:-1]))]
        forbidden = torch.from_numpy(forbidden)
        f_rows = torch.div(forbidden, m, rounding_mode="floor")
        f_ptr = torch.zeros(n + 1, dtype=torch.long)
        torch.cumsum(torch.bincount(f_rows, minlength=n), 0, out=f_ptr[1:])
        self.allowed = m - f_ptr.diff()
        if bool((self.allowed == 0).any()):
            row = int((self.allowed == 0).nonzero()[0])
            raise ValueError(
                f"user {int(users[row])} has no candidate outside its truth and exclude "
                "sets to sample negatives from"
            )
        within = torch.arange(forbidden.numel()) - f_ptr[f_rows]
        self.adjusted_keys = forbidden - within  # row * m + (f_j - j), sorted
        self.f_ptr = f_ptr
        self._cached: tuple[int, Tensor] | None = None

    def _draw(self, b: int) -> Tensor:
        """Local candidate positions ``[pairs in block b, num_negatives]``."""
        if self._cached is not None and self._cached[0] == b:
            return self._cached[1]
        lo = b * self.block
        rows = self.pair_rows[lo : lo + self.block]
        state = np.random.SeedSequence([self.seed, b]).generate_state(1, dtype=np.uint64)[0]
        gen = torch.Generator().manual_seed(int(state))
        uniform = torch.rand(rows.numel(), self.num_negatives, dtype=torch.float64, generator=gen)
        allowed = self.allowed[rows].unsqueeze(1)
        r = (uniform * allowed).long().clamp_(max=allowed - 1)
        # r + #{j : f_j - j <= r}: count this row's adjusted keys up to row * m + r.
        row_base = rows.unsqueeze(1) * self.m
        count = torch.searchsorted(self.adjusted_keys, row_base + r, right=True)
        negatives = r.add_(count).sub_(self.f_ptr[rows].unsqueeze(1))
        self._cached = (b, negatives)
        return negatives

    def accumulate(
        self, flat_scores: Tensor, start: int, p0: int, p1: int, sums: dict[str, Tensor]
    ) -> None:
        """Adds the per-pair metrics of pairs ``[p0, p1)`` (rows from ``start``) to ``sums``.

        ``flat_scores`` is the flattened, masked ``[rows, m]`` score block of rows from
        ``start``; ``sums`` maps ``"<name>@<k>"`` to ``[n]`` float64 per-user sums.
        """
        device = flat_scores.device
        for b in range(p0 // self.block, (p1 - 1) // self.block + 1):
            lo, hi = max(p0, b * self.block), min(p1, (b + 1) * self.block)
            negatives = self._draw(b)[lo - b * self.block : hi - b * self.block].to(device)
            rows = self.pair_rows[lo:hi].to(device)
            base = (rows - start) * self.m
            positive = flat_scores[base + self.pair_cols[lo:hi].to(device)]
            negative = flat_scores[base.unsqueeze(1) + negatives]
            greater = (negative > positive.unsqueeze(1)).sum(1)
            tied = (negative == positive.unsqueeze(1)).sum(1)
            valid = positive != float("-inf")
            for name, fn in SAMPLED_METRICS.items():
                for k in self.ks:
                    value = torch.where(valid, fn(greater, tied, k), 0.0)
                    sums[f"{name}@{k}"].index_add_(0, rows, value)
