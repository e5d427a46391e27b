"""Random ranking, optionally with new items first: the floor every table shows.

A random order is the level any model must beat. With ``cold_first`` the items without
a training interaction come first (in random order), then the rest (in random order):
what knowing *which items are new* is worth on its own. Where the catalogue holds only
items somebody interacted with, a new item is exactly an item whose interactions were
all held out, so among all items this floor is far above random on cold-item metrics;
among the cold items only (``cold_item_only``) it is random again.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from gnnrec.models.base import Recommender

__all__ = ["RandomRanking"]


class RandomRanking(Recommender):
    r"""Scores :math:`\hat{y}_{ui} = \mathbf{r}_u^\top \mathbf{r}_i + 2\,[c_i = 0]\,b`.

    :math:`\mathbf{r}` are fixed random unit vectors (seeded), so every user gets an
    independent, uniformly random order of the items (exchangeable, no ties almost
    surely); :math:`b = 1` with ``cold_first`` adds 2, more than the spread of the random
    part, to items whose training count :math:`c_i` is 0. Nothing is trained.

    Args:
        num_users: Number of users.
        item_counts: ``[num_items]`` training interactions of every item.
        cold_first: Rank items without training interactions first.
        dim: Size of the random vectors (larger: closer to a uniform order).
        seed: Seed of the random vectors.

    Shapes:
        forward: ``() -> ([num_users, dim + 1], [num_items, dim + 1])``
    """

    trains = False

    def __init__(
        self,
        num_users: int,
        item_counts: Tensor,
        cold_first: bool = False,
        dim: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"model.dim must be >= 1, got {dim}")
        gen = torch.Generator().manual_seed(int(seed))
        num_items = item_counts.numel()
        user = F.normalize(torch.randn(num_users, dim, generator=gen, dtype=torch.float64), dim=1)
        item = F.normalize(torch.randn(num_items, dim, generator=gen, dtype=torch.float64), dim=1)
        bonus = 2.0 * (item_counts.detach().cpu() == 0).to(torch.float64) * float(cold_first)
        self.cold_first = bool(cold_first)
        self.register_buffer("user", torch.cat([user, user.new_ones(num_users, 1)], 1))
        self.register_buffer("item", torch.cat([item, bonus.unsqueeze(1)], 1))

    def reset_parameters(self) -> None:
        """Nothing to reset: the vectors are fixed by the seed."""

    def forward(self) -> tuple[Tensor, Tensor]:
        return self.user, self.item

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.user.size(0)}, {self.item.size(0)}, "
            f"cold_first={self.cold_first})"
        )
