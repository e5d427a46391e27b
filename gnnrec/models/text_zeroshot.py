"""Zero-shot text recommender: cosine similarity of user and item text embeddings.

The untrained baseline of text-based recommendation; see e.g. Sheng et al.
(AlphaRec), 2024, and Hou et al., "Large Language Models are Zero-Shot Rankers for
Recommender Systems", ECIR 2024.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor

from gnnrec.models.base import Recommender
from gnnrec.models.lightgcn_text import UserInput, user_text_input

__all__ = ["TextZeroShot"]


class TextZeroShot(Recommender):
    r"""No training: :math:`\hat{y}_{ui} = \cos(\mathbf{t}_u, \mathbf{t}_i)`.

    :math:`\mathbf{t}_i` is the item's text embedding; :math:`\mathbf{t}_u` the
    embedding of the user's profile text (the titles of their most recent training
    items), or, without profiles, the mean of their training items' embeddings.
    It has no trainable parameters, so the run skips training.

    Args:
        num_users: Number of users.
        item_text_emb: ``[num_items, d]`` item text embeddings.
        train_users: Training interactions' users (mean-of-items fallback).
        train_items: Training interactions' items.
        user_profiles: A function returning ``[num_users, d]`` profile-text embeddings
            (called only with ``user_input="profile"``).
        user_input: ``"profile"`` (``user_profiles``, required then) or ``"mean"``.

    Shapes:
        forward: ``() -> ([num_users, d], [num_items, d])``, unit rows.
    """

    trains = False

    def __init__(
        self,
        num_users: int,
        item_text_emb: Tensor,
        train_users: Tensor,
        train_items: Tensor,
        user_profiles: Callable[[], Tensor] | None = None,
        user_input: UserInput = "mean",
    ) -> None:
        super().__init__()
        self.user_input = user_input
        item = item_text_emb.detach().float().cpu()
        user = user_text_input(user_input, item, train_users, train_items, num_users, user_profiles)
        self.register_buffer("user", F.normalize(user, dim=-1), persistent=False)
        self.register_buffer("item", F.normalize(item, dim=-1), persistent=False)

    def reset_parameters(self) -> None:
        """Nothing to reset: the model has no parameters."""

    def forward(self) -> tuple[Tensor, Tensor]:
        return self.user, self.item

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.user.size(0)}, {self.item.size(0)}, "
            f"dim={self.item.size(1)}, users={self.user_input})"
        )
