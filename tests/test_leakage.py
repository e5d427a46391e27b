"""No held-out pair reaches message passing, training positives or popularity counts,
and evaluation masks exactly the user's training (plus validation) items. Real data."""

import numpy as np
import pandas as pd
import pytest
import torch

from gnnrec.data import FolderSource, load_dataset
from gnnrec.data.graph import build_graph, interaction_edges
from gnnrec.data.split import split_interactions
from gnnrec.evaluate.tasks import ranking_tasks
from gnnrec.models import Popularity
from gnnrec.nn import normalized_adjacency
from gnnrec.train import NegativeSampler


@pytest.fixture(scope="module")
def pipeline(data_root, tmp_path_factory):
    source = FolderSource(data_root / "amazon-books-cds-movies")
    data = load_dataset(source, preprocess={}, cache_dir=tmp_path_factory.mktemp("cache"))
    split = split_interactions(data, "movies", seed=7)
    graph = build_graph(data.num_users, data.item_domain, data.domains, split.train)
    return data, split, graph


def keys(users, items, num_items):
    return set((np.asarray(users, dtype=np.int64) * num_items + np.asarray(items)).tolist())


def held_out_keys(split, num_items):
    held = [split.val, split.test]
    return set().union(*(keys(h.user_idx, h.item_idx, num_items) for h in held))


def test_held_out_pairs_follow_the_protocol(pipeline):
    """Two pairs per warm user with >= 3 target rows, every target pair of a cold user."""
    data, split, _ = pipeline
    inter = data.interactions
    target = inter[inter.domain_idx == split.target_domain_idx]
    cold = np.concatenate([split.users_in_group(s, "cold") for s in ("val", "test")])
    counts = target[~target.user_idx.isin(cold)].groupby("user_idx").size()
    expected = 2 * int((counts >= 3).sum()) + int(target.user_idx.isin(cold).sum())
    assert len(held_out_keys(split, data.num_items)) == expected == len(split.val) + len(split.test)


def test_no_held_out_edge_in_message_passing_graph(pipeline):
    data, split, graph = pipeline
    held = held_out_keys(split, data.num_items)
    edges = interaction_edges(graph)
    assert not keys(edges[0], edges[1], data.num_items) & held
    for edge_type in graph.edge_types:
        if edge_type[0] == "item" and edge_type[2] == "user":
            e = graph[edge_type].edge_index
            assert not keys(e[1], e[0], data.num_items) & held
    adj = normalized_adjacency(graph).to_sparse_coo().coalesce()
    row, col = adj.indices()
    user_rows = row < data.num_users
    adj_keys = keys(row[user_rows], col[user_rows] - data.num_users, data.num_items)
    assert not adj_keys & held
    assert adj_keys == keys(split.train.user_idx, split.train.item_idx, data.num_items)


def test_no_held_out_pair_among_training_positives_or_negatives(pipeline):
    data, split, _ = pipeline
    held = held_out_keys(split, data.num_items)
    sampler = NegativeSampler(
        torch.tensor(split.train.user_idx.to_numpy()),
        torch.tensor(split.train.item_idx.to_numpy()),
        torch.tensor(data.item_domain),
    )
    seen = set()
    for users, pos, _ in sampler.epoch(4096):
        seen |= keys(users, pos, data.num_items)
    assert not seen & held
    assert len(seen) == len(split.train)


def test_popularity_counts_only_training_rows(pipeline):
    data, split, _ = pipeline
    counts = torch.bincount(torch.tensor(split.train.item_idx.to_numpy()), minlength=data.num_items)
    full = np.bincount(data.interactions.item_idx, minlength=data.num_items)
    held = np.bincount(
        np.concatenate([split.val.item_idx, split.test.item_idx]), minlength=data.num_items
    )
    assert np.array_equal(counts.numpy(), full - held)
    model = Popularity(data.num_users, counts)
    assert torch.equal(model.item_counts, counts.double())


