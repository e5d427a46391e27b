"""Vectorised BPR triple sampling with negatives from the positive's own domain."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

__all__ = ["BPRSampler"]


class BPRSampler:
    """Yields shuffled ``(users, positives, negatives)`` batches of training pairs.

    Every negative is drawn uniformly from the items of the positive's domain and is
    not one of the user's training positives (rejection, vectorised: colliding draws
    are redrawn together for up to ``max_rounds`` rounds, then kept, which happens only
    for users who interacted with nearly a whole domain).

    Args:
        users: ``[E]`` user id of every training pair.
        items: ``[E]`` item id of every training pair.
        item_domain: ``[num_items]`` domain index of every item.
        seed: Seed of the sampler's own generator.
        max_rounds: Rejection rounds.
    """

    def __init__(
        self,
        users: Tensor,
        items: Tensor,
        item_domain: Tensor,
        seed: int = 0,
        max_rounds: int = 10,
    ) -> None:
        self.users = torch.as_tensor(users, dtype=torch.long)
        self.items = torch.as_tensor(items, dtype=torch.long)
        item_domain = torch.as_tensor(item_domain, dtype=torch.long)
        self.num_items = item_domain.numel()
        self.max_rounds = max_rounds
        # Items of each domain, concatenated; a domain's slice is [offset, offset + count).
        self.domain_items = torch.argsort(item_domain, stable=True)
        counts = torch.bincount(item_domain)
        self.domain_count = counts
        self.domain_offset = torch.cumsum(counts, 0) - counts
        self.item_domain = item_domain
        self.positive_keys = torch.unique(self.users * self.num_items + self.items)
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.users.numel()

    def num_batches(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)

    def _is_positive(self, users: Tensor, items: Tensor) -> Tensor:
        key = users * self.num_items + items
        where = torch.searchsorted(self.positive_keys, key).clamp_(max=len(self.positive_keys) - 1)
        return self.positive_keys[where] == key

    def _draw(self, domains: Tensor) -> Tensor:
        r = torch.rand(domains.numel(), generator=self.generator, dtype=torch.float64)
        local = (r * self.domain_count[domains]).long()
        return self.domain_items[self.domain_offset[domains] + local]

    def negatives(self, users: Tensor, pos: Tensor) -> Tensor:
        """One negative per pair, from the positive's domain."""
        domains = self.item_domain[pos]
        neg = self._draw(domains)
        for _ in range(self.max_rounds):
            bad = self._is_positive(users, neg).nonzero().squeeze(1)
            if bad.numel() == 0:
                break
            neg[bad] = self._draw(domains[bad])
        return neg

    def epoch(
        self, batch_size: int, limit_batches: int | None = None
    ) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """Batches of one epoch over a fresh permutation of the training pairs."""
        perm = torch.randperm(len(self), generator=self.generator)
        n_batches = self.num_batches(batch_size)
        if limit_batches is not None:
            n_batches = min(n_batches, limit_batches)
        for b in range(n_batches):
            idx = perm[b * batch_size : (b + 1) * batch_size]
            users, pos = self.users[idx], self.items[idx]
            yield users, pos, self.negatives(users, pos)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
