"""EMCDR: per-domain matrix factorisation plus a learned source-to-target user mapping.

Man et al., "Cross-Domain Recommendation: An Embedding and Mapping Approach",
IJCAI 2017. https://doi.org/10.24963/ijcai.2017/343
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gnnrec.models.base import Recommender, StepOutputs, squared_row_norms, with_item_bias
from gnnrec.models.cross_domain import source_target_split, users_by_item_domain

__all__ = ["EMCDR"]

MappingKind = Literal["mlp", "linear"]
Activation = Literal["tanh", "sigmoid"]
_ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


class EMCDR(Recommender):
    r"""Embedding and Mapping for Cross-Domain Recommendation.

    The paper's three stages: (1) latent factors in each domain,
    :math:`\hat{y}^s_{ui} = \mathbf{u}^{s\top}_u \mathbf{v}_i` for source items and
    :math:`\hat{y}^t_{ui} = \mathbf{u}^{t\top}_u \mathbf{v}_i` for target items (here BPR-MF;
    every non-target domain together is the source); (2) a mapping
    :math:`f_\theta` from source to target user factors learned on the overlapping users
    :math:`\mathcal{U}_o` (training interactions in both domains),

    .. math::
        \min_\theta \; \frac{1}{|\mathcal{U}_o|\,d} \sum_{u \in \mathcal{U}_o}
        \left\| f_\theta(\mathbf{u}^s_u) - \mathbf{u}^t_u \right\|^2,

    with :math:`f_\theta(\mathbf{x}) = M\mathbf{x}` (``"linear"``) or an MLP
    :math:`W_L\,\sigma(\dots\sigma(W_1\mathbf{x} + b_1)\dots) + b_L` (``"mlp"``; the paper's
    best: one hidden layer, tanh or sigmoid, ``2d`` units); (3) a user without target
    interactions is scored with :math:`f_\theta(\mathbf{u}^s_u)` against the target item
    factors. Items belong to one domain each, so one item table holds both domains' item
    factors.

    **One trainer loop instead of stages.** gnnrec's trainer minimises one objective, so
    the stages become independent terms of it: :meth:`score` scores a BPR pair
    with the source MF when its positive is a source item and with the target MF when
    it is a target item (negatives come from the positive's domain), and
    :meth:`auxiliary_loss` is ``mapping_weight`` times the mapping loss above on
    *detached* factors, over all overlapping users each step. That MLP pass over
    ``[|U_o|, d]`` (about 5 ms forward and backward for 4.3k users on one CPU thread)
    buys the exact stage-2 objective, every overlapping user weighted equally; the
    batch's users would weight them by activity. Hence the MF factors receive exactly
    the stage-1 gradients (the mapping loss never reaches them), the mapping receives
    only the stage-2 gradient evaluated at the current factors, and once the MFs have
    converged the mapping keeps descending the stage-2 objective at the fixed stage-1
    solution: the same fixed point as training the stages one after the other. The
    mapping's parameters get no other gradient, so under Adam ``mapping_weight`` barely
    matters (Adam is invariant to a gradient's scale). The paper's L2 penalty on
    :math:`\theta` (its Eq. 4 adds :math:`\Omega(\theta)`) is the optimiser's weight
    decay on the mapping's parameter group, ``mapping_l2`` (:meth:`parameter_groups`;
    with Adam, whose ``weight_decay`` adds :math:`\lambda\theta` to the gradient, that
    is exactly an L2 term); the factors take the optimiser's own setting.

    For evaluation (:meth:`forward`) a user with target training interactions gets its
    target factor; a user with source but no target interactions (the cold-start users
    EMCDR is for) gets :math:`f_\theta(\mathbf{u}^s_u)`; a user with neither keeps its
    (untrained) target factor.

    **Item bias (an option, not in the paper).** With ``item_bias`` every item also has a
    learned scalar :math:`b_i` added to both domains' scores,
    :math:`\hat{y}_{ui} = \mathbf{u}^\top \mathbf{v}_i + b_i`, zero-initialised and not
    L2-regularised, as :class:`~gnnrec.models.MF`'s (``emcdr_optuna`` searches it). It
    rides as an extra column of :meth:`forward` (``1`` for users, :math:`b_i` for
    items), so mapped users get it too.

    Args:
        num_users: Number of users.
        num_items: Number of items (all domains).
        item_domain: ``[num_items]`` domain index of every item.
        domains: Domain names (single-domain data is refused).
        target_domain: Index of the target (evaluated) domain; every other is source.
        train_users: ``[E]`` user of every training interaction (all domains).
        train_items: ``[E]`` item of every training interaction.
        embedding_dim: Latent factor size ``d``.
        mapping: ``"mlp"`` or ``"linear"`` (:math:`M\mathbf{x}`, no bias).
        hidden_dim: Units per hidden layer of the MLP (paper: ``2d``).
        num_hidden_layers: Hidden layers of the MLP (paper's best: 1).
        activation: Hidden activation of the MLP, ``"tanh"`` or ``"sigmoid"``.
        init_std: Standard deviation of the normal initialisation of the factors.
        mapping_weight: Weight of the mapping loss in the joint objective.
        mapping_l2: L2 coefficient on the mapping's parameters (optimiser weight decay).
        item_bias: Learn a score bias per item.

    Shapes:
        forward: ``() -> ([num_users, d], [num_items, d])``, ``d = embedding_dim`` (plus
        one with ``item_bias``)
        score: ``out, [B], [B] or [B, K] -> [B] or [B, K]``
    """

    domain_specific_scores = True

    def __init__(
        self,
        num_users: int,
        num_items: int,
        item_domain: Tensor,
        domains: Sequence[str],
        target_domain: int,
        train_users: Tensor,
        train_items: Tensor,
        embedding_dim: int = 64,
        mapping: MappingKind = "mlp",
        hidden_dim: int = 128,
        num_hidden_layers: int = 1,
        activation: Activation = "tanh",
        init_std: float = 0.1,
        mapping_weight: float = 1.0,
        mapping_l2: float = 0.0,
        item_bias: bool = False,
    ) -> None:
        super().__init__()
        item_domain, train_users, train_items, is_target_item = source_target_split(
            type(self).__name__,
            num_items,
            item_domain,
            domains,
            target_domain,
            train_users,
            train_items,
        )
        if mapping_l2 < 0:
            raise ValueError(f"model.mapping_l2 must be >= 0, got {mapping_l2}")
        if mapping not in ("mlp", "linear"):
            raise ValueError(f"model.mapping must be 'mlp' or 'linear', got {mapping!r}")
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"model.activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}"
            )
        if mapping == "mlp" and num_hidden_layers < 1:
            raise ValueError(f"model.num_hidden_layers must be >= 1, got {num_hidden_layers}")
        self.num_users, self.num_items = num_users, num_items
        self.embedding_dim, self.init_std = embedding_dim, init_std
        self.target_domain, self.mapping_kind = int(target_domain), mapping
        self.mapping_weight, self.mapping_l2 = float(mapping_weight), float(mapping_l2)

        in_target = is_target_item[train_items]
        has_target = torch.zeros(num_users, dtype=torch.bool)
        has_source = torch.zeros(num_users, dtype=torch.bool)
        has_target[train_users[in_target]] = True
        has_source[train_users[~in_target]] = True
        self.register_buffer("is_target_item", is_target_item, persistent=False)
        self.register_buffer("has_target", has_target, persistent=False)
        self.register_buffer(
            "overlap_users", (has_source & has_target).nonzero().squeeze(1), persistent=False
        )
        self.register_buffer(
            "mapped_users", (has_source & ~has_target).nonzero().squeeze(1), persistent=False
        )

        self.source_user = nn.Embedding(num_users, embedding_dim)
        self.target_user = nn.Embedding(num_users, embedding_dim)
        self.item = nn.Embedding(num_items, embedding_dim)
        if mapping == "linear":
            self.mapping = nn.Linear(embedding_dim, embedding_dim, bias=False)
        else:
            layers: list[nn.Module] = []
            width = embedding_dim
            for _ in range(num_hidden_layers):
                layers += [nn.Linear(width, hidden_dim), _ACTIVATIONS[activation]()]
                width = hidden_dim
            layers.append(nn.Linear(width, embedding_dim))
            self.mapping = nn.Sequential(*layers)
        self.bias = nn.Parameter(torch.zeros(num_items)) if item_bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for emb in (self.source_user, self.target_user, self.item):
            nn.init.normal_(emb.weight, std=self.init_std)
        for module in self.mapping.modules():
            if isinstance(module, nn.Linear):
                module.reset_parameters()
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self) -> tuple[Tensor, Tensor]:
        """User representations for the target domain and all item factors."""
        users = self.target_user.weight
        if self.mapped_users.numel():
            mapped = self.mapping(self.source_user(self.mapped_users))
            users = users.index_copy(0, self.mapped_users, mapped.to(users.dtype))
        if self.bias is None:
            return users, self.item.weight
        return with_item_bias(users, self.item.weight, self.bias)

    def encode(self, users: Tensor | None = None, pos: Tensor | None = None) -> StepOutputs:
        """Nothing is propagated: :meth:`score` reads the factor tables directly."""
        return StepOutputs(final=(self.target_user.weight, self.item.weight))

    def _user_factors(self, users: Tensor, items: Tensor) -> Tensor:
        # The source factor for source items, the target factor for target items.
        source, target = self.source_user.weight, self.target_user.weight
        return users_by_item_domain(source, target, self.is_target_item, users, items)

    def score(self, out: StepOutputs, users: Tensor, items: Tensor) -> Tensor:
        """Each pair scored by the MF of its item's domain (stage 1).

        For target items this is ``target_user . item`` (plus the item's bias), what
        :meth:`forward` ranks by for users with target history.
        """
        scores = (self._user_factors(users, items) * self.item(items)).sum(-1)
        return scores if self.bias is None else scores + self.bias[items]

    def score_matrix(self, out: StepOutputs, users: Tensor, items: Tensor) -> Tensor:
        raise ValueError(
            "EMCDR scores each domain's items with its own user factor; it cannot score a "
            "shared list of items (use loss.in_batch_negatives=false)"
        )

    def regularization(self, out: StepOutputs, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        """L2 of the factor rows the batch's BPR terms use (the user factor of each pair's domain)."""
        total = self._user_factors(users, pos).square().sum() + self.item(pos).square().sum()
        total = total + squared_row_norms(self.item.weight, neg)
        return 0.5 * total / users.numel()

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The factors with the optimiser's weight decay, the mapping with ``mapping_l2``."""
        mapping = list(self.mapping.parameters())
        ids = {id(p) for p in mapping}
        factors = [p for p in self.parameters() if id(p) not in ids]
        return [{"params": factors}, {"params": mapping, "weight_decay": self.mapping_l2}]

    def mapping_loss(self) -> Tensor:
        """Mean squared error of the mapping over all overlapping users (stage 2)."""
        if self.overlap_users.numel() == 0:
            return self.source_user.weight.new_zeros(())
        source = self.source_user(self.overlap_users).detach()
        target = self.target_user(self.overlap_users).detach()
        return F.mse_loss(self.mapping(source), target)

    def auxiliary_loss(
        self,
        out: StepOutputs | None = None,
        users: Tensor | None = None,
        pos: Tensor | None = None,
        neg: Tensor | None = None,
    ) -> Tensor:
        """``mapping_weight`` times :meth:`mapping_loss`; the batch is not used."""
        return self.mapping_weight * self.mapping_loss()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.num_users}, {self.num_items}, "
            f"dim={self.embedding_dim}, mapping={self.mapping_kind}, "
            f"overlap_users={self.overlap_users.numel()}"
            + (", item_bias=True)" if self.bias is not None else ")")
        )
