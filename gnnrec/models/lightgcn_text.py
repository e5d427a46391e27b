"""LightGCN whose initial representations are projected language-model embeddings.

Sheng et al., "Language Representations Can be What Recommenders Need: Findings and
Potentials" (AlphaRec), 2024. https://arxiv.org/abs/2407.05441

Options for cold start (users without target-domain history, items without edges): an
item bias added to the cosine (a learned one, or learned weight of log-popularity), a
degree gate between ID and text embeddings, and a contrastive ID-text alignment.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gnnrec.models.base import Recommender, StepOutputs, pair_scores, with_item_bias
from gnnrec.nn import LayerMeanPropagation, bipartite_adjacency

__all__ = [
    "LightGCNText",
    "StepRows",
    "id_fusion",
    "info_nce",
    "mean_item_embedding",
    "user_text_input",
]

UserInput = Literal["mean", "profile"]
USER_INPUTS = get_args(UserInput)
IdFusion = Literal["add", "gate"]
ItemBias = Literal["none", "learned", "logpop"]
ITEM_BIASES = get_args(ItemBias)
Order = Literal["project_then_propagate", "propagate_then_project"]
ORDERS = get_args(Order)


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


def id_fusion(id_embedding: bool | str) -> str:
    """The fusion of ID embeddings a ``model.id_embedding`` value selects.

    ``False`` is ``"none"`` (text only) and ``True`` is ``"add"`` (the setting's former
    boolean form).

    Raises:
        ValueError: For any other value than ``False``, ``True``, ``"add"`` and ``"gate"``.
    """
    if id_embedding is False:
        return "none"
    if id_embedding is True:
        return "add"
    if id_embedding in ("add", "gate"):
        return str(id_embedding)
    raise ValueError(
        f"model.id_embedding must be false, true (= add), 'add' or 'gate', got {id_embedding!r}"
    )


_CHECKED = (
    "id_embedding",
    "item_bias",
    "gate_init",
    "align_weight",
    "align_temperature",
    "order",
    "cold_view",
    "user_input",
)


def _check_options(
    id_embedding: Any,
    item_bias: Any,
    gate_init: Sequence[float],
    align_weight: float,
    align_temperature: float,
    order: Any = "project_then_propagate",
    cold_view: float = 0.0,
    user_input: Any = "mean",
) -> str:
    """The fusion :func:`id_fusion` selects, once the options are known to work together."""
    fusion = id_fusion(id_embedding)
    if order not in ORDERS:
        raise ValueError(f"model.order must be one of {ORDERS}, got {order!r}")
    if not 0.0 <= cold_view <= 1.0:
        raise ValueError(f"model.cold_view is a probability in [0, 1], got {cold_view}")
    if cold_view and order != "propagate_then_project":
        raise ValueError(
            f"model.cold_view={cold_view} swaps in text rows propagated once before training; "
            "set model.order=propagate_then_project, or model.cold_view=0"
        )
    if cold_view and user_input != "mean":
        raise ValueError(
            f"model.cold_view={cold_view} recomputes the mean of a user's source-domain items; "
            f"model.user_input={user_input!r} has no such view: set model.user_input=mean, "
            "or model.cold_view=0"
        )
    if item_bias not in ITEM_BIASES:
        raise ValueError(f"model.item_bias must be one of {ITEM_BIASES}, got {item_bias!r}")
    if len(gate_init) != 2:
        raise ValueError(f"model.gate_init must be two numbers [a, b], got {list(gate_init)}")
    if align_weight < 0:
        raise ValueError(f"model.align_weight must be >= 0, got {align_weight}")
    if align_weight and fusion == "none":
        raise ValueError(
            f"model.align_weight={align_weight} aligns ID embeddings with the text, but "
            "model.id_embedding=false has none; set model.id_embedding=add or gate, or "
            "model.align_weight=0"
        )
    if align_temperature <= 0:
        raise ValueError(f"model.align_temperature must be positive, got {align_temperature}")
    return fusion


def info_nce(anchor: Tensor, positive: Tensor, temperature: float) -> Tensor:
    r"""Symmetric InfoNCE of ``[N, d]`` row pairs, the other rows as negatives.

    .. math::
        \ell = \frac{1}{2N}\sum_{n}\Big(
        -\ln\frac{e^{s_{nn}/\tau}}{\sum_m e^{s_{nm}/\tau}}
        -\ln\frac{e^{s_{nn}/\tau}}{\sum_m e^{s_{mn}/\tau}}\Big), \qquad
        s_{nm} = \cos(\mathbf{a}_n, \mathbf{p}_m)

    (CLIP's loss; Radford et al., 2021). One row gives 0.
    """
    a = F.normalize(anchor.float(), dim=-1)
    p = F.normalize(positive.float(), dim=-1)
    logits = a @ p.t() / temperature
    labels = torch.arange(logits.size(0), device=logits.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))


class LightGCNText(Recommender):
    r"""AlphaRec-style LightGCN: a learnable MLP maps frozen text embeddings to layer 0.

    .. math::
        \mathbf{E} = \sum_{k=0}^{K} \alpha_k \tilde{A}^k \mathbf{E}^{(0)}, \qquad
        \hat{y}_{ui} = \mathbf{e}_u^\top \mathbf{e}_i \;[+\, b_i]

    with layer 0, for a user or item node :math:`n` of text embedding :math:`\mathbf{t}_n`
    and ID embedding :math:`\mathbf{v}_n`, by ``id_embedding``:

    .. math::
        \mathbf{e}^{(0)}_n =
        \begin{cases}
        \mathrm{MLP}(\mathbf{t}_n) & \text{false (text only)} \\
        \mathrm{MLP}(\mathbf{t}_n) + \mathbf{v}_n & \text{add (or true)} \\
        g_n \mathbf{v}_n + (1 - g_n)\,\mathrm{MLP}(\mathbf{t}_n), \;
        g_n = \sigma\big(a \ln(1 + d_n) + b\big) & \text{gate}
        \end{cases}

    :math:`\mathbf{t}_u` is either the mean of the user's *training* items' embeddings
    (AlphaRec) or the embedding of the user's profile text; :math:`d_n` is the node's
    number of distinct training edges (all domains); :math:`(a, b)` are learnable
    scalars, one pair for users and one for items (``gate_init``), so a node without
    edges (a cold item) has :math:`g_n = \sigma(b)` and leans on its text. Propagation is
    LightGCN's over all domains' training edges; the outputs are by default
    L2-normalised (cosine scores, as in AlphaRec).

    The item bias :math:`b_i` (``item_bias``) is ``0`` (``none``), a learned scalar per
    item, zero-initialised (``learned``), or :math:`\beta \ln(1 + c_i)` with :math:`c_i`
    the item's training count and :math:`\beta` one learned scalar initialised to
    ``bias_init`` (``logpop``; items without training interactions get 0). It is added
    *after* normalisation, as an extra column (1 for users, :math:`b_i` for items), so
    :meth:`forward` still returns two tables ranked by dot product and the cosine keeps
    its range. The bias is in score units: ``loss=softmax`` divides scores by its
    temperature :math:`\tau`, so a bias :math:`b_i` moves the item's logits by
    :math:`b_i/\tau` (a cosine spans 2, so with :math:`\tau = 0.15` a bias of 0.3 is
    worth 2 logits). A learned bias absorbs popularity only if the negatives do not
    already follow it: with ``sampler=in_batch`` (the batch's positives as negatives,
    drawn by popularity) the sampled softmax's optimum already removes log-popularity
    from the scores, so there is little for the bias to learn; the default
    ``sampler=domain`` draws negatives uniformly.

    With ``align_weight`` :math:`\lambda > 0`, :meth:`auxiliary_loss` adds a contrastive
    alignment of each batch node's ID embedding with its text projection,
    :math:`\frac{\lambda}{2}\big(\ell(\mathbf{V}_U, \mathrm{MLP}(\mathbf{T}_U)) +
    \ell(\mathbf{V}_I, \mathrm{MLP}(\mathbf{T}_I))\big)` with :func:`info_nce` (temperature
    ``align_temperature``) over the batch's distinct users :math:`U` and distinct
    positive items :math:`I`, so that ID embeddings of warm nodes live in the space the
    text of cold nodes is projected to.

    Items with no training edge (cold items, zero-shot domains) have zero rows in
    :math:`\tilde{A}`, so their representation is :math:`\alpha_0\,\mathbf{e}^{(0)}_i`
    (from text alone without ID embeddings). With ``normalize=True`` the scale
    :math:`\alpha_0` does not matter.

    ``order`` says where the MLP sits. ``"project_then_propagate"`` (the default,
    AlphaRec) is the model above: every step projects every node's text and propagates
    the projections, so the MLP over all ``num_users + num_items`` nodes is a step's main
    cost. ``"propagate_then_project"`` propagates the frozen text once, before training
    (SGC/SIGN-style decoupling: Wu et al., ICML 2019; Frasca et al., 2020), and applies
    the MLP to each node's propagated text, its rows scaled to unit norm as the
    encoder's are (so a node without edges, whose row is :math:`\alpha_0\mathbf{t}_n`,
    is on the same scale as the others):

    .. math::
        \tilde{\mathbf{t}}_n = \frac{\mathbf{s}_n}{\|\mathbf{s}_n\|}, \quad
        \mathbf{S} = \sum_{k=0}^{K} \alpha_k \tilde{A}^k \mathbf{T}, \qquad
        \mathbf{e}_n = \mathrm{MLP}(\tilde{\mathbf{t}}_n) \;[+\, (\textstyle\sum_k
        \alpha_k \tilde{A}^k \mathbf{V})_n]

    (ID embeddings, when there are any, are still propagated each step, as in LightGCN,
    and ``gate`` mixes the two propagated parts). A training step then runs the MLP on
    the rows of its batch only (:meth:`score` computes each of a step's nodes once),
    and the loss never touches the other nodes' text. Text only, with a linear map
    (``hidden_dim=0``) without its bias and ``normalize=True``, the two orders give
    the same scores (the map commutes with propagation and the row scale cancels); with
    the MLP, or ID embeddings, they are different models.

    ``cold_view`` :math:`p > 0` (``propagate_then_project``, ``user_input="mean"``)
    trains for the users the evaluation calls cold, who have source-domain history only:
    a second user table :math:`\tilde{\mathbf{t}}^{\,\mathrm{src}}_u` is built as
    :math:`\tilde{\mathbf{t}}_u` is, but from the training edges outside the target domain
    (the mean of the user's source items, propagated over the source-domain graph). In
    each training step, every user with target-domain training edges is, with
    probability :math:`p` and independently, represented by that row instead of its own
    (a dropout of the target history, as DropoutNet drops content or IDs: Volkovs et al.,
    NeurIPS 2017), for all of the batch's pairs it is in. Items keep their rows;
    evaluation uses the users' own rows (a cold user's own row is its source view). ID
    embeddings, if any, are not swapped.

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
        item_counts: ``[num_items]`` training interactions per item, for
            ``item_bias="logpop"`` (``None``: counted from ``train_items``).
        user_input: ``"mean"`` (mean of training items' embeddings) or ``"profile"``
            (``user_profiles``, required then).
        embedding_dim: Output size of the projection.
        hidden_dim: Hidden size of the two-layer MLP (``0``: a single linear map).
        num_layers: Propagation layers ``K``.
        alpha: Layer weights; ``None`` is uniform.
        id_embedding: ``False`` (text only), ``"add"`` (or ``True``: ID embeddings added
            to the projected text) or ``"gate"`` (a degree gate between the two).
        normalize: L2-normalise the outputs (cosine scores).
        init_std: Standard deviation of the ID embeddings' initialisation.
        item_bias: ``"none"``, ``"learned"`` or ``"logpop"`` (see above).
        bias_init: Initial :math:`\beta` of ``item_bias="logpop"`` (unused otherwise).
        gate_init: Initial ``(a, b)`` of both gates of ``id_embedding="gate"``.
        align_weight: Weight :math:`\lambda` of the ID-text alignment (needs ID embeddings).
        align_temperature: Temperature of the alignment's InfoNCE.
        order: ``"project_then_propagate"`` or ``"propagate_then_project"`` (see above).
        cold_view: Probability :math:`p` of the source-only user view in training (see
            above; 0 turns it off).
        item_domain: ``[num_items]`` domain of every item (needed by ``cold_view``).
        target_domain: Index of the evaluated domain (needed by ``cold_view``).

    Shapes:
        forward: ``() -> ([num_users, D], [num_items, D])``, ``D = embedding_dim``, plus
        one with an item bias
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
        item_counts: Tensor | None = None,
        user_input: UserInput = "mean",
        embedding_dim: int = 64,
        hidden_dim: int = 256,
        num_layers: int = 2,
        alpha: Sequence[float] | None = None,
        id_embedding: bool | IdFusion = False,
        normalize: bool = True,
        init_std: float = 0.1,
        item_bias: ItemBias = "none",
        bias_init: float = 0.0,
        gate_init: Sequence[float] = (1.0, -2.0),
        align_weight: float = 0.0,
        align_temperature: float = 0.2,
        order: Order = "project_then_propagate",
        cold_view: float = 0.0,
        item_domain: Tensor | None = None,
        target_domain: int | None = None,
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
        fusion = _check_options(
            id_embedding,
            item_bias,
            gate_init,
            align_weight,
            align_temperature,
            order,
            cold_view,
            user_input,
        )
        self.num_users, self.num_items = num_users, num_items
        self.embedding_dim, self.hidden_dim, self.num_layers = embedding_dim, hidden_dim, num_layers
        self.alpha = tuple(float(a) for a in alpha)
        self.normalize, self.init_std = normalize, init_std
        self.user_input, self.fusion, self.item_bias = user_input, fusion, item_bias
        self.bias_init = float(bias_init)
        self.gate_init = tuple(float(v) for v in gate_init)
        self.align_weight, self.align_temperature = float(align_weight), float(align_temperature)
        self.order, self.cold_view = order, float(cold_view)
        item_text = item_text_emb.detach().float().cpu()
        user_text = user_text_input(
            user_input, item_text, train_users, train_items, num_users, user_profiles
        )
        text = torch.cat([user_text, item_text])
        self.adj = adj
        if order == "propagate_then_project":  # once: the MLP then sees these rows
            with torch.no_grad():
                text = F.normalize(self._propagate(text.to(adj.device)), dim=-1).cpu()
        self.register_buffer("text", text, persistent=False)
        if self.cold_view:
            cold_text, swappable = self._source_view(
                item_text, train_users, train_items, item_domain, target_domain
            )
            self.register_buffer("cold_text", cold_text, persistent=False)
            self.register_buffer("swappable", swappable, persistent=False)
        d_text = item_text.size(1)
        if hidden_dim:
            self.mlp = nn.Sequential(
                nn.Linear(d_text, hidden_dim), nn.LeakyReLU(), nn.Linear(hidden_dim, embedding_dim)
            )
        else:
            self.mlp = nn.Sequential(nn.Linear(d_text, embedding_dim))
        self.id_embedding = nn.Embedding(n, embedding_dim) if fusion != "none" else None
        if fusion == "gate":
            key = torch.unique(train_users.long().cpu() * num_items + train_items.long().cpu())
            degree = torch.cat(
                [
                    torch.bincount(key // num_items, minlength=num_users),
                    torch.bincount(key % num_items, minlength=num_items),
                ]
            )
            self.register_buffer("log_degree", torch.log1p(degree.float()), persistent=False)
            self.user_gate = nn.Parameter(torch.zeros(2))
            self.item_gate = nn.Parameter(torch.zeros(2))
        if item_bias == "learned":
            self.bias = nn.Parameter(torch.zeros(num_items))
        elif item_bias == "logpop":
            if item_counts is None:
                item_counts = torch.bincount(train_items.long().cpu(), minlength=num_items)
            if tuple(item_counts.shape) != (num_items,):
                raise ValueError(
                    f"item_counts must be [{num_items}], got {tuple(item_counts.shape)}"
                )
            log_count = torch.log1p(item_counts.detach().float().cpu())
            self.register_buffer("log_count", log_count, persistent=False)
            self.beta = nn.Parameter(torch.zeros(()))
        self.reset_parameters()

    def _source_view(
        self,
        item_text: Tensor,
        train_users: Tensor,
        train_items: Tensor,
        item_domain: Tensor | None,
        target_domain: int | None,
    ) -> tuple[Tensor, Tensor]:
        """``cold_view``'s ``[num_users, d]`` source-only user rows, and the
        ``[num_users]`` mask of users with target-domain training edges (whose rows
        differ)."""
        if item_domain is None or target_domain is None:
            raise ValueError(
                "model.cold_view needs item_domain and target_domain (the run passes them)"
            )
        users, items = train_users.long().cpu(), train_items.long().cpu()
        in_target = item_domain.long().cpu()[items] == int(target_domain)
        src_users, src_items = users[~in_target], items[~in_target]
        adj = bipartite_adjacency(src_users, src_items, self.num_users, self.num_items)
        text = torch.cat(
            [mean_item_embedding(item_text, src_users, src_items, self.num_users), item_text]
        )
        with torch.no_grad():
            if self.num_layers:
                text = LayerMeanPropagation.apply(adj, text, self.alpha)
            else:
                text = text * self.alpha[0]
            text = F.normalize(text[: self.num_users], dim=-1)
        swappable = torch.zeros(self.num_users, dtype=torch.bool)
        swappable[users[in_target]] = True
        return text, swappable

    def _swapped(self) -> Tensor | None:
        """A training step's draw of the users shown their source-only view, or ``None``."""
        if not (self.cold_view and self.training):
            return None
        draw = torch.rand(self.num_users, device=self.swappable.device) < self.cold_view
        return draw & self.swappable

    @classmethod
    def check_options(cls, **options: Any) -> None:
        """The constructor's checks of the options that need no data, run at start.

        Those of ``id_embedding``, ``item_bias``, ``gate_init``, ``align_weight``,
        ``align_temperature``, ``order`` and ``cold_view`` (with ``user_input``); the
        others take the constructor's defaults.
        """
        params = inspect.signature(cls).parameters
        _check_options(*(options.get(k, params[k].default) for k in _CHECKED))

    def reset_parameters(self) -> None:
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()
        if self.id_embedding is not None:
            nn.init.normal_(self.id_embedding.weight, std=self.init_std)
        with torch.no_grad():
            if self.fusion == "gate":
                self.user_gate.copy_(torch.tensor(self.gate_init))
                self.item_gate.copy_(torch.tensor(self.gate_init))
            if self.item_bias == "learned":
                self.bias.zero_()
            elif self.item_bias == "logpop":
                self.beta.fill_(self.bias_init)

    def _apply(self, fn, recurse=True):
        self.adj = fn(self.adj)
        return super()._apply(fn, recurse)

    def gate(self) -> Tensor:
        """``[num_users + num_items, 1]`` weight :math:`g_n` of the ID embedding (``gate``)."""
        user_degree, item_degree = self.log_degree.split([self.num_users, self.num_items])
        a_u, b_u = self.user_gate
        a_i, b_i = self.item_gate
        logit = torch.cat([a_u * user_degree + b_u, a_i * item_degree + b_i])
        return torch.sigmoid(logit).unsqueeze(1)

    def _fuse(self, projected: Tensor, ids: Tensor | None = None, gate: Tensor | None = None):
        """The text projection fused with ``ids`` (all ID embeddings by default) by
        ``gate`` rows (all nodes' :meth:`gate` by default)."""
        if self.fusion == "none":
            return projected
        ids = self.id_embedding.weight if ids is None else ids
        if self.fusion == "add":
            return projected + ids
        g = self.gate() if gate is None else gate
        return g * ids + (1 - g) * projected

    def _propagate(self, x: Tensor) -> Tensor:
        """:math:`\sum_k \alpha_k \tilde{A}^k x`, in float32."""
        if not self.num_layers:
            return x * self.alpha[0]
        with torch.autocast(x.device.type, enabled=False):
            return LayerMeanPropagation.apply(self.adj, x.float(), self.alpha)

    def node_rows(
        self, nodes: Tensor, ids: Tensor | None = None, swapped: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``propagate_then_project``: ``(final, ego, projected)`` rows of ``nodes [M]``.

        ``final`` is the representation before the item bias column, ``projected`` the
        MLP of the propagated text, ``ego`` their layer-0 counterpart for the L2 term
        (the projection fused with the nodes' own ID embeddings). ``ids`` is the
        propagated ID table (computed here when ``None``); ``swapped`` (``[num_users]``
        bool) the users whose text row is their ``cold_view`` source-only row.
        """
        text = self.text[nodes]
        if swapped is not None:
            user = nodes < self.num_users
            swap = torch.zeros_like(user)
            swap[user] = swapped[nodes[user]]
            if swap.any():
                text = text.clone()
                text[swap] = self.cold_text[nodes[swap]]
        projected = self.mlp(text)
        if self.fusion == "none":
            x = ego = projected
        else:
            if ids is None:
                ids = self._propagate(self.id_embedding.weight)
            gate = self.gate()[nodes] if self.fusion == "gate" else None
            x = self._fuse(projected, ids[nodes], gate)
            ego = self._fuse(projected, self.id_embedding.weight[nodes], gate)
        if self.normalize:
            x = F.normalize(x, dim=-1)
        return x, ego, projected

    def layer0(self) -> Tensor:
        """``[num_users + num_items, embedding_dim]`` initial representations (with
        ``propagate_then_project``: :meth:`node_rows`'s ``ego`` of every node)."""
        if self.order == "propagate_then_project":
            nodes = torch.arange(self.num_users + self.num_items, device=self.text.device)
            return self.node_rows(nodes)[1]
        return self._fuse(self.mlp(self.text))

    def item_bias_values(self) -> Tensor | None:
        """``[num_items]`` score bias of every item, ``None`` with ``item_bias="none"``."""
        if self.item_bias == "learned":
            return self.bias
        if self.item_bias == "logpop":
            return self.beta * self.log_count
        return None

    def ego_embeddings(self) -> tuple[Tensor, Tensor]:
        """Layer-0 representations, the ones L2 regularisation applies to."""
        return self.layer0().split([self.num_users, self.num_items])

    def encode(self, users: Tensor | None = None, pos: Tensor | None = None) -> StepOutputs:
        """One pass of the MLP (the step's main cost) for scores, L2 and alignment terms.

        ``final`` is :meth:`forward`'s output, ``ego`` the layer-0 rows and ``extra`` the
        ``[num_users + num_items, embedding_dim]`` text projection (for the alignment).
        With ``propagate_then_project``, ``final`` and ``extra`` are instead one
        :class:`StepRows` that computes the rows the step's scores ask for, once each.
        """
        if self.order == "propagate_then_project":
            ids = self._propagate(self.id_embedding.weight) if self.fusion != "none" else None
            rows = StepRows(self, ids, self._swapped())
            return StepOutputs(rows, None, rows)
        projected = self.mlp(self.text)
        x0 = self._fuse(projected)
        x = self._propagate(x0)
        if self.normalize:
            x = F.normalize(x, dim=-1)
        sizes = [self.num_users, self.num_items]
        user_emb, item_emb = x.split(sizes)
        bias = self.item_bias_values()
        if bias is not None:  # after normalisation: the score is cosine + b_i
            user_emb, item_emb = with_item_bias(user_emb, item_emb, bias)
        return StepOutputs((user_emb, item_emb), tuple(x0.split(sizes)), projected)

    def forward(self) -> tuple[Tensor, Tensor]:
        """Propagated (and optionally normalised) user and item representations."""
        if self.order == "propagate_then_project":
            nodes = torch.arange(self.num_users + self.num_items, device=self.text.device)
            user_emb, item_emb = self.node_rows(nodes)[0].split([self.num_users, self.num_items])
            bias = self.item_bias_values()
            if bias is not None:
                user_emb, item_emb = with_item_bias(user_emb, item_emb, bias)
            return user_emb, item_emb
        return self.encode().final

    def _row_scores(self, rows: StepRows, users: Tensor, items: Tensor, matrix: bool) -> Tensor:
        u = rows.final(users)
        v = rows.final(items + self.num_users)
        scores = u @ v.t() if matrix else pair_scores(u, v)
        bias = self.item_bias_values()
        if bias is not None:
            scores = scores + (bias[items] if not matrix else bias[items][None, :])
        return scores

    def score(self, out: StepOutputs, users: Tensor, items: Tensor) -> Tensor:
        if isinstance(out.final, StepRows):
            return self._row_scores(out.final, users, items, matrix=False)
        return super().score(out, users, items)

    def score_matrix(self, out: StepOutputs, users: Tensor, items: Tensor) -> Tensor:
        if isinstance(out.final, StepRows):
            return self._row_scores(out.final, users, items, matrix=True)
        return super().score_matrix(out, users, items)

    def regularization(
        self, out: StepOutputs, users: Tensor, pos: Tensor, neg: Tensor
    ) -> Tensor | float:
        """The base class's L2 term; with ``propagate_then_project`` on the batch's
        :meth:`node_rows` ``ego`` rows (repeated rows counted each time)."""
        if not isinstance(out.final, StepRows):
            return super().regularization(out, users, pos, neg)
        rows, u = out.final, self.num_users
        total = rows.ego(users).square().sum() + rows.ego(pos + u).square().sum()
        if neg.numel():
            total = total + rows.ego(neg + u).square().sum()
        return 0.5 * total / users.numel()

    def auxiliary_loss(
        self,
        out: StepOutputs | None = None,
        users: Tensor | None = None,
        pos: Tensor | None = None,
        neg: Tensor | None = None,
    ) -> Tensor | float:
        """``align_weight`` times the ID-text alignment of the batch's users and positives.

        Raises:
            ValueError: With ``align_weight > 0`` but no step outputs or batch.
        """
        if not self.align_weight:
            return 0.0
        if out is None or users is None or pos is None:
            raise ValueError(
                "LightGCNText's alignment is a term of the batch: call "
                "auxiliary_loss(out, users, pos, neg) with the step's encode() output"
            )
        ids = self.id_embedding.weight
        u = users.reshape(-1).unique()
        i = pos.reshape(-1).unique() + self.num_users
        if isinstance(out.extra, StepRows):
            proj_u, proj_i = out.extra.projected(u), out.extra.projected(i)
        else:
            proj_u, proj_i = out.extra[u], out.extra[i]
        user_term = info_nce(ids[u], proj_u, self.align_temperature)
        item_term = info_nce(ids[i], proj_i, self.align_temperature)
        return self.align_weight * 0.5 * (user_term + item_term)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.num_users}, {self.num_items}, "
            f"text_dim={self.text.size(1)}, dim={self.embedding_dim}, hidden={self.hidden_dim}, "
            f"num_layers={self.num_layers}, users={self.user_input}, "
            f"id_embedding={self.fusion}, item_bias={self.item_bias}, "
            f"align_weight={self.align_weight}, order={self.order}, "
            f"cold_view={self.cold_view})"
        )


class StepRows:
    """One training step's rows of a ``propagate_then_project`` :class:`LightGCNText`.

    Asked for the rows of some nodes (user indices, or item indices plus
    ``num_users``), it runs :meth:`LightGCNText.node_rows` on those it has not computed
    yet in this step and gathers the rest, so a node that is a positive, a negative and
    part of the alignment is projected once, and nodes the step never names are never
    projected.
    """

    def __init__(
        self, model: LightGCNText, ids: Tensor | None, swapped: Tensor | None = None
    ) -> None:
        self.model, self.ids, self.swapped = model, ids, swapped
        n = model.num_users + model.num_items
        self.where = torch.full((n,), -1, dtype=torch.long, device=model.text.device)
        self.parts: list[tuple[Tensor, Tensor, Tensor]] = []
        self.table: tuple[Tensor, Tensor, Tensor] | None = None
        self.count = 0

    def _rows(self, nodes: Tensor, which: int) -> Tensor:
        flat = nodes.reshape(-1)
        missing = flat[self.where[flat] < 0].unique()
        if missing.numel():
            self.where[missing] = torch.arange(
                self.count, self.count + missing.numel(), device=self.where.device
            )
            self.count += missing.numel()
            self.parts.append(self.model.node_rows(missing, self.ids, self.swapped))
            self.table = None
        if self.table is None:
            self.table = tuple(torch.cat(part) for part in zip(*self.parts, strict=True))
        rows = self.table[which].index_select(0, self.where[flat])
        return rows.reshape(*nodes.shape, rows.size(-1))

    def final(self, nodes: Tensor) -> Tensor:
        """Representations (normalised when the model is) of ``nodes``."""
        return self._rows(nodes, 0)

    def ego(self, nodes: Tensor) -> Tensor:
        """Layer-0 rows of ``nodes`` for the L2 term."""
        return self._rows(nodes, 1)

    def projected(self, nodes: Tensor) -> Tensor:
        """Text projections of ``nodes`` for the ID-text alignment."""
        return self._rows(nodes, 2)
