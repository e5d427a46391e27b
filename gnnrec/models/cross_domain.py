"""Input checks and user lookup shared by the models that keep source and target domains apart."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["source_target_split", "users_by_item_domain"]


def source_target_split(
    model: str,
    num_items: int,
    item_domain: Tensor,
    domains: Sequence[str],
    target_domain: int,
    train_users: Tensor,
    train_items: Tensor,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Checked ``(item_domain, train_users, train_items, is_target_item)`` as CPU tensors.

    Every non-target domain together is the source domain.

    Raises:
        ValueError: ``item_domain`` has the wrong shape, or the data has no source
            domain, or no training edge in the source or the target domain (e.g. a
            single-domain dataset, or preprocessing that emptied a domain).
    """
    item_domain = torch.as_tensor(item_domain, dtype=torch.long).cpu()
    train_users = torch.as_tensor(train_users, dtype=torch.long).cpu()
    train_items = torch.as_tensor(train_items, dtype=torch.long).cpu()
    if item_domain.shape != (num_items,):
        raise ValueError(
            f"item_domain must have shape [{num_items}], got {tuple(item_domain.shape)}"
        )
    target = int(target_domain)
    if len(domains) < 2:
        raise ValueError(
            f"model {model} transfers from source domains to the target domain, but the data "
            f"has one domain {list(domains)}; use a cross-domain dataset (e.g. data=amazon_bcm) "
            "or a single-domain model (lightgcn, mf)"
        )
    is_target_item = item_domain == target
    in_target = is_target_item[train_items]
    for name, count in (("target", int(in_target.sum())), ("source", int((~in_target).sum()))):
        if count == 0:
            raise ValueError(
                f"model {model} needs training interactions in the {name} domain, and there "
                f"are none (target domain {domains[target]!r} of {list(domains)})"
            )
    return item_domain, train_users, train_items, is_target_item


def users_by_item_domain(
    source: Tensor, target: Tensor, is_target_item: Tensor, users: Tensor, items: Tensor
) -> Tensor:
    """Each pair's user row from the table of its item's domain: ``target[users]`` for
    target items, ``source[users]`` for the others; ``[B, dim]`` or ``[B, K, dim]`` as
    ``items`` is ``[B]`` or ``[B, K]``."""
    in_target = is_target_item[items].unsqueeze(-1)
    if items.dim() > 1:
        users = users.unsqueeze(1).expand_as(items)
    return torch.where(in_target, target[users], source[users])
