"""Ranking losses for embedding recommenders."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["BPRLoss"]


class BPRLoss(nn.Module):
    r"""Bayesian personalised ranking with L2 on the batch's layer-0 embeddings.

    .. math::
        \mathcal{L} = \frac{1}{|B|}\sum_{(u,i,j) \in B} -\ln\sigma(\hat{y}_{ui} - \hat{y}_{uj})
        + \lambda \frac{1}{2|B|} \sum_{(u,i,j) \in B}
          \left(\|\mathbf{e}^{(0)}_u\|^2 + \|\mathbf{e}^{(0)}_i\|^2 + \|\mathbf{e}^{(0)}_j\|^2\right)

    as in the LightGCN paper's code (:math:`\lambda` = 1e-4 there).

    Args:
        l2: The L2 coefficient :math:`\lambda`.
    """

    def __init__(self, l2: float = 1e-4) -> None:
        super().__init__()
        self.l2 = l2

    def forward(self, model: nn.Module, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        user_emb, item_emb = model()
        u = user_emb[users]
        score_pos = (u * item_emb[pos]).sum(-1)
        score_neg = (u * item_emb[neg]).sum(-1)
        loss = F.softplus(score_neg - score_pos).mean()
        if self.l2:
            user0, item0 = model.ego_embeddings()
            reg = user0[users].square().sum() + item0[pos].square().sum()
            reg = reg + item0[neg].square().sum()
            loss = loss + self.l2 * 0.5 * reg / users.numel()
        return loss
