r"""Top-K ranking metrics computed from a hit matrix.

All functions are pure tensor code: they take the boolean matrix
``hits[u, r]`` (the item ranked ``r + 1`` for user ``u`` is a ground-truth item)
and the number of ground-truth items of every user, and return one value per user.
Averaging over users (and groups of users) is left to the caller.

Definitions, for a user with ground-truth set :math:`T` (:math:`|T| > 0`) and
:math:`h_K = \sum_{r < K} \text{hits}_r`:

.. math::
    \text{Recall@}K = \frac{h_K}{|T|}, \qquad
    \text{Precision@}K = \frac{h_K}{K}, \qquad
    \text{HitRate@}K = [h_K > 0],

    \text{NDCG@}K = \frac{\sum_{r < K} \text{hits}_r / \log_2(r + 2)}
    {\sum_{r < \min(|T|, K)} 1 / \log_2(r + 2)}, \qquad
    \text{MRR@}K = \frac{1}{\text{rank of the first hit}} \text{ if it is } \le K
    \text{ else } 0.

Recall divides by :math:`|T|` as in the LightGCN paper and code (not by
:math:`\min(K, |T|)` as some toolkits do). These definitions coincide with the
unweighted ``torch_geometric.metrics.LinkPred*`` metrics (``tests/evaluate``
checks it).

If ``hits`` has fewer than ``K`` columns (fewer candidates than ``K``), the missing
positions count as misses; Precision@K still divides by ``K``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["METRIC_NAMES", "ranking_metrics"]

METRIC_NAMES = ("recall", "ndcg", "hit", "mrr", "precision")


def ranking_metrics(
    hits: Tensor,
    num_truth: Tensor,
    ks: Sequence[int],
    names: Sequence[str] = METRIC_NAMES,
) -> dict[str, Tensor]:
    """Per-user top-K metrics from a hit matrix.

    Args:
        hits: ``[n, K_max]`` boolean; ``hits[u, r]`` is ``True`` when the item
            ranked ``r + 1`` for user ``u`` is one of ``u``'s ground-truth items.
        num_truth: ``[n]`` number of ground-truth items of every user (``> 0``).
        ks: Cut-offs ``K`` (positive integers).
        names: Metrics to compute, any of ``"recall"``, ``"ndcg"``, ``"hit"``,
            ``"mrr"``, ``"precision"``.

    Returns:
        ``{"<name>@<K>": Tensor[n]}`` in float64, one entry per name and cut-off.

    Raises:
        ValueError: For an unknown metric name, a non-positive cut-off or
            mismatched shapes, or a user without ground-truth items.
    """
    unknown = [name for name in names if name not in METRIC_NAMES]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {list(METRIC_NAMES)}")
    if any(int(k) <= 0 for k in ks):
        raise ValueError(f"every cut-off K must be a positive integer, got ks={list(ks)}")
    if hits.dim() != 2 or num_truth.dim() != 1 or hits.size(0) != num_truth.size(0):
        raise ValueError(
            f"expected hits [n, K_max] and num_truth [n], got {tuple(hits.shape)} and "
            f"{tuple(num_truth.shape)}"
        )
    if num_truth.numel() and int(num_truth.min()) <= 0:
        raise ValueError("every user needs at least one ground-truth item (num_truth > 0)")

    n, width = hits.shape
    device = hits.device
    dtype = torch.float64
    hits_f = hits.to(dtype)
    num_truth_f = num_truth.to(dtype)
    # Column 0 of each cumulative table is the value at K = 0, so K indexes it directly.
    zero = torch.zeros(n, 1, dtype=dtype, device=device)
    cum_hits = torch.cat([zero, hits_f.cumsum(1)], dim=1)
    out: dict[str, Tensor] = {}

    if "ndcg" in names:
        k_top = max(max(int(k) for k in ks), width)
        discount = 1.0 / torch.arange(2, k_top + 2, dtype=dtype, device=device).log2()
        cum_dcg = torch.cat([zero, (hits_f * discount[:width]).cumsum(1)], dim=1)
        ideal = torch.cat([discount.new_zeros(1), discount.cumsum(0)])
    if "mrr" in names:
        any_hit = cum_hits[:, -1] > 0
        if width > 0:
            first = hits.to(torch.uint8).argmax(dim=1)  # first maximal index = first hit
        else:
            first = torch.zeros(n, dtype=torch.long, device=device)
        reciprocal = torch.where(any_hit, 1.0 / (first.to(dtype) + 1.0), 0.0)

    for k in ks:
        k = int(k)
        col = min(k, width)
        h = cum_hits[:, col]
        for name in names:
            if name == "recall":
                value = h / num_truth_f
            elif name == "precision":
                value = h / k
            elif name == "hit":
                value = (h > 0).to(dtype)
            elif name == "ndcg":
                value = cum_dcg[:, col] / ideal[num_truth.clamp(max=k)]
            else:
                value = torch.where(first < k, reciprocal, 0.0)
            out[f"{name}@{k}"] = value
    return out
