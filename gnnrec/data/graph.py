"""The heterogeneous cross-domain training graph (a PyG :class:`HeteroData`).

Only training interactions enter the graph: :func:`build_graph` takes the ``train``
table of a :class:`~gnnrec.data.split.Split`, never the raw data.

Node types are ``user``, ``item`` and ``domain``. Each domain ``d`` contributes the
relation ``(user, "interacts_<d>", item)`` and its reverse ``(item, "rev_interacts_<d>",
user)``; every item is linked to its domain by ``(item, "in_domain", domain)`` and
``(domain, "has_item", item)``. The item store keeps ``domain`` (the domain index of
each item), so domains are attributes and relation types, never id ranges.

The propagation operators built from these edges live in :mod:`gnnrec.nn`.
torch_geometric is imported when a graph is built, not with this module (it costs
seconds of start-up that runs without a graph-typed model do not need).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

if TYPE_CHECKING:
    from torch_geometric.data import HeteroData

__all__ = ["build_graph", "interaction_edges"]


def build_graph(
    num_users: int,
    item_domain: np.ndarray,
    domains: list[str],
    train: pd.DataFrame,
) -> HeteroData:
    """Build the heterogeneous training graph.

    Args:
        num_users: Number of user nodes.
        item_domain: ``int64[num_items]`` domain index of every item.
        domains: Domain names, indexed by ``domain_idx``.
        train: Training interactions with ``user_idx``, ``item_idx``, ``domain_idx``.

    Returns:
        A :class:`HeteroData` with node types ``user``, ``item`` and ``domain``.
    """
    from torch_geometric.data import HeteroData

    graph = HeteroData()
    graph["user"].num_nodes = num_users
    graph["item"].num_nodes = len(item_domain)
    graph["item"].domain = torch.tensor(item_domain, dtype=torch.long)
    graph["domain"].num_nodes = len(domains)
    graph["domain"].names = list(domains)
    user, item, dom = (
        torch.tensor(train[col].to_numpy(), dtype=torch.long)
        for col in ("user_idx", "item_idx", "domain_idx")
    )
    for d, name in enumerate(domains):
        mask = dom == d
        edge = torch.stack([user[mask], item[mask]])
        graph["user", f"interacts_{name}", "item"].edge_index = edge
        graph["item", f"rev_interacts_{name}", "user"].edge_index = edge.flip(0)
    items = torch.arange(len(item_domain))
    in_domain = torch.stack([items, graph["item"].domain])
    graph["item", "in_domain", "domain"].edge_index = in_domain
    graph["domain", "has_item", "item"].edge_index = in_domain.flip(0)
    return graph


def interaction_edges(graph: HeteroData) -> torch.Tensor:
    """All user -> item training edges of every domain, ``[2, E]``."""
    edges = [
        graph[edge_type].edge_index
        for edge_type in graph.edge_types
        if edge_type[0] == "user" and edge_type[2] == "item"
    ]
    return torch.cat(edges, dim=1) if edges else torch.zeros(2, 0, dtype=torch.long)
