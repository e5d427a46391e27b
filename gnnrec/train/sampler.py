"""Training batches: ``(users, positives, negatives)`` with ``K`` negatives per positive.

Every sampler yields shuffled batches of the training pairs, ``users [B]``,
``pos [B]`` and ``neg [B, K]``, and says what its negatives are, so that a loss or
model that cannot use them fails at start (:func:`gnnrec.train.check_training`):

* :class:`NegativeSampler`: ``K`` negatives per pair, each not one of the user's
  training positives, drawn from the positive's own domain (``scope="domain"``, the
  default: cross-domain models rank within a domain) or from every item
  (``scope="all"``), uniformly or popularity-weighted (``popularity_alpha``);
* :class:`InBatchSampler`: no sampled negatives (``K = 0``); losses that share
  negatives across the batch use the other rows' positives.

Configs: ``conf/sampler/`` (``sampler=domain|uniform|popularity|in_batch``; ``K`` is
``sampler.num_negatives``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, get_args

import torch
from torch import Tensor

__all__ = ["InBatchSampler", "NegativeSampler", "SCOPES"]

Scope = Literal["domain", "all"]
SCOPES = get_args(Scope)


class _Pairs:
    """The shuffled training pairs, with the sampler's own seeded generator."""

    num_negatives: int = 0
    mixes_domains: bool = False

    def __init__(self, train_users: Tensor, train_items: Tensor, seed: int = 0) -> None:
        self.users = torch.as_tensor(train_users, dtype=torch.long)
        self.items = torch.as_tensor(train_items, dtype=torch.long)
        if self.users.shape != self.items.shape or self.users.dim() != 1:
            raise ValueError(
                f"train_users and train_items must be 1-D and equally long, got "
                f"{tuple(self.users.shape)} and {tuple(self.items.shape)}"
            )
        if self.users.numel() == 0:
            raise ValueError("there are no training interactions to sample from")
        self.generator = torch.Generator().manual_seed(int(seed))

    @classmethod
    def declared(cls, **config) -> tuple[int, bool]:
        """``(num_negatives, mixes_domains)`` a sampler built with ``config`` would have.

        Lets :func:`gnnrec.train.check_training` refuse a combination before any data
        is loaded.
        """
        return cls.num_negatives, cls.mixes_domains

    def __len__(self) -> int:
        return self.users.numel()

    def num_batches(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)

    def negatives(self, users: Tensor, pos: Tensor) -> Tensor:
        """``[B, K]`` negatives of the pairs ``(users, pos)``."""
        return users.new_empty(users.numel(), 0)

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


class InBatchSampler(_Pairs):
    """Shuffled training pairs without sampled negatives (``neg`` is ``[B, 0]``).

    For losses that rank each positive against the batch's other positives
    (``loss=softmax``); their items come from every domain of the batch.

    Args:
        train_users: ``[E]`` user of every training pair.
        train_items: ``[E]`` item of every training pair.
        seed: Seed of the sampler's own generator.
    """

    mixes_domains = True

    def __repr__(self) -> str:
        return f"{type(self).__name__}(pairs={len(self)})"


