"""Matrix factorisation trained with BPR.

Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit Feedback", UAI 2009.
"""

from __future__ import annotations

from torch import Tensor, nn

from gnnrec.models.base import Recommender

__all__ = ["MF"]


class MF(Recommender):
    r"""Matrix factorisation: :math:`\hat{y}_{ui} = \mathbf{e}_u^\top \mathbf{e}_i`.

    Users and items of every domain share one embedding table each, so a user's
    source-domain interactions shape the same vector that scores target items.

    Args:
        num_users: Number of users.
        num_items: Number of items (all domains).
        embedding_dim: Embedding size.
        init_std: Standard deviation of the normal initialisation.

    Shapes:
        forward: ``() -> ([num_users, embedding_dim], [num_items, embedding_dim])``
    """

    def __init__(
        self, num_users: int, num_items: int, embedding_dim: int = 64, init_std: float = 0.1
    ) -> None:
        super().__init__()
        self.num_users, self.num_items = num_users, num_items
        self.embedding_dim, self.init_std = embedding_dim, init_std
        self.user_embedding = nn.Embedding(num_users, embedding_dim)
        self.item_embedding = nn.Embedding(num_items, embedding_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.user_embedding.weight, std=self.init_std)
        nn.init.normal_(self.item_embedding.weight, std=self.init_std)

    def ego_embeddings(self) -> tuple[Tensor, Tensor]:
        """Layer-0 embeddings, the ones L2 regularisation applies to."""
        return self.user_embedding.weight, self.item_embedding.weight

    def forward(self) -> tuple[Tensor, Tensor]:
        """User and item representations used for scoring."""
        return self.ego_embeddings()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.num_users}, {self.num_items}, dim={self.embedding_dim})"
        )
