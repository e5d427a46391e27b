import itertools
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import ndcg_score
from torch_geometric.metrics import (
    LinkPredHitRatio,
    LinkPredMRR,
    LinkPredNDCG,
    LinkPredPrecision,
    LinkPredRecall,
)

from gnnrec.evaluate.metrics import METRIC_NAMES, METRICS, Ranking, ranking_metrics

LOG2_3 = math.log2(3)

# Four users, ranked lists of length 4 (1 = the item at that rank is ground truth).
# u0: truth {a, c}, ranking [a, b, c, d]       -> hits [1, 0, 1, 0], |T| = 2
# u1: truth {x, y, z}, ranking [b, x, y, d]    -> hits [0, 1, 1, 0], |T| = 3
# u2: truth {q}, nothing retrieved             -> hits [0, 0, 0, 0], |T| = 1
# u3: truth {t}, ranked 4th                    -> hits [0, 0, 0, 1], |T| = 1
HITS = torch.tensor(
    [[1, 0, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 1]],
    dtype=torch.bool,
)
NUM_TRUTH = torch.tensor([2, 3, 1, 1])
RANKING = Ranking.from_hits(HITS, NUM_TRUTH)


def test_hand_computed_values():
    out = ranking_metrics(RANKING, ks=[1, 2, 3, 4])
    expected = {
        # recall@K = hits in top K / |T| (LightGCN), not / min(K, |T|):
        # u1 at K=2 has 2 of 3 -> 2/3 (min-variant would give 1).
        "recall@1": [1 / 2, 0, 0, 0],
        "recall@2": [1 / 2, 1 / 3, 0, 0],
        "recall@3": [1, 2 / 3, 0, 0],
        "recall@4": [1, 2 / 3, 0, 1],
        # precision@K = hits in top K / K.
        "precision@2": [1 / 2, 1 / 2, 0, 0],
        "precision@3": [2 / 3, 2 / 3, 0, 0],
        "precision@4": [2 / 4, 2 / 4, 0, 1 / 4],
        "hit@1": [1, 0, 0, 0],
        "hit@2": [1, 1, 0, 0],
        "hit@4": [1, 1, 0, 1],
        # DCG = sum hit_r / log2(r + 2); IDCG over min(|T|, K) positions.
        # u0 @2: DCG = 1, IDCG = 1 + 1/log2 3.  u1 @2: DCG = 1/log2 3, same IDCG.
        "ndcg@1": [1, 0, 0, 0],
        "ndcg@2": [1 / (1 + 1 / LOG2_3), (1 / LOG2_3) / (1 + 1 / LOG2_3), 0, 0],
        # u0 @3: DCG = 1 + 1/log2 4 = 1.5, IDCG = 1 + 1/log2 3 (only 2 truth items).
        # u1 @3: DCG = 1/log2 3 + 1/2, IDCG = 1 + 1/log2 3 + 1/2.
        "ndcg@3": [
            1.5 / (1 + 1 / LOG2_3),
            (1 / LOG2_3 + 0.5) / (1 + 1 / LOG2_3 + 0.5),
            0,
            0,
        ],
        # u3 @4: DCG = 1/log2 5, IDCG = 1.
        "ndcg@4": [
            1.5 / (1 + 1 / LOG2_3),
            (1 / LOG2_3 + 0.5) / (1 + 1 / LOG2_3 + 0.5),
            0,
            1 / math.log2(5),
        ],
        # mrr@K = 1 / rank of the first hit if within K.
        "mrr@1": [1, 0, 0, 0],
        "mrr@2": [1, 1 / 2, 0, 0],
        "mrr@3": [1, 1 / 2, 0, 0],
        "mrr@4": [1, 1 / 2, 0, 1 / 4],
    }
    for key, values in expected.items():
        torch.testing.assert_close(out[key], torch.tensor(values, dtype=torch.float64), msg=key)


