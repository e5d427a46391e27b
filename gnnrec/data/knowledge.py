"""Knowledge-graph tensors and the typed homogeneous graph R-GCN propagates on.

:func:`knowledge_graph` turns the raw KG tables of :class:`~gnnrec.data.schema.InteractionData`
(``kg``: string ``head, relation, tail``; ``item_entity``: ``item_idx -> entity``) into a
:class:`KnowledgeGraph` over contiguous entity and relation ids.

:func:`relational_graph` flattens the heterogeneous *training* graph of
:func:`~gnnrec.data.graph.build_graph` (and optionally the KG) into one
:class:`RelationalGraph`: nodes ordered users, items, domains, entities, and one relation
per :class:`HeteroData` edge type (``interacts_<d>``, ``rev_interacts_<d>``,
``in_domain``, ``has_item``), per KG relation ``r`` and its inverse ``rev_<r>``, and the
item-entity links ``same_as`` / ``rev_same_as``. The edges are read from the
:class:`HeteroData`, so only the training interactions it was built from appear.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import Tensor

if TYPE_CHECKING:
    from torch_geometric.data import HeteroData

from gnnrec.data.schema import DataError

__all__ = ["KnowledgeGraph", "RelationalGraph", "knowledge_graph", "relational_graph"]

KG_COLUMNS = ("head", "relation", "tail")
LINK_COLUMNS = ("item_idx", "entity")
ENTITY = "entity"
SAME_AS = "same_as"
NODE_ORDER = ("user", "item", "domain")


@dataclass
class KnowledgeGraph:
    """A knowledge graph over contiguous ids, linked to the items.

    Attributes:
        triples: ``int64[T, 3]``: ``(head entity, relation, tail entity)``, deduplicated.
        item_entity: ``int64[num_items]``: the entity linked to each item, ``-1`` if none.
        num_entities: Entities ``0 .. num_entities - 1`` (every triple end and every
            linked entity; sorted raw ids).
        relation_names: Raw name of every relation id (sorted).
    """

    triples: Tensor
    item_entity: Tensor
    num_entities: int
    relation_names: list[str]

    @property
    def num_relations(self) -> int:
        return len(self.relation_names)

    @property
    def num_linked_items(self) -> int:
        return int((self.item_entity >= 0).sum())

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(entities={self.num_entities}, "
            f"relations={self.num_relations}, triples={len(self.triples)}, "
            f"linked_items={self.num_linked_items}/{len(self.item_entity)})"
        )


def _check_table(df: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(
            f"{what} table is missing column(s) {missing}; found columns {list(df.columns)}. "
            f"Expected {list(columns)} (see gnnrec.data.schema.InteractionData)."
        )
    for col in columns:
        nulls = int(df[col].isna().sum())
        if nulls:
            raise DataError(f"{what} table column {col!r} has {nulls} empty value(s)")


def knowledge_graph(
    kg: pd.DataFrame | None, item_entity: pd.DataFrame | None, num_items: int
) -> KnowledgeGraph | None:
    """Convert the raw KG tables to a :class:`KnowledgeGraph`.

    Args:
        kg: Triples with string columns ``head``, ``relation``, ``tail``; ``None`` when
            the data has no knowledge graph.
        item_entity: Links with columns ``item_idx`` (``0 .. num_items - 1``) and
            ``entity`` (raw entity id); ``None`` when there are none.
        num_items: Number of items.

    Returns:
        The knowledge graph, or ``None`` when ``kg`` is ``None``. Duplicate triples are
        kept once; entities and relations are numbered in sorted order of their raw ids.

    Raises:
        DataError: A column is missing or empty, a link's ``item_idx`` is out of range,
            or an item is linked to more than one entity.
    """
    if kg is None:
        return None
    _check_table(kg, KG_COLUMNS, "kg")
    head, relation, tail = (kg[c].astype(str).to_numpy(dtype=object) for c in KG_COLUMNS)
    links = None
    if item_entity is not None:
        _check_table(item_entity, LINK_COLUMNS, "item_entity")
        links = item_entity.drop_duplicates(list(LINK_COLUMNS))
        item_idx = pd.to_numeric(links["item_idx"], errors="coerce")
        bad = item_idx.isna() | (item_idx < 0) | (item_idx >= num_items)
        if bad.any():
            value = links.loc[bad, "item_idx"].astype(str).iloc[0]
            raise DataError(
                f"item_entity column 'item_idx' has value {value} outside [0, {num_items}); "
                "links must use the preprocessed item ids"
            )
        dup = links["item_idx"].duplicated()
        if dup.any():
            item = int(links.loc[dup, "item_idx"].iloc[0])
            raise DataError(
                f"item_entity links item_idx {item} to more than one entity "
                f"({sorted(links.loc[links['item_idx'] == item, 'entity'].astype(str))}); "
                "keep one link per item"
            )
    linked = links["entity"].astype(str).to_numpy(dtype=object) if links is not None else []
    entities = np.unique(np.concatenate([head, tail, np.asarray(linked, dtype=object)]))
    relations = np.unique(relation)
    index = pd.Index(entities)
    triples = np.stack(
        [
            index.get_indexer(head),
            pd.Index(relations).get_indexer(relation),
            index.get_indexer(tail),
        ],
        axis=1,
    ).astype(np.int64)
    triples = np.unique(triples, axis=0) if len(triples) else triples.reshape(0, 3)
    item_ent = torch.full((num_items,), -1, dtype=torch.long)
    if links is not None and len(links):
        rows = torch.tensor(links["item_idx"].to_numpy(dtype=np.int64))
        item_ent[rows] = torch.tensor(index.get_indexer(linked), dtype=torch.long)
    else:
        warnings.warn(
            "the knowledge graph has no item_entity links, so it is not connected to any "
            "item; give the data a .link / item_entity table",
            stacklevel=2,
        )
    return KnowledgeGraph(
        triples=torch.from_numpy(triples),
        item_entity=item_ent,
        num_entities=len(entities),
        relation_names=[str(r) for r in relations],
    )


@dataclass
class RelationalGraph:
    """A typed homogeneous graph: every node type in one id range, edges labelled.

    Attributes:
        edge_index: ``int64[2, E]`` (source, target) global node ids, grouped (sorted)
            by relation.
        edge_type: ``int64[E]`` relation id of every edge, non-decreasing.
        num_nodes: Total node count.
        offsets: First global id of every node type (``user``, ``item``, ``domain``,
            optionally ``entity``), in that order.
        num_nodes_per_type: Node count of every node type.
        relation_names: Name of every relation id.
    """

    edge_index: Tensor
    edge_type: Tensor
    num_nodes: int
    offsets: dict[str, int]
    num_nodes_per_type: dict[str, int]
    relation_names: list[str]

    @property
    def num_relations(self) -> int:
        return len(self.relation_names)

    @property
    def num_edges(self) -> int:
        return self.edge_index.size(1)

    def edges_of(self, relation: str) -> Tensor:
        """``[2, E_r]`` global-id edges of one relation."""
        return self.edge_index[:, self.edge_type == self.relation_names.index(relation)]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_nodes={self.num_nodes}, num_edges={self.num_edges}, "
            f"num_relations={self.num_relations}, nodes={self.num_nodes_per_type})"
        )


def relational_graph(graph: HeteroData, kg: KnowledgeGraph | None = None) -> RelationalGraph:
    """Flatten the training :class:`HeteroData` (and a KG) into a :class:`RelationalGraph`.

    Args:
        graph: The training graph of :func:`~gnnrec.data.graph.build_graph`.
        kg: Optional knowledge graph; its entities become nodes after the graph's.

    Returns:
        The relational graph. Relations: the graph's edge types in their order (named by
        their relation, or ``src__rel__dst`` if a name repeats), then per KG relation
        ``r`` the pair ``r`` (head -> tail) and ``rev_<r>``, then ``same_as``
        (item -> entity) and ``rev_same_as``.
    """
    node_types = [t for t in NODE_ORDER if t in graph.node_types]
    node_types += [t for t in graph.node_types if t not in NODE_ORDER]
    if "user" not in node_types or "item" not in node_types:
        raise ValueError(f"graph needs node types 'user' and 'item', has {graph.node_types}")
    if ENTITY in node_types:
        raise ValueError(f"graph already has a node type {ENTITY!r}; rename it")
    sizes = {t: int(graph[t].num_nodes) for t in node_types}
    if kg is not None:
        if len(kg.item_entity) != sizes["item"]:
            raise ValueError(
                f"knowledge graph links {len(kg.item_entity)} items, the graph has {sizes['item']}"
            )
        sizes[ENTITY] = kg.num_entities
    offsets = dict(zip(sizes, np.cumsum([0, *sizes.values()])[:-1].tolist(), strict=True))

    names = [rel for _, rel, _ in graph.edge_types]
    if len(set(names)) < len(names):
        names = ["__".join(et) for et in graph.edge_types]
    edges = [
        graph[et].edge_index + torch.tensor([[offsets[et[0]]], [offsets[et[2]]]])
        for et in graph.edge_types
    ]
    if kg is not None:
        ent = offsets[ENTITY]
        head, rel, tail = (kg.triples[:, c] + (ent if c != 1 else 0) for c in range(3))
        for r, name in enumerate(kg.relation_names):
            mask = rel == r
            forward = torch.stack([head[mask], tail[mask]])
            edges += [forward, forward.flip(0)]
            names += [name, f"rev_{name}"]
        items = torch.nonzero(kg.item_entity >= 0).squeeze(1)
        same_as = torch.stack([items + offsets["item"], kg.item_entity[items] + ent])
        edges += [same_as, same_as.flip(0)]
        names += [SAME_AS, f"rev_{SAME_AS}"]
    if len(set(names)) < len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"relation name(s) {dup} occur twice; rename the KG relation(s)")
    counts = torch.tensor([e.size(1) for e in edges], dtype=torch.long)
    return RelationalGraph(
        edge_index=torch.cat(edges, dim=1).long(),
        edge_type=torch.repeat_interleave(torch.arange(len(edges)), counts),
        num_nodes=sum(sizes.values()),
        offsets=offsets,
        num_nodes_per_type=sizes,
        relation_names=names,
    )
