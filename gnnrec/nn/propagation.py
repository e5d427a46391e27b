"""Sparse propagation on torch CSR tensors: the normalised bipartite adjacency and
differentiable products with constant sparse matrices.

On CPU, ``torch.addmm`` with ``beta=0`` takes a faster sparse-dense kernel than the
``@`` operator (about 4x in an ad-hoc measurement during development); every product
here goes through it.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

__all__ = [
    "LayerMeanPropagation",
    "SparseMatmul",
    "SymmetricSpMM",
    "bipartite_adjacency",
    "normalized_adjacency",
    "spmm",
]


def normalized_adjacency(graph, dtype: torch.dtype = torch.float32) -> Tensor:
    """:func:`bipartite_adjacency` of every user -> item training edge of a training graph.

    Args:
        graph: A :class:`~torch_geometric.data.HeteroData` of
            :func:`gnnrec.data.graph.build_graph`.
    """
    from gnnrec.data.graph import interaction_edges

    edges = interaction_edges(graph)
    return bipartite_adjacency(
        edges[0], edges[1], graph["user"].num_nodes, graph["item"].num_nodes, dtype=dtype
    )


def bipartite_adjacency(
    users: torch.Tensor,
    items: torch.Tensor,
    num_users: int,
    num_items: int,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    r"""Symmetric normalised adjacency of a bipartite user-item graph.

    .. math::
        \tilde{A} = D^{-1/2} A D^{-1/2}, \qquad
        A = \begin{pmatrix} 0 & R \\ R^\top & 0 \end{pmatrix}

    over ``num_users + num_items`` nodes (users first), with ``R`` the deduplicated
    binary user-item matrix of the given edges. Nodes with no edge have zero rows.

    Args:
        users: ``[E]`` user id of every edge.
        items: ``[E]`` item id of every edge (``0 .. num_items - 1``).
        num_users: Number of user nodes.
        num_items: Number of item nodes.
        dtype: Value dtype (degrees are computed in float64).

    Returns:
        A sparse CSR tensor ``[num_users + num_items, num_users + num_items]`` on CPU.
    """
    users = torch.as_tensor(users, dtype=torch.long).cpu()
    items = torch.as_tensor(items, dtype=torch.long).cpu()
    if users.shape != items.shape or users.dim() != 1:
        raise ValueError(
            f"users and items must be 1-D and equally long, got {tuple(users.shape)} "
            f"and {tuple(items.shape)}"
        )
    if users.numel() and (
        users.min() < 0 or users.max() >= num_users or items.min() < 0 or items.max() >= num_items
    ):
        raise ValueError(
            f"edge ids out of range: users must be in [0, {num_users}) and items in "
            f"[0, {num_items})"
        )
    num_nodes = num_users + num_items
    key = torch.unique(users * num_items + items)
    row = torch.cat([key // num_items, key % num_items + num_users])
    col = torch.cat([key % num_items + num_users, key // num_items])
    deg = torch.bincount(row, minlength=num_nodes).to(torch.float64)
    inv_sqrt = deg.pow(-0.5)
    inv_sqrt[deg == 0] = 0.0
    value = (inv_sqrt[row] * inv_sqrt[col]).to(dtype)
    order = torch.argsort(row * num_nodes + col)
    row, col, value = row[order], col[order], value[order]
    crow = torch.zeros(num_nodes + 1, dtype=torch.long)
    crow[1:] = torch.cumsum(torch.bincount(row, minlength=num_nodes), 0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            crow, col, value, size=(num_nodes, num_nodes), check_invariants=False
        )


class SymmetricSpMM(torch.autograd.Function):
    r"""``adj @ x`` for a constant symmetric sparse ``adj``, differentiable in ``x``.

    The gradient of :math:`Y = A X` is :math:`A^\top G = A G`, so the backward pass is
    the same sparse product. ``torch.addmm`` with ``beta=0`` is used for both: on CPU
    it takes a faster sparse-dense kernel than the ``@`` operator (see
    :class:`LayerMeanPropagation`). ``adj`` gets no gradient.
    """

    @staticmethod
    def forward(ctx, adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.adj = adj
        return torch.addmm(x, adj, x, beta=0.0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous()
        return None, torch.addmm(grad, ctx.adj, grad, beta=0.0)


class LayerMeanPropagation(torch.autograd.Function):
    r"""LightGCN's layer combination :math:`\sum_{k=0}^{K} \alpha_k \tilde{A}^k X` in one op.

    The map is linear in ``X`` and ``A`` is symmetric, so the gradient is the same
    polynomial applied to the incoming gradient, evaluated by Horner's rule. No layer
    output is kept for the backward pass, and each pass is ``K`` sparse products.
    ``torch.addmm`` computes each ``a_k x + A @ out`` in one call; on CPU it takes a
    faster sparse-dense kernel than the ``@`` operator (about 4x in an ad-hoc
    measurement during development).
    """

    @staticmethod
    def forward(ctx, adj: torch.Tensor, x: torch.Tensor, alpha: tuple[float, ...]):
        ctx.adj, ctx.alpha = adj, alpha
        return _layer_polynomial(adj, x, alpha)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, _layer_polynomial(ctx.adj, grad.contiguous(), ctx.alpha), None


def _layer_polynomial(adj: torch.Tensor, x: torch.Tensor, alpha: tuple[float, ...]) -> torch.Tensor:
    # Horner: sum_k a_k A^k x = a_0 x + A(a_1 x + A(a_2 x + ... A(a_K x))), one fused
    # addmm (a_k x + A @ out) per layer.
    out = x * alpha[-1]
    for a in reversed(alpha[:-1]):
        out = torch.addmm(x, adj, out, beta=a)
    return out


def spmm(adj: Tensor, x: Tensor) -> Tensor:
    """``adj @ x`` for a sparse CSR ``adj`` through the faster ``addmm`` kernel."""
    return torch.addmm(x.new_empty(adj.size(0), x.size(1)), adj, x, beta=0.0)


class SparseMatmul(torch.autograd.Function):
    """``adj @ x`` with the gradient ``adj_t @ grad``; ``adj`` gets no gradient.

    For a constant, not necessarily symmetric, sparse matrix whose transpose is stored
    beside it (``adj_t``).
    """

    @staticmethod
    def forward(ctx, adj: Tensor, adj_t: Tensor, x: Tensor) -> Tensor:
        ctx.adj_t = adj_t
        return spmm(adj, x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return None, None, spmm(ctx.adj_t, grad.contiguous())