def test_keys_shapes_and_dtype():
    out = ranking_metrics(RANKING, ks=[2, 3], names=["ndcg", "recall"])
    assert set(out) == {"ndcg@2", "ndcg@3", "recall@2", "recall@3"}
    for value in out.values():
        assert value.shape == (4,)
        assert value.dtype == torch.float64


def test_k_larger_than_ranked_list():
    # Only 4 ranked items but K = 10: missing positions are misses, precision / 10,
    # NDCG's ideal still covers min(|T|, 10) positions.
    out = ranking_metrics(RANKING, ks=[10])
    torch.testing.assert_close(
        out["precision@10"], torch.tensor([0.2, 0.2, 0.0, 0.1], dtype=torch.float64)
    )
    torch.testing.assert_close(
        out["recall@10"], torch.tensor([1.0, 2 / 3, 0.0, 1.0], dtype=torch.float64)
    )
    idcg_u1 = 1 + 1 / LOG2_3 + 0.5
    assert out["ndcg@10"][1].item() == pytest.approx((1 / LOG2_3 + 0.5) / idcg_u1)


def test_empty_hit_matrix():
    ranking = Ranking.from_hits(torch.zeros(2, 0, dtype=torch.bool), torch.tensor([1, 2]))
    out = ranking_metrics(ranking, ks=[5])
    for value in out.values():
        assert value.tolist() == [0.0, 0.0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ks": [5], "names": ["auc"]}, "unknown metric"),
        ({"ks": [0]}, "positive integer"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ranking_metrics(RANKING, **kwargs)


def test_rejects_users_without_truth():
    with pytest.raises(ValueError, match="num_truth > 0"):
        Ranking.from_hits(HITS, torch.tensor([2, 0, 1, 1]))
    with pytest.raises(ValueError, match="num_truth"):
        Ranking.from_hits(HITS, torch.tensor([2, 1]))


def _random_ranking(seed: int, n: int = 64, num_items: int = 40, k_max: int = 12):
    """Random top-k lists and truth sets, plus the COO truth PyG expects."""
    gen = torch.Generator().manual_seed(seed)
    pred = torch.rand(n, num_items, generator=gen).argsort(dim=1)[:, :k_max]
    truth = torch.rand(n, num_items, generator=gen) < 0.15
    truth[torch.arange(n), torch.randint(0, num_items, (n,), generator=gen)] = True  # |T| > 0
    hits = truth.gather(1, pred)
    edge_label_index = truth.nonzero().t()
    return pred, hits, truth.sum(1), edge_label_index


PYG = {
    "recall": LinkPredRecall,
    "precision": LinkPredPrecision,
    "ndcg": LinkPredNDCG,
    "mrr": LinkPredMRR,
    "hit": LinkPredHitRatio,
}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 5, 12])
@pytest.mark.parametrize("name", METRIC_NAMES)
def test_agrees_with_torch_geometric(seed, k, name):
    # The installed torch_geometric.metrics define these five unweighted metrics as
    # we do: recall / |T|, precision / k, NDCG with IDCG over min(|T|, k) positions
    # (`idcg[label_count.clamp(max=k)]`), MRR = max(rel_r / r), hit = any(rel).
    pred, hits, num_truth, edge_label_index = _random_ranking(seed)
    metric = PYG[name](k=k)
    metric.update(pred, edge_label_index)
    ours = ranking_metrics(Ranking.from_hits(hits, num_truth), ks=[k], names=[name])
    ours = ours[f"{name}@{k}"]
    assert ours.mean().item() == pytest.approx(metric.compute().item(), abs=1e-6)


