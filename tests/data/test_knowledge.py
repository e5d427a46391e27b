import numpy as np
import pandas as pd
import pytest
import torch

from gnnrec.data import (
    AtomicSource,
    DataError,
    FolderSource,
    KnowledgeGraph,
    knowledge_graph,
    load_dataset,
    relational_graph,
)
from gnnrec.data.graph import build_graph
from gnnrec.data.split import split_interactions


@pytest.fixture
def kg_tables():
    kg = pd.DataFrame(
        {
            "head": ["m.b", "m.b", "m.a", "m.b"],
            "relation": ["film.genre", "film.actor", "film.genre", "film.genre"],
            "tail": ["g.x", "p.y", "g.x", "g.x"],  # the last row repeats the first
        }
    )
    links = pd.DataFrame({"item_idx": [2, 0, 4], "entity": ["m.a", "m.b", "m.only_linked"]})
    return kg, links


@pytest.fixture
def graph():
    train = pd.DataFrame(
        {
            "user_idx": [0, 0, 1, 2, 2],
            "item_idx": [0, 1, 2, 2, 4],
            "domain_idx": [0, 0, 1, 1, 1],
        }
    )
    return build_graph(3, np.array([0, 0, 1, 1, 1]), ["a", "b"], train)


def test_knowledge_graph_ids_dedup_and_links(kg_tables):
    kg = knowledge_graph(*kg_tables, num_items=5)
    # entities in sorted raw-id order; the linked-only entity is included
    entities = ["g.x", "m.a", "m.b", "m.only_linked", "p.y"]
    assert kg.num_entities == len(entities)
    assert kg.relation_names == ["film.actor", "film.genre"]
    assert sorted(map(tuple, kg.triples.tolist())) == [(1, 1, 0), (2, 0, 4), (2, 1, 0)]
    assert kg.item_entity.tolist() == [2, -1, 1, -1, 3]
    assert kg.num_linked_items == 3
    assert repr(kg) == ("KnowledgeGraph(entities=5, relations=2, triples=3, linked_items=3/5)")


def test_knowledge_graph_none_and_errors(kg_tables):
    kg, links = kg_tables
    assert knowledge_graph(None, links, num_items=5) is None
    with pytest.raises(DataError, match=r"kg table is missing column\(s\) \['tail'\]"):
        knowledge_graph(kg.drop(columns="tail"), links, num_items=5)
    with pytest.raises(DataError, match=r"item_entity table is missing column\(s\) \['item_idx'\]"):
        knowledge_graph(kg, links.rename(columns={"item_idx": "item"}), num_items=5)
    with pytest.raises(DataError, match=r"'item_idx' has value 4 outside \[0, 3\)"):
        knowledge_graph(kg, links, num_items=3)
    two = pd.concat([links, pd.DataFrame({"item_idx": [0], "entity": ["m.a"]})])
    with pytest.raises(DataError, match="item_idx 0 to more than one entity"):
        knowledge_graph(kg, two, num_items=5)
    with pytest.raises(DataError, match="'head' has 1 empty value"):
        knowledge_graph(kg.assign(head=[None, "a", "b", "c"]), links, num_items=5)
    with pytest.warns(UserWarning, match="no item_entity links"):
        assert knowledge_graph(kg, None, num_items=5).item_entity.tolist() == [-1] * 5


def test_relational_graph_without_kg(graph):
    rel = relational_graph(graph)
    assert rel.offsets == {"user": 0, "item": 3, "domain": 8}
    assert rel.num_nodes_per_type == {"user": 3, "item": 5, "domain": 2}
    assert rel.num_nodes == 10
    assert rel.relation_names == [
        "interacts_a",
        "rev_interacts_a",
        "interacts_b",
        "rev_interacts_b",
        "in_domain",
        "has_item",
    ]
    assert rel.edges_of("interacts_a").tolist() == [[0, 0], [3, 4]]
    assert rel.edges_of("rev_interacts_b").tolist() == [[5, 5, 7], [1, 2, 2]]
    assert rel.edges_of("has_item").tolist() == [[8, 8, 9, 9, 9], [3, 4, 5, 6, 7]]
    assert (rel.edge_type.diff() >= 0).all()
    assert rel.num_edges == 2 * 5 + 2 * 5
    assert "num_relations=6" in repr(rel)


