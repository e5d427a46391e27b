"""LightGCN whose initial representations are projected language-model embeddings.

Sheng et al., "Language Representations Can be What Recommenders Need: Findings and
Potentials" (AlphaRec), 2024. https://arxiv.org/abs/2407.05441
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gnnrec.models.base import Recommender, StepOutputs
from gnnrec.nn import LayerMeanPropagation

__all__ = ["LightGCNText", "mean_item_embedding", "user_text_input"]

UserInput = Literal["mean", "profile"]
USER_INPUTS = get_args(UserInput)


def mean_item_embedding(
    item_emb: Tensor, train_users: Tensor, train_items: Tensor, num_users: int
) -> Tensor:
    """``[num_users, d]``: the mean embedding of each user's training items (0 if none).

    Duplicate ``(user, item)`` pairs count once.
    """
    num_items = item_emb.size(0)
    key = torch.unique(train_users.long() * num_items + train_items.long())
    users, items = key // num_items, key % num_items
    out = torch.zeros(num_users, item_emb.size(1), dtype=item_emb.dtype)
    out.index_add_(0, users, item_emb[items])
    count = torch.bincount(users, minlength=num_users).clamp_(min=1)
    return out / count[:, None].to(item_emb.dtype)


def user_text_input(
    user_input: str,
    item_text: Tensor,
    train_users: Tensor,
    train_items: Tensor,
    num_users: int,
    user_profiles: Callable[[], Tensor] | None,
) -> Tensor:
    """``[num_users, d]`` user text vectors: the mean of training items or profile texts.

    Raises:
        ValueError: For an unknown ``user_input``, or ``"profile"`` without profiles
            (``encoder=none``) or with profiles of the wrong shape.
    """
    if user_input not in USER_INPUTS:
        raise ValueError(f"model.user_input must be one of {USER_INPUTS}, got {user_input!r}")
    if user_input == "mean":
        return mean_item_embedding(item_text, train_users, train_items, num_users)
    if user_profiles is None:
        raise ValueError(
            "model.user_input=profile needs profile-text embeddings; choose a text encoder, "
            "e.g. encoder=minilm"
        )
    profiles = user_profiles().detach().float().cpu()
    if profiles.shape != (num_users, item_text.size(1)):
        raise ValueError(
            f"profile embeddings must be [{num_users}, {item_text.size(1)}], got "
            f"{tuple(profiles.shape)}"
        )
    return profiles


class LightGCNText(Recommender):
    r"""AlphaRec-style LightGCN: a learnable MLP maps frozen text embeddings to layer 0.

    .. math::
        \mathbf{e}^{(0)}_i = \mathrm{MLP}(\mathbf{t}_i) \;[+\, \mathbf{v}_i], \qquad
        \mathbf{e}^{(0)}_u = \mathrm{MLP}(\mathbf{t}_u) \;[+\, \mathbf{v}_u], \qquad
        \mathbf{E} = \sum_{k=0}^{K} \alpha_k \tilde{A}^k \mathbf{E}^{(0)}

    with :math:`\mathbf{t}_i` the item's language-model embedding, :math:`\mathbf{t}_u`
    either the mean of the user's *training* items' embeddings (AlphaRec) or the
    embedding of the user's profile text, optional ID embeddings :math:`\mathbf{v}`, and
    LightGCN propagation over all domains' training edges. Scores are
    :math:`\mathbf{e}_u^\top \mathbf{e}_i` of the propagated (by default L2-normalised,
    i.e. cosine as in AlphaRec) representations.

    Items with no training edge (cold items, zero-shot domains) have zero rows in
    :math:`\tilde{A}`, so their representation is :math:`\alpha_0\,\mathrm{MLP}(\mathbf{t}_i)`:
    the same projection, from text alone. With ``normalize=True`` the scale
    :math:`\alpha_0` does not matter.

    Args:
        num_users: Number of users.
        num_items: Number of items (all domains).
        adj: Sparse CSR normalised adjacency (users first), as for LightGCN.
        item_text_emb: ``[num_items, d_text]`` frozen item text embeddings.
        train_users: Training interactions' users (for the mean-of-items user input).
        train_items: Training interactions' items.
        user_profiles: A function returning ``[num_users, d_text]`` profile-text
            embeddings (:attr:`gnnrec.models.TrainingData.user_profiles`); called only
            with ``user_input="profile"``, since encoding profiles is costly.
        user_input: ``"mean"`` (mean of training items' embeddings) or ``"profile"``
            (``user_profiles``, required then).
        embedding_dim: Output size of the projection.
        hidden_dim: Hidden size of the two-layer MLP (``0``: a single linear map).
        num_layers: Propagation layers ``K``.
        alpha: Layer weights; ``None`` is uniform.
        id_embedding: Add learnable ID embeddings to the projected text.
        normalize: L2-normalise the outputs (cosine scores).
        init_std: Standard deviation of the ID embeddings' initialisation.

    Shapes:
        forward: ``() -> ([num_users, embedding_dim], [num_items, embedding_dim])``
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        adj: Tensor,
        item_text_emb: Tensor,
        train_users: Tensor,
        train_items: Tensor,
        user_profiles: Callable[[], Tensor] | None = None,
        user_input: UserInput = "mean",
        embedding_dim: int = 64,
        hidden_dim: int = 256,
        num_layers: int = 2,
        alpha: Sequence[float] | None = None,
        id_embedding: bool = False,
        normalize: bool = True,
        init_std: float = 0.1,
    ) -> None:
        super().__init__()
        if tuple(item_text_emb.shape[:1]) != (num_items,):
            raise ValueError(
                f"item_text_emb must have num_items = {num_items} rows, got "
                f"{tuple(item_text_emb.shape)}"
            )
        if alpha is None:
            alpha = [1.0 / (num_layers + 1)] * (num_layers + 1)
        if len(alpha) != num_layers + 1:
            raise ValueError(f"alpha needs num_layers + 1 = {num_layers + 1} weights, got {alpha}")
        n = num_users + num_items
        if tuple(adj.shape) != (n, n):
            raise ValueError(f"adj must be [{n}, {n}] (users + items), got {tuple(adj.shape)}")
        self.num_users, self.num_items = num_users, num_items
        self.embedding_dim, self.hidden_dim, self.num_layers = embedding_dim, hidden_dim, num_layers
        self.alpha = tuple(float(a) for a in alpha)
        self.normalize, self.init_std = normalize, init_std
        self.user_input = user_input
        item_text = item_text_emb.detach().float().cpu()
        user_text = user_text_input(
            user_input, item_text, train_users, train_items, num_users, user_profiles
        )
        self.register_buffer("text", torch.cat([user_text, item_text]), persistent=False)
        self.adj = adj
        d_text = item_text.size(1)
        if hidden_dim:
            self.mlp = nn.Sequential(
                nn.Linear(d_text, hidden_dim), nn.LeakyReLU(), nn.Linear(hidden_dim, embedding_dim)
            )
        else:
            self.mlp = nn.Sequential(nn.Linear(d_text, embedding_dim))
        self.id_embedding = nn.Embedding(n, embedding_dim) if id_embedding else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()
        if self.id_embedding is not None:
            nn.init.normal_(self.id_embedding.weight, std=self.init_std)

    def _apply(self, fn, recurse=True):
        self.adj = fn(self.adj)
        return super()._apply(fn, recurse)

    def layer0(self) -> Tensor:
        """``[num_users + num_items, embedding_dim]`` initial representations."""
        x = self.mlp(self.text)
        if self.id_embedding is not None:
            x = x + self.id_embedding.weight
        return x

    def ego_embeddings(self) -> tuple[Tensor, Tensor]:
        """Layer-0 representations, the ones L2 regularisation applies to."""
        return self.layer0().split([self.num_users, self.num_items])

    def encode(self, users: Tensor | None = None, pos: Tensor | None = None) -> StepOutputs:
        """``forward()`` and ``ego_embeddings()`` from one pass of the MLP (the step's main cost)."""
        x0 = self.layer0()
        x = x0
        if self.num_layers:
            with torch.autocast(x.device.type, enabled=False):
                x = LayerMeanPropagation.apply(self.adj, x.float(), self.alpha)
        else:
            x = x * self.alpha[0]
        if self.normalize:
            x = F.normalize(x, dim=-1)
        sizes = [self.num_users, self.num_items]
        return StepOutputs(tuple(x.split(sizes)), tuple(x0.split(sizes)))

    def forward(self) -> tuple[Tensor, Tensor]:
        """Propagated (and optionally normalised) user and item representations."""
        return self.encode().final

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.num_users}, {self.num_items}, "
            f"text_dim={self.text.size(1)}, dim={self.embedding_dim}, hidden={self.hidden_dim}, "
            f"num_layers={self.num_layers}, users={self.user_input}, "
            f"id_embedding={self.id_embedding is not None})"
        )