def test_pyg_recall_is_not_the_min_k_variant():
    # Where a "recall" definition differs (RecBole-style / min(K, |T|)), we follow
    # LightGCN and PyG: with |T| = 3 > K = 2 and both top-2 items relevant, recall is
    # 2/3, whereas the min-variant would give 1.
    pred = torch.tensor([[0, 1, 2, 3]])
    edge_label_index = torch.tensor([[0, 0, 0], [0, 1, 2]])
    metric = LinkPredRecall(k=2)
    metric.update(pred, edge_label_index)
    hits = torch.tensor([[True, True, True, False]])
    ranking = Ranking.from_hits(hits, torch.tensor([3]))
    ours = ranking_metrics(ranking, ks=[2], names=["recall"])["recall@2"]
    assert ours.item() == pytest.approx(2 / 3)
    assert metric.compute().item() == pytest.approx(2 / 3)


def test_metric_table_is_the_one_list_of_names():
    assert tuple(METRICS) == METRIC_NAMES == ("recall", "ndcg", "hit", "mrr", "precision")
    out = ranking_metrics(RANKING, ks=[3])
    for name, fn in METRICS.items():
        assert torch.equal(out[f"{name}@3"], fn(RANKING, 3))


def _from_scores(scores, truth, ks):
    """Metrics of full score rows (``-inf`` masked) through ``Ranking.from_top``."""
    values, index = torch.as_tensor(scores, dtype=torch.float64).sort(dim=1, descending=True)
    hits = torch.as_tensor(truth).gather(1, index)
    num_truth = torch.as_tensor(truth).sum(1)
    return ranking_metrics(Ranking.from_top(values, hits, num_truth), ks)


def test_all_tied_hand_computed():
    # 4 items all tied, 1 truth: every position holds it with probability 1/4.
    out = _from_scores([[0.0, 0.0, 0.0, 0.0]], [[False, True, False, False]], ks=[1, 2, 4])
    expected = {
        "recall@1": 1 / 4,
        "recall@2": 2 / 4,
        "precision@2": (2 / 4) / 2,
        "hit@1": 1 / 4,
        "hit@2": 2 / 4,
        "hit@4": 1.0,
        "ndcg@1": 1 / 4,
        "ndcg@2": (1 + 1 / LOG2_3) / 4,
        "ndcg@4": (1 + 1 / LOG2_3 + 1 / 2 + 1 / math.log2(5)) / 4,
        "mrr@1": 1 / 4,
        "mrr@2": (1 + 1 / 2) / 4,
        "mrr@4": (1 + 1 / 2 + 1 / 3 + 1 / 4) / 4,
    }
    for key, value in expected.items():
        assert out[key].item() == pytest.approx(value, abs=1e-15), key


def test_two_truth_in_a_tied_block_hand_computed():
    # Scores [5, 3, 3, 3, 1]: item 0 (miss) first, then a block of 3 with 2 truth items.
    # e = [0, 2/3, 2/3, 2/3, 0]. First hit: position 1 w.p. 2/3, position 2 w.p. 1/3.
    out = _from_scores(
        [[5.0, 3.0, 3.0, 3.0, 1.0]], [[False, True, False, True, False]], ks=[1, 2, 3, 5]
    )
    idcg2 = 1 + 1 / LOG2_3
    expected = {
        "recall@1": 0.0,
        "recall@2": (2 / 3) / 2,
        "recall@3": (4 / 3) / 2,
        "hit@2": 2 / 3,
        "hit@3": 1.0,
        "mrr@2": (2 / 3) / 2,
        "mrr@3": (2 / 3) / 2 + (1 / 3) / 3,
        "ndcg@2": ((2 / 3) / LOG2_3) / idcg2,
        "ndcg@5": ((2 / 3) * (1 / LOG2_3 + 1 / 2 + 1 / math.log2(5))) / idcg2,
        "precision@3": (4 / 3) / 3,
    }
    for key, value in expected.items():
        assert out[key].item() == pytest.approx(value, abs=1e-15), key


