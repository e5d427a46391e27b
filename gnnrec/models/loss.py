"""Ranking losses, scored through the model's own :meth:`~gnnrec.models.Recommender.score`.

Every loss is called as ``loss(model, users, pos, neg)`` with a sampler batch
(``users [B]``, ``pos [B]``, ``neg [B, K]``). It asks the model for one
:meth:`~gnnrec.models.Recommender.encode` pass (given the batch's supervision pairs),
scores pairs only through ``model.score`` / ``model.score_matrix``, and adds
``l2 * model.regularization(out, users, pos, neg)`` and
``model.auxiliary_loss(out, users, pos, neg)``. A model with its own scoring (EMCDR's
per-domain user factors, BiTGCF's per-domain users) is therefore trained on the scores
it is ranked by.

What a loss needs from the batch is declared (:attr:`needs_sampled_negatives`,
:attr:`shares_negatives`), so :func:`gnnrec.train.check_training` can refuse, at start,
a combination that cannot work.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gnnrec.models.base import Recommender

__all__ = ["BPRLoss", "RankingLoss", "SoftmaxLoss"]


class RankingLoss(nn.Module):
    """Base of the losses: the L2 and auxiliary terms, and what the loss needs.

    Args:
        l2: Coefficient of :meth:`~gnnrec.models.Recommender.regularization`.
    """

    needs_sampled_negatives: bool = True
    """Whether the loss needs ``K >= 1`` sampled negatives per pair."""

    shares_negatives: bool = False
    """Whether a row is ranked against other rows' items (of any domain)."""

    def __init__(self, l2: float = 0.0) -> None:
        super().__init__()
        if l2 < 0:
            raise ValueError(f"loss.l2 must be >= 0, got {l2}")
        self.l2 = float(l2)

    def ranking(self, model: Recommender, out, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, model: Recommender, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        """The batch's loss; ``neg`` is ``[B, K]`` (a ``[B]`` tensor is one negative per row)."""
        if neg.dim() == 1:
            neg = neg.unsqueeze(1)
        out = model.encode(users, pos)
        loss = self.ranking(model, out, users, pos, neg)
        if self.l2:
            loss = loss + self.l2 * model.regularization(out, users, pos, neg)
        return loss + model.auxiliary_loss(out, users, pos, neg)


class BPRLoss(RankingLoss):
    r"""Bayesian personalised ranking with L2 on the batch's layer-0 embeddings.

    .. math::
        \mathcal{L} = \frac{1}{|B|K}\sum_{(u,i) \in B}\sum_{j=1}^{K}
        -\ln\sigma(\hat{y}_{ui} - \hat{y}_{uj})
        + \lambda \frac{1}{2|B|} \sum_{(u,i) \in B}
          \Big(\|\mathbf{e}^{(0)}_u\|^2 + \|\mathbf{e}^{(0)}_i\|^2
          + \sum_{j}\|\mathbf{e}^{(0)}_j\|^2\Big)

    as in the LightGCN paper's code (:math:`K = 1`, :math:`\lambda` = 1e-4 there).
    Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit Feedback", UAI 2009.

    Args:
        l2: The L2 coefficient :math:`\lambda`.
    """

    def __init__(self, l2: float = 1e-4) -> None:
        super().__init__(l2)

    def ranking(self, model: Recommender, out, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        score_pos = model.score(out, users, pos)
        score_neg = model.score(out, users, neg)
        return F.softplus(score_neg - score_pos.unsqueeze(1)).mean()

    def extra_repr(self) -> str:
        return f"l2={self.l2}"


class SoftmaxLoss(RankingLoss):
    r"""Sampled-softmax (InfoNCE) loss over the model's scores, as in AlphaRec.

    Each positive competes with a set :math:`N_u` of negatives:

    .. math::
        \mathcal{L} = -\frac{1}{|B|}\sum_{(u,i) \in B}
        \ln \frac{\exp(\hat{y}_{ui}/\tau)}
        {\exp(\hat{y}_{ui}/\tau) + \sum_{j \in N_u} \exp(\hat{y}_{uj}/\tau)}
        + \lambda \frac{1}{2|B|}\sum \|\mathbf{e}^{(0)}\|^2

    With ``in_batch_negatives`` (the default), :math:`N_u` is shared by the batch: every
    row's sampled negatives, or, with a sampler that draws none (``sampler=in_batch``),
    the batch's positives; an entry equal to the row's positive is masked. With
    ``shared_negatives`` :math:`M`, the shared list is its first :math:`M` entries (the
    batch is shuffled, so a uniform subset): the loss's ``[B, M]`` score matrix, not the
    model, is then what a large batch pays for (at batch 8,192 the full ``[B, B]`` matrix
    is three quarters of a text model's step; ``benchmarks/bench_text_step.py``).
    Otherwise :math:`N_u` is the row's own ``K`` sampled negatives. With ``model=lightgcn_text``
    (``normalize: true``) the scores are cosines, AlphaRec's setting.

    Sheng et al., "Language Representations Can be What Recommenders Need", 2024
    (AlphaRec: InfoNCE with :math:`\tau` = 0.15); Oord et al., "Representation Learning
    with Contrastive Predictive Coding", 2018.

    Shared negatives come from the batch's rows, so on cross-domain data they mix
    domains: a model whose scores depend on the item's domain (EMCDR, BiTGCF) cannot be
    trained that way, and :func:`gnnrec.train.check_training` refuses it.

    Args:
        temperature: :math:`\tau`.
        l2: The L2 coefficient :math:`\lambda` on layer-0 parameters.
        in_batch_negatives: Share the batch's negatives across rows.
        shared_negatives: At most this many shared negatives per step (``None``: all).
    """

    def __init__(
        self,
        temperature: float = 0.15,
        l2: float = 0.0,
        in_batch_negatives: bool = True,
        shared_negatives: int | None = None,
    ) -> None:
        super().__init__(l2)
        if temperature <= 0:
            raise ValueError(f"loss.temperature must be positive, got {temperature}")
        if shared_negatives is not None and shared_negatives < 1:
            raise ValueError(
                f"loss.shared_negatives must be at least 1 (or null: all), got {shared_negatives}"
            )
        if shared_negatives is not None and not in_batch_negatives:
            raise ValueError(
                f"loss.shared_negatives={shared_negatives} caps the shared negatives, but "
                "loss.in_batch_negatives=false shares none; drop one of the two"
            )
        self.shared_negatives = None if shared_negatives is None else int(shared_negatives)
        self.temperature = float(temperature)
        self.in_batch_negatives = bool(in_batch_negatives)
        self.shares_negatives = self.in_batch_negatives
        self.needs_sampled_negatives = not self.in_batch_negatives

    def ranking(self, model: Recommender, out, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        pos_logit = model.score(out, users, pos).unsqueeze(1)
        if self.in_batch_negatives:
            shared = neg.reshape(-1) if neg.numel() else pos
            if self.shared_negatives is not None:
                shared = shared[: self.shared_negatives]
            neg_logit = model.score_matrix(out, users, shared)
            neg_logit = neg_logit.masked_fill(pos[:, None] == shared[None, :], float("-inf"))
        else:
            neg_logit = model.score(out, users, neg)
        logits = torch.cat([pos_logit, neg_logit], dim=1) / self.temperature
        return -logits.log_softmax(dim=1)[:, 0].mean()

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, l2={self.l2}, "
            f"in_batch_negatives={self.in_batch_negatives}, "
            f"shared_negatives={self.shared_negatives}"
        )
