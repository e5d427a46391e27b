"""Most-popular baseline: every user gets the items with the most training interactions."""

from __future__ import annotations

import torch
from torch import Tensor

from gnnrec.models.base import Recommender

__all__ = ["Popularity"]


class Popularity(Recommender):
    r"""Popularity ranking: :math:`\hat{y}_{ui} = |\{v : (v, i) \in \mathcal{D}_{train}\}|`.

    Scores are training interaction counts; ranked over the target domain's items this
    is the per-target-domain popularity baseline. It has no trainable parameters.
    Equal counts are ordered by item index (smaller first): a fraction below one is
    added in float64, so rankings are exact and reproducible by any independent code.

    Args:
        num_users: Number of users.
        item_counts: ``[num_items]`` training interaction count of every item.

    Shapes:
        forward: ``() -> ([num_users, 1], [num_items, 1])``
    """

    trains = False

    def __init__(self, num_users: int, item_counts: Tensor) -> None:
        super().__init__()
        self.num_users = num_users
        counts = item_counts.detach().to(torch.float64)
        n = counts.numel()
        tie_break = (n - 1 - torch.arange(n, dtype=torch.float64)) / max(n, 1)
        self.register_buffer("item_counts", counts.clone())
        self.register_buffer("scores", counts + tie_break)

    def reset_parameters(self) -> None:
        """Nothing to reset: the counts are data."""

    def forward(self) -> tuple[Tensor, Tensor]:
        ones = self.scores.new_ones(self.num_users, 1)
        return ones, self.scores.unsqueeze(1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.num_users}, {self.item_counts.numel()})"