def test_tail_beyond_the_list_counts_in_the_last_block():
    # Top-2 list [9, 4] where 4 ties with 3 more items outside the list (tail_size = 3),
    # one of them truth (tail_truth = 1; the listed item at 4 is a miss): block of 4, h = 1.
    ranking = Ranking.from_top(
        torch.tensor([[9.0, 4.0]], dtype=torch.float64),
        torch.tensor([[False, False]]),
        torch.tensor([1]),
        tail_size=torch.tensor([3]),
        tail_truth=torch.tensor([1]),
    )
    out = ranking_metrics(ranking, ks=[1, 2])
    assert out["recall@2"].item() == pytest.approx(1 / 4)
    assert out["hit@2"].item() == pytest.approx(1 / 4)
    assert out["mrr@2"].item() == pytest.approx((1 / 4) / 2)
    assert out["ndcg@2"].item() == pytest.approx((1 / 4) / LOG2_3)
    assert out["recall@1"].item() == 0.0


def _no_tie_metrics(rel, num_truth, k):
    """The usual metrics of one ranked 0/1 relevance list (no ties involved)."""
    top = rel[:k]
    first = next((r for r, x in enumerate(top) if x), None)
    idcg = sum(1 / math.log2(r + 2) for r in range(min(num_truth, k)))
    return {
        f"recall@{k}": sum(top) / num_truth,
        f"precision@{k}": sum(top) / k,
        f"hit@{k}": float(first is not None),
        f"mrr@{k}": 0.0 if first is None else 1 / (first + 1),
        f"ndcg@{k}": sum(1 / math.log2(r + 2) for r, x in enumerate(top) if x) / idcg,
    }


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_ties_equal_average_over_all_tie_breaks(seed):
    # Brute force: every permutation of the 7 items breaks the ties one way (sort by score,
    # then by position in the permutation); averaging the no-tie metrics over all 7! of them
    # is the expectation over a uniformly random order of tied items.
    rng = np.random.default_rng(seed)
    m, ks = 7, [1, 2, 3, 5, 7, 9]
    scores = rng.integers(0, 3, size=(3, m)).astype(np.float64)
    truth = rng.random((3, m)) < 0.35
    truth[:, rng.integers(0, m)] = True
    scores[0, 5] = -np.inf  # a masked (non-truth) item
    truth[0, 5] = False
    out = _from_scores(scores, truth, ks)
    for u in range(3):
        sums: dict[str, float] = {}
        perms = list(itertools.permutations(range(m)))
        for perm in perms:
            order = sorted(range(m), key=lambda i: (-scores[u, i], perm[i]))
            rel = [bool(truth[u, i]) and np.isfinite(scores[u, i]) for i in order]
            for k in ks:
                for key, value in _no_tie_metrics(rel, int(truth[u].sum()), k).items():
                    sums[key] = sums.get(key, 0.0) + value
        for key, total in sums.items():
            assert out[key][u].item() == pytest.approx(total / len(perms), abs=1e-12), (u, key)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("k", [1, 3, 10])
def test_ndcg_with_ties_agrees_with_sklearn(seed, k):
    # sklearn's ndcg_score(ignore_ties=False) averages the gains of tied items, i.e. the
    # expected DCG over random tie order; its ideal DCG sorts the binary relevances, so it
    # is DCG of min(|T|, k) hits, as ours. Masked items are left out of sklearn's input and
    # are -inf for us (no masked item is truth, so |T| is the same on both sides).
    rng = np.random.default_rng(seed)
    n, m = 40, 25
    scores = rng.integers(0, 4, size=(n, m)).astype(np.float64)
    truth = rng.random((n, m)) < 0.2
    truth[np.arange(n), rng.integers(0, m, size=n)] = True
    masked = (rng.random((n, m)) < 0.2) & ~truth
    ours = _from_scores(np.where(masked, -np.inf, scores), truth, [k])[f"ndcg@{k}"]
    for u in range(n):
        keep = ~masked[u]
        expected = ndcg_score(
            truth[u, keep][None].astype(float), scores[u, keep][None], k=k, ignore_ties=False
        )
        assert ours[u].item() == pytest.approx(expected, abs=1e-12), u
