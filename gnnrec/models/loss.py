"""Ranking losses for embedding recommenders.

Every loss is called as ``loss(model, users, pos, neg)`` with a batch of
``(user, positive item, negative item)`` triples from the sampler. Models opt into
three hooks; each has a default, so a plain ``forward() -> (user_emb, item_emb)``
model needs none of them:

* ``model.pair_scores(users, pos, neg) -> (s_pos, s_neg)``: the scores of the pairs
  (default: dot products of ``forward()``'s embeddings). Models whose score depends on
  the pair's domain (EMCDR, BiTGCF) define it.
* ``model.regularized(users, pos, neg) -> list[Tensor]``: the tensors the L2 term
  applies to (default: the batch rows of ``ego_embeddings()``).
* ``model.auxiliary_loss(users, pos, neg) -> Tensor``: an extra term added as is
  (default: none); EMCDR's mapping loss.

A model whose layer-0 representations are costly (a text projection) also defines
``model.forward_with_ego() -> ((user_emb, item_emb), (user_0, item_0))``: the losses then
make one pass per step for the scores and the L2 term (:class:`StepOutputs`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["BPRLoss", "SoftmaxLoss", "StepOutputs", "pair_scores", "l2_terms"]


class StepOutputs:
    """A model's outputs within one loss evaluation, each computed at most once.

    :meth:`final` is ``model()``; :meth:`ego` is ``model.ego_embeddings()``. A model with
    ``forward_with_ego`` gives both from one pass, so its layer 0 is not recomputed for
    the L2 term.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._final: tuple[Tensor, Tensor] | None = None
        self._ego: tuple[Tensor, Tensor] | None = None

    def final(self) -> tuple[Tensor, Tensor]:
        """``(user_emb, item_emb)``, the representations scores are made of."""
        if self._final is None:
            if hasattr(self.model, "forward_with_ego"):
                self._both()
            else:
                self._final = self.model()
        return self._final

    def ego(self) -> tuple[Tensor, Tensor]:
        """``(user_0, item_0)``, the layer-0 representations L2 applies to."""
        if self._ego is None:
            if hasattr(self.model, "forward_with_ego"):
                self._both()
            else:
                self._ego = self.model.ego_embeddings()
        return self._ego

    def _both(self) -> None:
        self._final, self._ego = self.model.forward_with_ego()


def pair_scores(
    model: nn.Module, users: Tensor, pos: Tensor, neg: Tensor, step: StepOutputs | None = None
) -> tuple[Tensor, Tensor]:
    """Scores of ``(users, pos)`` and ``(users, neg)``, through the model's hook if any."""
    if hasattr(model, "pair_scores"):
        return model.pair_scores(users, pos, neg)
    user_emb, item_emb = (step or StepOutputs(model)).final()
    u = user_emb[users]
    return (u * item_emb[pos]).sum(-1), (u * item_emb[neg]).sum(-1)


def l2_terms(
    model: nn.Module, users: Tensor, pos: Tensor, neg: Tensor, step: StepOutputs | None = None
) -> list[Tensor]:
    """The batch's layer-0 parameters the L2 term applies to."""
    if hasattr(model, "regularized"):
        return list(model.regularized(users, pos, neg))
    if not hasattr(model, "ego_embeddings") and not hasattr(model, "forward_with_ego"):
        return []
    user0, item0 = (step or StepOutputs(model)).ego()
    return [user0[users], item0[pos], item0[neg]]


def _auxiliary(model: nn.Module, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor | float:
    return model.auxiliary_loss(users, pos, neg) if hasattr(model, "auxiliary_loss") else 0.0


class BPRLoss(nn.Module):
    r"""Bayesian personalised ranking with L2 on the batch's layer-0 embeddings.

    .. math::
        \mathcal{L} = \frac{1}{|B|}\sum_{(u,i,j) \in B} -\ln\sigma(\hat{y}_{ui} - \hat{y}_{uj})
        + \lambda \frac{1}{2|B|} \sum_{(u,i,j) \in B}
          \left(\|\mathbf{e}^{(0)}_u\|^2 + \|\mathbf{e}^{(0)}_i\|^2 + \|\mathbf{e}^{(0)}_j\|^2\right)

    as in the LightGCN paper's code (:math:`\lambda` = 1e-4 there). Rendle et al.,
    "BPR: Bayesian Personalized Ranking from Implicit Feedback", UAI 2009.

    Args:
        l2: The L2 coefficient :math:`\lambda`.
    """

    def __init__(self, l2: float = 1e-4) -> None:
        super().__init__()
        self.l2 = l2

    def forward(self, model: nn.Module, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        step = StepOutputs(model)
        score_pos, score_neg = pair_scores(model, users, pos, neg, step)
        loss = F.softplus(score_neg - score_pos).mean()
        if self.l2:
            reg = sum(t.square().sum() for t in l2_terms(model, users, pos, neg, step))
            loss = loss + self.l2 * 0.5 * reg / users.numel()
        return loss + _auxiliary(model, users, pos, neg)

    def extra_repr(self) -> str:
        return f"l2={self.l2}"


class SoftmaxLoss(nn.Module):
    r"""Sampled-softmax (InfoNCE) loss over cosine similarities, as in AlphaRec.

    For each triple the positive competes with the batch's negatives (its own and those
    of every other row, ``|B|`` in all; a negative equal to the row's positive is
    masked):

    .. math::
        \mathcal{L} = -\frac{1}{|B|}\sum_{(u,i) \in B}
        \ln \frac{\exp(\cos(\mathbf{e}_u, \mathbf{e}_i)/\tau)}
        {\exp(\cos(\mathbf{e}_u, \mathbf{e}_i)/\tau) + \sum_{j \in N_B}
        \exp(\cos(\mathbf{e}_u, \mathbf{e}_j)/\tau)}
        + \lambda \frac{1}{2|B|}\sum \|\mathbf{e}^{(0)}\|^2

    Sheng et al., "Language Representations Can be What Recommenders Need", 2024
    (AlphaRec: InfoNCE with :math:`\tau` = 0.15 and sampled negatives); Oord et al.,
    "Representation Learning with Contrastive Predictive Coding", 2018.

    Negatives are drawn from the positive's domain by the sampler, so on cross-domain
    data the batch mixes domains; the loss then also separates domains, which is
    harmless for within-domain ranking.

    Args:
        temperature: :math:`\tau`.
        l2: The L2 coefficient :math:`\lambda` on layer-0 parameters.
    """

    def __init__(self, temperature: float = 0.15, l2: float = 0.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"loss.temperature must be positive, got {temperature}")
        self.temperature, self.l2 = temperature, l2

    def forward(self, model: nn.Module, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        step = StepOutputs(model)
        user_emb, item_emb = step.final()
        u = F.normalize(user_emb[users], dim=-1)
        p = F.normalize(item_emb[pos], dim=-1)
        n = F.normalize(item_emb[neg], dim=-1)
        pos_logit = (u * p).sum(-1, keepdim=True)
        neg_logit = (u @ n.t()).masked_fill(pos[:, None] == neg[None, :], float("-inf"))
        logits = torch.cat([pos_logit, neg_logit], dim=1) / self.temperature
        loss = -logits.log_softmax(dim=1)[:, 0].mean()
        if self.l2:
            reg = sum(t.square().sum() for t in l2_terms(model, users, pos, neg, step))
            loss = loss + self.l2 * 0.5 * reg / users.numel()
        return loss + _auxiliary(model, users, pos, neg)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, l2={self.l2}"
