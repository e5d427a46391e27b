"""Refuse, before any data is loaded, a model, loss and sampler that cannot train together."""

from __future__ import annotations

import functools
import inspect
from typing import Any

from gnnrec.models.base import Recommender
from gnnrec.models.loss import RankingLoss

__all__ = ["check_training"]


def _sampler_facts(sampler: Any) -> tuple[str, int, bool]:
    """``(name, num_negatives, mixes_domains)`` of a sampler or its ``_partial_`` config."""
    if isinstance(sampler, functools.partial):
        cls = sampler.func
        params = inspect.signature(cls).parameters
        config = {
            k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty
        }
        config.update(sampler.keywords)
        k, mixes = cls.declared(**config)
        return cls.__name__, k, mixes
    return type(sampler).__name__, sampler.num_negatives, sampler.mixes_domains


def check_training(model: type[Recommender] | Recommender, loss: RankingLoss, sampler: Any) -> None:
    """Raise ``ValueError`` naming the parts when they cannot train together.

    * a loss that needs sampled negatives (``loss=bpr``, ``loss=softmax`` without in-batch
      negatives) with a sampler that draws none (``sampler=in_batch``);
    * a model whose scores depend on the item's domain (``domain_specific_scores``:
      EMCDR, BiTGCF) with a loss that ranks rows against other rows' items, or with
      negatives from other domains (``sampler=uniform``): its scores of items of two
      domains come from different user factors and are not comparable.

    Args:
        model: The model or its class.
        loss: The loss.
        sampler: The sampler or its ``_partial_`` config (``hydra.utils.instantiate``).
    """
    model_name = model.__name__ if isinstance(model, type) else type(model).__name__
    loss_name = type(loss).__name__
    sampler_name, num_negatives, mixes_domains = _sampler_facts(sampler)
    if loss.needs_sampled_negatives and num_negatives < 1:
        raise ValueError(
            f"loss {loss_name} needs sampled negatives, but sampler {sampler_name} draws none; "
            "choose sampler=domain (or uniform, popularity), or loss=softmax with in-batch "
            "negatives"
        )
    if getattr(model, "domain_specific_scores", False):
        if loss.shares_negatives:
            raise ValueError(
                f"loss {loss_name} with in-batch negatives ranks each user against other rows' "
                f"items of every domain, but model {model_name} scores each domain's items with "
                "its own user factor, so those scores are not comparable; use loss=bpr, or "
                "loss.in_batch_negatives=false with sampled negatives from the positive's domain"
            )
        if mixes_domains:
            raise ValueError(
                f"sampler {sampler_name} draws negatives from every domain, but model "
                f"{model_name} scores each domain's items with its own user factor, so a "
                "positive and a negative of two domains are not comparable; use sampler=domain"
            )