class NegativeSampler(_Pairs):
    r"""``K`` negatives per training pair, none of them a training positive of the user.

    A negative of the pair ``(u, i)`` is drawn from the items of ``i``'s domain
    (``scope="domain"``) or from all items (``scope="all"``) with probability
    proportional to :math:`c_j^{\alpha}` (:math:`c_j` the item's training count;
    :math:`\alpha = 0` is uniform; a domain whose items all have count 0 is drawn
    uniformly). A draw that hits one of the user's training positives is redrawn,
    vectorised, for up to ``max_rounds`` rounds, then kept (only users who interacted
    with nearly a whole domain get there).

    Args:
        train_users: ``[E]`` user of every training pair.
        train_items: ``[E]`` item of every training pair.
        item_domain: ``[num_items]`` domain index of every item.
        item_counts: ``[num_items]`` training count of every item (popularity weights).
        num_negatives: ``K``, negatives per pair.
        scope: ``"domain"`` or ``"all"``.
        popularity_alpha: :math:`\alpha`; ``0`` draws uniformly.
        seed: Seed of the sampler's own generator.
        max_rounds: Rejection rounds.
    """

    def __init__(
        self,
        train_users: Tensor,
        train_items: Tensor,
        item_domain: Tensor,
        item_counts: Tensor | None = None,
        num_negatives: int = 1,
        scope: Scope = "domain",
        popularity_alpha: float = 0.0,
        seed: int = 0,
        max_rounds: int = 10,
    ) -> None:
        super().__init__(train_users, train_items, seed)
        self._check(num_negatives, scope, popularity_alpha)
        item_domain = torch.as_tensor(item_domain, dtype=torch.long)
        self.num_items = item_domain.numel()
        self.num_negatives, self.scope = int(num_negatives), scope
        self.popularity_alpha, self.max_rounds = float(popularity_alpha), max_rounds
        self.mixes_domains = scope == "all"
        # Draw domain per item: its own domain, or one pool of every item.
        pool = item_domain if scope == "domain" else torch.zeros_like(item_domain)
        self.item_pool = pool
        # Items of each pool, concatenated; a pool's slice is [offset, offset + count).
        self.pool_items = torch.argsort(pool, stable=True)
        counts = torch.bincount(pool)
        self.pool_count = counts
        self.pool_offset = torch.cumsum(counts, 0) - counts
        self.cum_weight = None
        if self.popularity_alpha > 0:
            if item_counts is None:
                raise ValueError("popularity-weighted negatives need item_counts")
            weight = torch.as_tensor(item_counts, dtype=torch.float64)[self.pool_items]
            weight = weight.pow(self.popularity_alpha)
            # A pool without any counted item is drawn uniformly.
            pool_total = torch.zeros(len(counts), dtype=torch.float64).index_add_(
                0, pool[self.pool_items], weight
            )
            empty = pool_total[pool[self.pool_items]] == 0
            weight[empty] = 1.0
            self.cum_weight = torch.cumsum(weight, 0)
        self.positive_keys = torch.unique(self.users * self.num_items + self.items)

    @staticmethod
    def _check(num_negatives: int, scope: str, popularity_alpha: float) -> None:
        if scope not in SCOPES:
            raise ValueError(f"sampler.scope must be one of {SCOPES}, got {scope!r}")
        if int(num_negatives) < 1:
            raise ValueError(
                f"sampler.num_negatives must be >= 1, got {num_negatives} "
                "(sampler=in_batch draws none)"
            )
        if popularity_alpha < 0:
            raise ValueError(f"sampler.popularity_alpha must be >= 0, got {popularity_alpha}")

    @classmethod
    def declared(
        cls,
        num_negatives: int = 1,
        scope: str = "domain",
        popularity_alpha: float = 0.0,
        **config,
    ) -> tuple[int, bool]:
        """Also checks the settings (``ValueError`` naming ``sampler.<key>``)."""
        cls._check(num_negatives, scope, popularity_alpha)
        return int(num_negatives), scope == "all"

    def _is_positive(self, users: Tensor, items: Tensor) -> Tensor:
        key = users * self.num_items + items
        where = torch.searchsorted(self.positive_keys, key).clamp_(max=len(self.positive_keys) - 1)
        return self.positive_keys[where] == key

    def _draw(self, pools: Tensor) -> Tensor:
        r = torch.rand(pools.numel(), generator=self.generator, dtype=torch.float64)
        offset, count = self.pool_offset[pools], self.pool_count[pools]
        if self.cum_weight is None:
            local = (r * count).long()
            return self.pool_items[offset + local]
        cum = self.cum_weight
        low = torch.where(offset > 0, cum[(offset - 1).clamp(min=0)], 0.0)
        high = cum[offset + count - 1]
        where = torch.searchsorted(cum, low + r * (high - low), right=True)
        where = torch.minimum(torch.maximum(where, offset), offset + count - 1)
        return self.pool_items[where]

    def negatives(self, users: Tensor, pos: Tensor) -> Tensor:
        """``[B, K]`` negatives, from the positive's domain or from every item."""
        k = self.num_negatives
        users = users.repeat_interleave(k) if k > 1 else users
        pools = self.item_pool[pos]
        pools = pools.repeat_interleave(k) if k > 1 else pools
        neg = self._draw(pools)
        # Only redrawn entries are checked again (the others are known negatives): the
        # same draws as checking every entry each round, without K x the lookups.
        todo = torch.arange(neg.numel())
        for _ in range(self.max_rounds):
            bad = todo[self._is_positive(users[todo], neg[todo])]
            if bad.numel() == 0:
                break
            neg[bad] = self._draw(pools[bad])
            todo = bad
        return neg.view(-1, k)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(pairs={len(self)}, num_negatives={self.num_negatives}, "
            f"scope={self.scope}, popularity_alpha={self.popularity_alpha})"
        )