def test_evaluation_masks_exactly_training_then_validation_items(pipeline):
    data, split, _ = pipeline
    val_task, test_task = ranking_tasks(split, data.item_domain)
    target = split.target_domain_idx
    train_t = split.train[split.train.domain_idx == target]
    for task, extra in ((val_task, None), (test_task, split.val)):
        cand = task.candidates.numpy()
        assert np.array_equal(cand, np.flatnonzero(data.item_domain == target))
        for row in np.random.default_rng(0).choice(task.num_users, 300, replace=False):
            u = int(task.users[row])
            lo, hi = int(task.exclude_indptr[row]), int(task.exclude_indptr[row + 1])
            masked = set(cand[task.exclude_indices[lo:hi].numpy()].tolist())
            expected = set(train_t.item_idx[train_t.user_idx == u].tolist())
            if extra is not None:
                expected |= set(extra.item_idx[extra.user_idx == u].tolist())
            assert masked == expected
            lo, hi = int(task.truth_indptr[row]), int(task.truth_indptr[row + 1])
            truth = set(cand[task.truth_indices[lo:hi].numpy()].tolist())
            assert not truth & masked


def test_user_profiles_hold_only_training_items(pipeline):
    """Every title in a profile is one of the user's training items; none is held out."""
    from gnnrec.features import user_profiles

    data, split, _ = pipeline
    marker = np.array([f"<{j}>" for j in range(data.num_items)], dtype=object)
    profiles = user_profiles(split.train, marker, data.num_users, max_items=10_000)
    train_keys = keys(split.train.user_idx, split.train.item_idx, data.num_items)
    held = held_out_keys(split, data.num_items)
    seen = set()
    for user, text in enumerate(profiles):
        items = [int(t.strip("<>")) for t in text.split("; ") if t]
        seen.update(user * data.num_items + i for i in items)
    assert seen == train_keys  # all training items, nothing else
    assert not seen & held
    cold = split.users_in_group("test", "cold")
    assert all(profiles[u] for u in cold)  # cold users still have source history


def test_zero_shot_domain_reaches_no_training_input(pipeline, tmp_path_factory):
    data, _, _ = pipeline
    split = split_interactions(data, "movies", zero_shot=True, seed=7)
    movies = data.domain_index("movies")
    assert not (split.train["domain_idx"] == movies).any()
    graph = build_graph(data.num_users, data.item_domain, data.domains, split.train)
    edges = interaction_edges(graph)
    assert not (torch.as_tensor(data.item_domain)[edges[1]] == movies).any()
    assert set(split.test["group"]) == {"zero_shot"}
    inter = data.interactions
    with_source = set(inter.loc[inter.domain_idx != movies, "user_idx"])
    target = inter[(inter.domain_idx == movies) & inter.user_idx.isin(with_source)]
    held = pd.concat([split.val, split.test])
    assert keys(held.user_idx, held.item_idx, data.num_items) == keys(
        target.user_idx, target.item_idx, data.num_items
    )


def test_items_without_interactions_are_candidates_so_zero_degree_is_not_held_out(tmp_path):
    """A cold-start item's label must not be "no training edge": unrated items are ranked too."""
    root = tmp_path / "d"
    root.mkdir()
    rows = ["user_id,item_id,timestamp"]
    rows += [f"u{u},s{i},{i}" for u in range(6) for i in range(2)]
    rows += [f"u{u},m{i},{i}" for u in range(6) for i in range(3)]
    (root / "books.inter.csv").write_text("\n".join(r for r in rows if ",s" in r or "user" in r))
    (root / "movies.inter.csv").write_text("\n".join(r for r in rows if ",m" in r or "user" in r))
    (root / "books.item.csv").write_text("item_id,title\ns0,A\ns1,B\n")
    (root / "movies.item.csv").write_text("item_id,title\nm0,X\nm1,Y\nm2,Z\nm8,New\nm9,Newer\n")
    data = load_dataset(FolderSource(root))
    split = split_interactions(data, "movies", cold_fraction=0.0, seed=0)
    _, test_task = ranking_tasks(split, data.item_domain)
    movies = data.items[data.items.domain == "movies"]
    assert movies["item"].tolist() == ["m0", "m1", "m2", "m8", "m9"]
    assert np.array_equal(test_task.candidates.numpy(), movies.index.to_numpy())
    train_degree = np.bincount(split.train.item_idx, minlength=data.num_items)
    zero_degree = set(movies.index[train_degree[movies.index] == 0].tolist())
    held = set(pd.concat([split.val, split.test]).item_idx.tolist())
    assert held == {movies.index[1], movies.index[2]}  # m1 (val) and m2 (test) per user
    assert zero_degree == held | {movies.index[3], movies.index[4]}
