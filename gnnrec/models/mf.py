"""Matrix factorisation trained with BPR, optionally with an item bias.

Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit Feedback", UAI 2009;
the item bias as in Koren, Bell and Volinsky, "Matrix Factorization Techniques for
Recommender Systems", IEEE Computer 2009.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gnnrec.models.base import Recommender, with_item_bias

__all__ = ["MF"]


class MF(Recommender):
    r"""Matrix factorisation: :math:`\hat{y}_{ui} = \mathbf{e}_u^\top \mathbf{e}_i \;[+\, b_i]`.

    Users and items of every domain share one embedding table each, so a user's
    source-domain interactions shape the same vector that scores target items.

    With ``item_bias`` every item has a learned scalar :math:`b_i`, zero-initialised and
    not L2-regularised (only the factors are, as :meth:`ego_embeddings` says). On sparse
    data it can carry what popularity says, so the factors need only explain what it
    does not. On ``amazon_bcm`` (Movies) the bias alone did not lift MF to popularity;
    a strong L2 on the factors (``loss.l2`` about 0.1) did, with the bias
    (experiments/tuning/superseded/). The bias rides as an extra column (``1`` for
    users, :math:`b_i` for items), so :meth:`forward` still returns two tables ranked by
    dot product.

    Args:
        num_users: Number of users.
        num_items: Number of items (all domains).
        embedding_dim: Embedding size.
        init_std: Standard deviation of the normal initialisation.
        item_bias: Learn a score bias per item.

    Shapes:
        forward: ``() -> ([num_users, D], [num_items, D])``, ``D = embedding_dim`` plus
        one with ``item_bias``
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        embedding_dim: int = 64,
        init_std: float = 0.1,
        item_bias: bool = False,
    ) -> None:
        super().__init__()
        self.num_users, self.num_items = num_users, num_items
        self.embedding_dim, self.init_std = embedding_dim, init_std
        self.user_embedding = nn.Embedding(num_users, embedding_dim)
        self.item_embedding = nn.Embedding(num_items, embedding_dim)
        self.bias = nn.Parameter(torch.zeros(num_items)) if item_bias else None
        self.reset_parameters()

    @property
    def item_bias(self) -> bool:
        """Whether items have a learned score bias."""
        return self.bias is not None

    def reset_parameters(self) -> None:
        nn.init.normal_(self.user_embedding.weight, std=self.init_std)
        nn.init.normal_(self.item_embedding.weight, std=self.init_std)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def ego_embeddings(self) -> tuple[Tensor, Tensor]:
        """Layer-0 embeddings, the ones L2 regularisation applies to."""
        return self.user_embedding.weight, self.item_embedding.weight

    def forward(self) -> tuple[Tensor, Tensor]:
        """User and item representations used for scoring (with the bias column)."""
        users, items = self.ego_embeddings()
        if self.bias is None:
            return users, items
        return with_item_bias(users, items, self.bias)

    def __repr__(self) -> str:
        bias = ", item_bias=True" if self.item_bias else ""
        return (
            f"{type(self).__name__}({self.num_users}, {self.num_items}, "
            f"dim={self.embedding_dim}{bias})"
        )
