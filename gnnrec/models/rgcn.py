"""R-GCN over the typed user-item-domain(-entity) training graph.

Schlichtkrull et al., "Modeling Relational Data with Graph Convolutional Networks",
ESWC 2018. https://arxiv.org/abs/1703.06103
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import HeteroData
from torch_geometric.nn import RGCNConv

from gnnrec.data.knowledge import KnowledgeGraph, RelationalGraph, relational_graph
from gnnrec.models.base import Recommender, StepOutputs
from gnnrec.nn.relational import RelationalOperator, relational_conv

__all__ = ["RGCN"]

Decoder = Literal["dot", "distmult"]
DECODERS = get_args(Decoder)


class RGCN(Recommender):
    r"""Relational GCN encoder with a dot-product or DistMult user-item decoder.

    The training :class:`HeteroData` (and, with ``use_kg``, the knowledge graph) is
    flattened by :func:`~gnnrec.data.knowledge.relational_graph` into one graph whose
    relations are each domain's ``interacts_<d>`` and ``rev_interacts_<d>``,
    ``in_domain``, ``has_item``, every KG relation and its inverse, and ``same_as``
    item-entity links in both directions. Each layer is

    .. math::
        \mathbf{h}^{(l+1)}_i = \Theta^{(l)}_{\mathrm{root}}\,\mathbf{h}^{(l)}_i
        + \sum_{r \in \mathcal{R}} \sum_{j \in \mathcal{N}_r(i)}
          \frac{1}{|\mathcal{N}_r(i)|}\,\Theta^{(l)}_r\,\mathbf{h}^{(l)}_j + \mathbf{b}^{(l)}

    with ReLU between layers (none after the last) and either the basis decomposition
    :math:`\Theta_r = \sum_{b=1}^{B} a_{rb} \mathbf{V}_b` (``num_bases``) or the
    block-diagonal one :math:`\Theta_r = \operatorname{diag}(\mathbf{Q}_{r1}, \dots,
    \mathbf{Q}_{rB})` (``num_blocks``). Layer-0 features are learnable embeddings for
    users, domains and entities; items use a learnable linear projection of frozen text
    embeddings when given, else learnable embeddings. With ``residual`` the output is
    :math:`\mathbf{e} = \mathbf{h}^{(L)} + \mathbf{h}^{(0)}`, else
    :math:`\mathbf{h}^{(L)}`. Scores:

    .. math::
        \hat{y}_{ui} = \mathbf{e}_u^\top \mathbf{e}_i \;\; (\text{dot}), \qquad
        \hat{y}_{ui} = \mathbf{e}_u^\top \operatorname{diag}(\mathbf{w})\,\mathbf{e}_i
        \;\; (\text{distmult})

    and ``forward`` folds :math:`\mathbf{w}` into the user side, so evaluation by dot
    product ranks by either decoder. Items without training edges (cold items) still get
    :math:`\Theta_{\mathrm{root}}` of their text features, plus their domain's and KG
    neighbours' messages.

    **Training as link prediction** (Schlichtkrull et al., the link-prediction model and
    its experimental setup): a training step's encoder propagates on
    the training graph *without* the step's supervision pairs, so a user cannot score a
    positive by the message it just received from it (without this, BPR is solved by
    the edge itself: near-zero train loss, near-chance ranking of held-out items). With
    ``mask_supervision`` every batch pair ``(u, i)`` loses its ``interacts_<d>`` and
    ``rev_interacts_<d>`` edges; ``edge_dropout`` drops every other user-item pair (both
    directions) with that probability, and ``self_loop_dropout`` drops the
    :math:`\Theta_{\mathrm{root}}` term of that fraction of nodes (the paper's edge
    dropout: 0.2 for self-loops, 0.4 for other edges, on FB15k and WN18; 0.4 here drops
    only user-item pairs, domain and KG edges are kept). The means
    :math:`1/|\mathcal{N}_r(i)|` follow the reduced graph: the operator keeps its CSR
    structure and recomputes its values from the kept edges
    (:meth:`~gnnrec.nn.relational.RelationalOperator.masked_values`), a few
    :math:`O(|E|)` vector operations per step. Evaluation (eval mode, ``forward()``)
    propagates on every training edge. ``weight_decay`` puts the R-GCN layers (and the
    DistMult relation) in their own optimiser group, the paper's L2 on the weights.

    Parameters live in PyG :class:`~torch_geometric.nn.conv.RGCNConv` layers (their
    ``weight``, ``comp``, ``root`` and ``bias``), but messages are aggregated by a
    precomputed sparse operator that equals ``RGCNConv.forward`` (tested to 1e-6).
    Without ``pyg-lib`` (no ``segment_matmul``), ``RGCNConv.forward`` loops over
    relations and multiplies a dense ``[num_nodes, d]`` aggregate by every
    :math:`\Theta_r`, costing :math:`O(|\mathcal{R}| N d^2)`; ``is_sorted`` only helps
    the ``segment_matmul`` path, ``SparseTensor`` input needs ``torch-sparse``, and
    :class:`~torch_geometric.nn.conv.FastRGCNConv` materialises a weight per edge
    (:math:`|E| d^2` floats: 6.3 GB on ML-100K + KG with bases, 0.8 GB with 8 blocks).
    Here, per relation, :math:`\Theta_r` is applied to
    :math:`\min(|\text{sources}_r|, |\text{targets}_r|)` rows (neighbour means of the
    targets, or the distinct sources averaged afterwards: ``has_item`` transforms one
    row per domain), with two CSR products per layer, and the last layer computes user
    and item rows only. Two layers forward+backward, ``d`` = 64, basis 8, 1 thread of a
    shared 2-core CPU: ML-100K + KG (37,254 nodes, 386,050 edges, 54 relations)
    ``RGCNConv`` 1.8-3.0 s (``is_sorted`` the same), ``FastRGCNConv`` 1.2 s on a 5%
    edge sample, this operator 0.07-0.13 s; Amazon Books/CDs/Movies (95,759 nodes,
    459,412 edges, 8 relations) ``RGCNConv`` 1.6 s, this operator 0.22-0.29 s.

    Args:
        num_users: Number of users.
        num_items: Number of items (all domains).
        graph: The training graph of :func:`~gnnrec.data.graph.build_graph`.
        knowledge_graph: Optional KG whose entities become extra nodes.
        item_text_emb: ``[num_items, d_text]`` frozen item text embeddings; ``None``
            gives learnable item embeddings.
        use_kg: Use ``knowledge_graph``; ``False`` ignores it.
        embedding_dim: Size of every layer.
        num_layers: R-GCN layers ``L``.
        num_bases: Bases of the basis decomposition (``None``: off).
        num_blocks: Blocks of the block-diagonal decomposition (``None``: off); must
            divide ``embedding_dim``. Both ``None``: a full matrix per relation.
        root_weight: Add :math:`\Theta_{\mathrm{root}} \mathbf{h}_i` (self-connection).
        residual: Add the layer-0 features to the output.
        decoder: ``"dot"`` or ``"distmult"``.
        dropout: Dropout on the input of every layer.
        init_std: Standard deviation of the embeddings' normal initialisation.
        mask_supervision: Training steps propagate without their supervision edges.
        edge_dropout: Probability that a training step drops a (non-supervision)
            user-item pair from message passing.
        self_loop_dropout: Probability that a training step drops a node's
            self-connection term.
        weight_decay: Weight decay of the R-GCN layers' parameter group (``None``: the
            optimiser's).

    Shapes:
        forward: ``() -> ([num_users, embedding_dim], [num_items, embedding_dim])``
        encode: ``([B], [B]) -> StepOutputs`` of the same shapes
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        graph: HeteroData,
        knowledge_graph: KnowledgeGraph | None = None,
        item_text_emb: Tensor | None = None,
        use_kg: bool = True,
        embedding_dim: int = 64,
        num_layers: int = 2,
        num_bases: int | None = 8,
        num_blocks: int | None = None,
        root_weight: bool = True,
        residual: bool = False,
        decoder: Decoder = "dot",
        dropout: float = 0.0,
        init_std: float = 0.1,
        mask_supervision: bool = True,
        edge_dropout: float = 0.0,
        self_loop_dropout: float = 0.0,
        weight_decay: float | None = None,
    ) -> None:
        super().__init__()
        if (graph["user"].num_nodes, graph["item"].num_nodes) != (num_users, num_items):
            raise ValueError(
                f"graph has {graph['user'].num_nodes} users and {graph['item'].num_nodes} "
                f"items, expected {num_users} and {num_items}"
            )
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
        if num_bases is not None and num_blocks is not None:
            raise ValueError("set at most one of num_bases and num_blocks")
        if num_blocks is not None and embedding_dim % num_blocks:
            raise ValueError(f"num_blocks={num_blocks} must divide embedding_dim={embedding_dim}")
        if num_layers < 0:
            raise ValueError(f"num_layers must be >= 0, got {num_layers}")
        for key, rate in (("edge_dropout", edge_dropout), ("self_loop_dropout", self_loop_dropout)):
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"{key} must be in [0, 1), got {rate}")
        if weight_decay is not None and weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0 or null, got {weight_decay}")
        if item_text_emb is not None and item_text_emb.size(0) != num_items:
            raise ValueError(
                f"item_text_emb must have num_items = {num_items} rows, got "
                f"{tuple(item_text_emb.shape)}"
            )
        self.num_users, self.num_items = num_users, num_items
        self.embedding_dim, self.num_layers = embedding_dim, num_layers
        self.num_bases, self.num_blocks = num_bases, num_blocks
        self.use_kg, self.residual, self.decoder = use_kg, residual, decoder
        self.dropout, self.init_std = dropout, init_std
        self.mask_supervision, self.edge_dropout = mask_supervision, edge_dropout
        self.self_loop_dropout, self.weight_decay = self_loop_dropout, weight_decay

        rel = relational_graph(graph, knowledge_graph if use_kg else None)
        self.num_nodes, self.relation_names = rel.num_nodes, rel.relation_names
        self.num_nodes_per_type = rel.num_nodes_per_type
        self.register_buffer("edge_index", rel.edge_index, persistent=False)
        self.register_buffer("edge_type", rel.edge_type, persistent=False)
        num_out = num_users + num_items  # users then items come first in the node order
        self.hidden_operator = RelationalOperator(rel, rel.num_nodes)
        self.output_operator = RelationalOperator(rel, num_out)
        self.register_buffer("pair_key", _pair_keys(rel, num_users, num_items), persistent=False)
        pair_edges = self.pair_key >= 0
        pairs, pair_id = torch.unique(self.pair_key[pair_edges], return_inverse=True)
        self.register_buffer("pairs", pairs, persistent=False)  # sorted distinct pair keys
        self.register_buffer("pair_edges", torch.nonzero(pair_edges).squeeze(1), persistent=False)
        self.register_buffer("pair_id", pair_id, persistent=False)

        self.user_embedding = nn.Embedding(num_users, embedding_dim)
        if item_text_emb is None:
            self.register_buffer("item_text", None)
            self.item_embedding = nn.Embedding(num_items, embedding_dim)
            self.item_projection = None
        else:
            text = item_text_emb.detach().float()
            self.register_buffer("item_text", text, persistent=False)
            self.item_embedding = None
            self.item_projection = nn.Linear(text.size(1), embedding_dim)
        self.node_embedding = nn.Embedding(rel.num_nodes - num_out, embedding_dim)
        self.convs = nn.ModuleList(
            RGCNConv(
                embedding_dim,
                embedding_dim,
                rel.num_relations,
                num_bases=num_bases,
                num_blocks=num_blocks,
                root_weight=root_weight,
            )
            for _ in range(num_layers)
        )
        self.relation = nn.Parameter(torch.empty(embedding_dim)) if decoder == "distmult" else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for emb in (self.user_embedding, self.item_embedding, self.node_embedding):
            if emb is not None:
                nn.init.normal_(emb.weight, std=self.init_std)
        if self.item_projection is not None:
            self.item_projection.reset_parameters()
        for conv in self.convs:
            conv.reset_parameters()
        if self.relation is not None:
            nn.init.ones_(self.relation)

    @property
    def num_relations(self) -> int:
        return len(self.relation_names)

    def item_features(self) -> Tensor:
        """``[num_items, embedding_dim]`` layer-0 item features (projected text or IDs)."""
        if self.item_projection is None:
            return self.item_embedding.weight
        return self.item_projection(self.item_text)

    def ego_embeddings(self) -> tuple[Tensor, Tensor]:
        """Layer-0 user and item features, the ones L2 regularisation applies to."""
        return self.user_embedding.weight, self.item_features()

    def forward(self) -> tuple[Tensor, Tensor]:
        """User and item representations; DistMult's relation is folded into the users."""
        return self.encode().final

    def edge_mask(self, users: Tensor | None = None, pos: Tensor | None = None) -> Tensor | None:
        """``bool[E]`` edges of the relational graph a training step propagates on.

        In training mode, the pairs ``(users[b], pos[b])`` lose both their
        ``interacts_<d>`` and ``rev_interacts_<d>`` edges (with ``mask_supervision``),
        and every other user-item pair loses both with probability ``edge_dropout``
        (drawn from torch's global generator). ``None``: every edge (eval mode, or
        nothing to remove).
        """
        drop_pairs = self.mask_supervision and users is not None and pos is not None
        if not self.training or not (drop_pairs or self.edge_dropout):
            return None
        pair_keep = torch.ones_like(self.pairs, dtype=torch.bool)
        if drop_pairs and self.pairs.numel():
            keys = users.to(self.pairs.device) * self.num_items + pos.to(self.pairs.device)
            slot = torch.searchsorted(self.pairs, keys).clamp(max=self.pairs.numel() - 1)
            pair_keep[slot[self.pairs[slot] == keys]] = False
        if self.edge_dropout:
            pair_keep &= torch.rand(self.pairs.numel()).to(pair_keep.device) >= self.edge_dropout
        keep = torch.ones_like(self.pair_key, dtype=torch.bool)
        keep[self.pair_edges] = pair_keep[self.pair_id]
        return keep

    def encode(self, users: Tensor | None = None, pos: Tensor | None = None) -> StepOutputs:
        """Representations on the step's graph and the layer-0 features, in one pass.

        In eval mode, or without supervision pairs and edge dropout, this is the full
        training graph (``forward``); in training mode the graph of :meth:`edge_mask`.
        """
        keep = self.edge_mask(users, pos)
        values = {}
        if keep is not None:
            values = {
                "hidden": self.hidden_operator.masked_values(keep),
                "output": self.output_operator.masked_values(keep),
            }
        item0 = self.item_features()
        x0 = torch.cat([self.user_embedding.weight, item0, self.node_embedding.weight])
        with torch.autocast(x0.device.type, enabled=False):
            h = x0.to(self.user_embedding.weight.dtype)  # the sparse products run unautocast
            for layer, conv in enumerate(self.convs):
                h = F.dropout(h, self.dropout, self.training)
                last = layer == self.num_layers - 1
                which = "output" if last else "hidden"
                op = self.output_operator if last else self.hidden_operator
                root_mask = None
                if self.training and self.self_loop_dropout:
                    root_mask = torch.rand(op.num_targets, 1, device=h.device)
                    root_mask = (root_mask >= self.self_loop_dropout).to(h.dtype)
                h = relational_conv(conv, h, op, values.get(which), root_mask)
                if not last:
                    h = F.relu(h)
        num_out = self.num_users + self.num_items
        if self.residual and self.num_layers:
            h = h + x0[:num_out]
        users_h, items_h = h[:num_out].split([self.num_users, self.num_items])
        if self.relation is not None:
            users_h = users_h * self.relation
        return StepOutputs((users_h, items_h), (self.user_embedding.weight, item0))

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The R-GCN layers (and DistMult's relation) with ``weight_decay`` when set.

        The embeddings and the text projection take the optimiser's weight decay (the
        loss's L2 term regularises their batch rows).
        """
        if self.weight_decay is None:
            return super().parameter_groups()
        decayed = [p for p in self.convs.parameters() if p.requires_grad]
        if self.relation is not None:
            decayed.append(self.relation)
        ids = {id(p) for p in decayed}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        groups = [{"params": decayed, "weight_decay": self.weight_decay}] if decayed else []
        return groups + ([{"params": rest}] if rest else [])

    def __repr__(self) -> str:
        if self.num_bases is not None:
            weights = f"num_bases={self.num_bases}"
        elif self.num_blocks is not None:
            weights = f"num_blocks={self.num_blocks}"
        else:
            weights = "full"
        return (
            f"{type(self).__name__}({self.num_users}, {self.num_items}, "
            f"dim={self.embedding_dim}, num_layers={self.num_layers}, "
            f"num_nodes={self.num_nodes}, num_relations={self.num_relations}, {weights}, "
            f"decoder={self.decoder}, text={self.item_projection is not None})"
        )


def _pair_keys(rel: RelationalGraph, num_users: int, num_items: int) -> Tensor:
    """``int64[E]`` ``user * num_items + item`` of every user-item edge (either way), else -1.

    Users are nodes ``0 .. num_users - 1`` and items the next ``num_items`` nodes.
    """
    src, dst = rel.edge_index
    src_item = (src >= num_users) & (src < num_users + num_items)
    dst_item = (dst >= num_users) & (dst < num_users + num_items)
    forward = (src < num_users) & dst_item
    backward = src_item & (dst < num_users)
    key = torch.full_like(src, -1)
    key[forward] = src[forward] * num_items + dst[forward] - num_users
    key[backward] = dst[backward] * num_items + src[backward] - num_users
    return key
