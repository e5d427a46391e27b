"""LightGCN over the cross-domain user-item graph.

He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for
Recommendation", SIGIR 2020. https://arxiv.org/abs/2002.02126
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from gnnrec.models.base import Recommender
from gnnrec.nn import LayerMeanPropagation

__all__ = ["LightGCN"]


class LightGCN(Recommender):
    r"""LightGCN: linear propagation on the normalised user-item graph.

    .. math::
        \mathbf{E}^{(k+1)} = \tilde{A}\,\mathbf{E}^{(k)}, \qquad
        \mathbf{E} = \sum_{k=0}^{K} \alpha_k \mathbf{E}^{(k)}, \qquad
        \hat{y}_{ui} = \mathbf{e}_u^\top \mathbf{e}_i

    with :math:`\tilde{A} = D^{-1/2} A D^{-1/2}` over users and the items of *all*
    domains, so source-domain behaviour reaches target items through shared user nodes.
    The propagation is one fused sparse-CSR op (:class:`LayerMeanPropagation`) whose
    backward pass reuses the symmetric matrix.

    Args:
        num_users: Number of users.
        num_items: Number of items (all domains).
        adj: Sparse CSR ``[num_users + num_items]^2`` normalised adjacency
            (:func:`gnnrec.nn.bipartite_adjacency`), users first.
        embedding_dim: Embedding size (paper: 64).
        num_layers: Propagation layers ``K`` (paper: 3).
        alpha: Layer weights ``alpha_0..alpha_K``; ``None`` gives the paper's uniform
            ``1 / (K + 1)``.
        init_std: Standard deviation of the normal initialisation (paper code: 0.1).

    Shapes:
        forward: ``() -> ([num_users, embedding_dim], [num_items, embedding_dim])``
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        adj: Tensor,
        embedding_dim: int = 64,
        num_layers: int = 3,
        alpha: Sequence[float] | None = None,
        init_std: float = 0.1,
    ) -> None:
        super().__init__()
        if num_layers < 0:
            raise ValueError(f"num_layers must be >= 0, got {num_layers}")
        if alpha is None:
            alpha = [1.0 / (num_layers + 1)] * (num_layers + 1)
        if len(alpha) != num_layers + 1:
            raise ValueError(
                f"alpha needs num_layers + 1 = {num_layers + 1} weights, got {list(alpha)}"
            )
        n = num_users + num_items
        if tuple(adj.shape) != (n, n):
            raise ValueError(f"adj must be [{n}, {n}] (users + items), got {tuple(adj.shape)}")
        self.num_users, self.num_items = num_users, num_items
        self.embedding_dim, self.num_layers = embedding_dim, num_layers
        self.alpha = tuple(float(a) for a in alpha)
        self.init_std = init_std
        self.adj = adj
        self.embedding = nn.Embedding(n, embedding_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.embedding.weight, std=self.init_std)

    def _apply(self, fn, recurse=True):
        # Keep the (non-parameter) adjacency on the module's device.
        self.adj = fn(self.adj)
        return super()._apply(fn, recurse)

    def ego_embeddings(self) -> tuple[Tensor, Tensor]:
        """Layer-0 embeddings, the ones L2 regularisation applies to."""
        return self.embedding.weight.split([self.num_users, self.num_items])

    def forward(self) -> tuple[Tensor, Tensor]:
        """Propagated user and item representations."""
        x = self.embedding.weight
        if self.num_layers:
            with torch.autocast(x.device.type, enabled=False):
                x = LayerMeanPropagation.apply(self.adj, x.float(), self.alpha)
        else:
            x = x * self.alpha[0]
        return x.split([self.num_users, self.num_items])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.num_users}, {self.num_items}, "
            f"dim={self.embedding_dim}, num_layers={self.num_layers})"
        )
