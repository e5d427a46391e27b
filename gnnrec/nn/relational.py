"""R-GCN message passing on a precomputed sparse operator, with per-step edge masks.

:class:`RelationalOperator` factors the per-relation mean aggregation of R-GCN into two
CSR products; :func:`relational_conv` applies one PyG
:class:`~torch_geometric.nn.conv.RGCNConv`'s parameters through it. A step may pass an
edge mask (the link-prediction training of R-GCN removes the step's supervision edges
and drops others): the CSR structure stays, masked entries become zero and the means
are renormalised over the kept edges (:meth:`RelationalOperator.masked_values`), which
costs a few ``O(|E|)`` vector operations instead of rebuilding the matrices.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from gnnrec.nn.propagation import SparseMatmul

if TYPE_CHECKING:
    from torch_geometric.nn import RGCNConv

    from gnnrec.data.knowledge import RelationalGraph

__all__ = ["RelationalOperator", "relational_conv"]

_MATRICES = ("gather", "gather_t", "scatter", "scatter_t")


def relational_conv(
    conv: RGCNConv,
    x: Tensor,
    op: RelationalOperator,
    values: dict[str, Tensor] | None = None,
    root_mask: Tensor | None = None,
) -> Tensor:
    """``conv(x, edge_index, edge_type)[:op.num_targets]`` through the sparse operator.

    Args:
        conv: The layer whose ``weight``, ``comp``, ``root`` and ``bias`` are used.
        x: ``[num_nodes, d_in]`` node features.
        op: The operator of the graph.
        values: CSR values of :meth:`RelationalOperator.masked_values` (a reduced graph);
            ``None``: every edge.
        root_mask: ``[num_targets, 1]`` factor of the self-connection term (self-loop
            dropout); ``None``: kept for every node.
    """
    weight = conv.weight
    if conv.num_bases is not None:
        weight = (conv.comp @ weight.view(conv.num_bases, -1)).view(
            conv.num_relations, conv.in_channels_l, conv.out_channels
        )
    parts = []
    for r, h in enumerate(op.gather(x, values).split(op.sizes)):
        if not h.numel():
            continue
        if conv.num_blocks is not None:
            h = h.view(h.size(0), conv.num_blocks, -1)
            h = torch.einsum("abc,bcd->abd", h, weight[r]).reshape(h.size(0), -1)
        else:
            h = h @ weight[r]
        parts.append(h)
    if parts:
        out = op.scatter(torch.cat(parts), values)
    else:
        out = x.new_zeros(op.num_targets, conv.out_channels)
    if conv.root is not None:
        root = x[: op.num_targets] @ conv.root
        out = out + (root if root_mask is None else root * root_mask)
    if conv.bias is not None:
        out = out + conv.bias
    return out


class RelationalOperator(nn.Module):
    r"""Per-relation mean aggregation into the nodes ``0 .. num_targets - 1``, factored.

    :math:`\sum_r \mathbf{M}_r \mathbf{X} \Theta_r` (``M_r`` the row-normalised
    adjacency of relation ``r``) is computed as ``scatter(cat_r(gather(X)_r @ Theta_r))``
    with two sparse matrices: per relation, ``gather`` yields either the neighbour
    means of its targets (``scatter`` then places them) or its distinct source rows
    (``scatter`` then averages them into the targets), whichever has fewer rows, so
    :math:`\Theta_r` is applied to :math:`\min(|S_r|, |T_r|)` rows; ``has_item`` with
    three domains, for instance, transforms three rows. ``sizes[r]`` rows belong to
    relation ``r``. Each product's gradient is the product with the stored transpose,
    and the CSR parts are buffers, so they follow the module's device.

    Every edge into a target owns one entry of exactly one of the four CSR value arrays
    (``<matrix>_edge_pos``); the other entries are constant ones. A reduced graph
    (an edge mask) therefore has the same CSR structure with new values, computed by
    :meth:`masked_values`.

    Args:
        graph: The relational graph.
        num_targets: Aggregate into the first ``num_targets`` nodes only.
    """

    def __init__(self, graph: RelationalGraph, num_targets: int) -> None:
        super().__init__()
        self.num_nodes, self.num_targets = graph.num_nodes, num_targets
        src, dst = graph.edge_index
        edge_id = torch.nonzero(dst < num_targets).squeeze(1)
        src, dst, rel = src[edge_id], dst[edge_id], graph.edge_type[edge_id]
        _, group = torch.unique(rel * num_targets + dst, return_inverse=True)
        weight = 1.0 / torch.bincount(group).float()[group]
        local = torch.arange(edge_id.numel())
        gather, scatter, self.sizes = [], [], []
        for r in range(graph.num_relations):
            e = rel == r
            s, t, w, k = src[e], dst[e], weight[e], local[e]
            sources, s_row = torch.unique(s, return_inverse=True)
            targets, t_row = torch.unique(t, return_inverse=True)
            first = sum(self.sizes)
            if len(targets) <= len(sources):  # neighbour means of the targets
                n, none = len(targets), torch.full((len(targets),), -1)
                gather.append((first + t_row, s, w, k))
                scatter.append((targets, first + torch.arange(n), torch.ones(n), none))
            else:  # the distinct sources, averaged into the targets afterwards
                n, none = len(sources), torch.full((len(sources),), -1)
                gather.append((first + torch.arange(n), sources, torch.ones(n), none))
                scatter.append((t, first + s_row, w, k))
            self.sizes.append(n)
        self.num_rows = sum(self.sizes)
        self.register_buffer("edge_id", edge_id, persistent=False)
        self.register_buffer("edge_group", group, persistent=False)
        for name, parts, shape in (
            ("gather", gather, (self.num_rows, self.num_nodes)),
            ("scatter", scatter, (num_targets, self.num_rows)),
        ):
            row, col, value, edge = (torch.cat(p) for p in zip(*parts, strict=True))
            self._register_csr(name, row, col, value, edge, shape)
            self._register_csr(f"{name}_t", col, row, value, edge, shape[::-1])

    def _register_csr(
        self,
        name: str,
        row: Tensor,
        col: Tensor,
        value: Tensor,
        edge: Tensor,
        shape: tuple[int, int],
    ) -> None:
        """Store the CSR parts of the ``shape`` matrix (duplicates summed) and edge slots.

        ``edge[j]`` is the operator edge behind entry ``j`` (``-1``: a constant one);
        ``<name>_edge_pos`` / ``<name>_edge_of`` list where each edge's weight goes, and
        ``<name>_base`` holds the constant part of the values.
        """
        key, inverse = torch.unique(row * shape[1] + col, return_inverse=True)
        summed = torch.zeros(key.numel()).index_add_(0, inverse, value)
        is_edge = edge >= 0
        base = torch.zeros(key.numel()).index_add_(0, inverse[~is_edge], value[~is_edge])
        crow = torch.zeros(shape[0] + 1, dtype=torch.long)
        crow[1:] = torch.cumsum(torch.bincount(key // shape[1], minlength=shape[0]), 0)
        self.register_buffer(f"{name}_crow", crow, persistent=False)
        self.register_buffer(f"{name}_col", key % shape[1], persistent=False)
        self.register_buffer(f"{name}_value", summed, persistent=False)
        self.register_buffer(f"{name}_base", base, persistent=False)
        self.register_buffer(f"{name}_edge_pos", inverse[is_edge], persistent=False)
        self.register_buffer(f"{name}_edge_of", edge[is_edge], persistent=False)

    def masked_values(self, keep: Tensor) -> dict[str, Tensor]:
        """CSR values of the operator of the graph's edges with ``keep`` true.

        Means are taken over the kept edges of every (relation, target); a target left
        with none of a relation gets no message from it.

        Args:
            keep: ``bool[E]`` over the edges of the relational graph the operator was
                built from (all of them, not only those into the targets).
        """
        kept = keep[self.edge_id].to(self.gather_value.dtype)
        count = torch.zeros_like(kept).index_add_(0, self.edge_group, kept)
        weight = kept / count.clamp(min=1)[self.edge_group]
        return {
            name: getattr(self, f"{name}_base").index_add(
                0, getattr(self, f"{name}_edge_pos"), weight[getattr(self, f"{name}_edge_of")]
            )
            for name in _MATRICES
        }

    def _matrix(self, name: str, shape: tuple[int, int], values: Tensor | None) -> Tensor:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(
                getattr(self, f"{name}_crow"),
                getattr(self, f"{name}_col"),
                getattr(self, f"{name}_value") if values is None else values,
                size=shape,
                check_invariants=False,
            )

    def _product(
        self, name: str, rows: int, cols: int, x: Tensor, values: dict[str, Tensor] | None
    ) -> Tensor:
        matrix = self._matrix(name, (rows, cols), None if values is None else values[name])
        matrix_t = self._matrix(
            f"{name}_t", (cols, rows), None if values is None else values[f"{name}_t"]
        )
        if matrix.dtype != x.dtype:
            matrix, matrix_t = matrix.to(x.dtype), matrix_t.to(x.dtype)
        return SparseMatmul.apply(matrix, matrix_t, x)

    def gather(self, x: Tensor, values: dict[str, Tensor] | None = None) -> Tensor:
        """``[num_rows, d]`` per-relation rows from node features ``[num_nodes, d]``."""
        return self._product("gather", self.num_rows, self.num_nodes, x, values)

    def scatter(self, h: Tensor, values: dict[str, Tensor] | None = None) -> Tensor:
        """``[num_targets, d]`` sums of the transformed rows ``[num_rows, d]``."""
        return self._product("scatter", self.num_targets, self.num_rows, h, values)