def test_relational_graph_with_kg_adds_entities_inverses_and_links(graph, kg_tables):
    kg = knowledge_graph(*kg_tables, num_items=5)
    rel = relational_graph(graph, kg)
    assert rel.offsets["entity"] == 10 and rel.num_nodes == 15
    assert rel.relation_names[6:] == [
        "film.actor",
        "rev_film.actor",
        "film.genre",
        "rev_film.genre",
        "same_as",
        "rev_same_as",
    ]
    assert rel.edges_of("film.actor").tolist() == [[12], [14]]
    assert sorted(rel.edges_of("film.genre").T.tolist()) == [[11, 10], [12, 10]]
    for name in ("film.genre", "same_as"):
        assert torch.equal(rel.edges_of(f"rev_{name}"), rel.edges_of(name).flip(0))
    # items 0, 2, 4 (nodes 3, 5, 7) linked to m.b, m.a, m.only_linked (nodes 12, 11, 13)
    assert rel.edges_of("same_as").tolist() == [[3, 5, 7], [12, 11, 13]]
    assert rel.edge_index.max() < rel.num_nodes
    assert (rel.edge_type.diff() >= 0).all()


def test_relational_graph_size_mismatch(graph):
    kg = KnowledgeGraph(
        triples=torch.zeros(0, 3, dtype=torch.long),
        item_entity=torch.full((4,), -1),
        num_entities=0,
        relation_names=[],
    )
    with pytest.raises(ValueError, match="links 4 items, the graph has 5"):
        relational_graph(graph, kg)


def test_ml100k_knowledge_graph(data_root, tmp_path):
    source = AtomicSource(data_root / "ml-100k-kg" / "ml-100k_recbole", dataset="ml-100k")
    data = load_dataset(source, preprocess={}, cache_dir=tmp_path)
    kg = knowledge_graph(data.kg, data.item_entity, data.num_items)
    # README: 1,598 of 1,682 movies linked; 91,631 Freebase triples
    assert data.num_items == 1682
    assert kg.num_linked_items == 1598
    assert len(kg.triples) == 91631  # no duplicate triples in the file
    assert kg.num_relations == 24
    assert 20_000 < kg.num_entities < len(kg.triples)
    linked = kg.item_entity[kg.item_entity >= 0]
    assert linked.unique().numel() == 1598
    # every linked movie takes part in at least one triple
    in_triples = torch.zeros(kg.num_entities, dtype=torch.bool)
    in_triples[kg.triples[:, 0]] = True
    in_triples[kg.triples[:, 2]] = True
    assert in_triples[linked].float().mean() > 0.95


def test_no_held_out_pair_in_relational_graph(data_root, tmp_path):
    """Real Amazon data: no val/test user-item pair is an edge of the R-GCN graph."""
    source = FolderSource(data_root / "amazon-books-cds-movies")
    data = load_dataset(source, preprocess={}, cache_dir=tmp_path)
    split = split_interactions(data, "movies", seed=7)
    graph = build_graph(data.num_users, data.item_domain, data.domains, split.train)
    rel = relational_graph(graph)
    n_items = data.num_items
    held = pd.concat([split.val, split.test])
    held_keys = set((held.user_idx.to_numpy() * n_items + held.item_idx.to_numpy()).tolist())
    assert len(held_keys) > 10000

    users_end, items_end = rel.offsets["item"], rel.offsets["item"] + n_items
    src, dst = rel.edge_index
    user_item = (src < users_end) & (dst >= users_end) & (dst < items_end)
    item_user = (dst < users_end) & (src >= users_end) & (src < items_end)
    for u, i in ((src[user_item], dst[user_item]), (dst[item_user], src[item_user])):
        edge_keys = set((u * n_items + (i - users_end)).tolist())
        assert not edge_keys & held_keys
        train = split.train
        assert edge_keys == set((train.user_idx * n_items + train.item_idx).tolist())
