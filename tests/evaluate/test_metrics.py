import math

import pytest
import torch
from torch_geometric.metrics import (
    LinkPredHitRatio,
    LinkPredMRR,
    LinkPredNDCG,
    LinkPredPrecision,
    LinkPredRecall,
)

from gnnrec.evaluate.metrics import METRIC_NAMES, ranking_metrics

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


def test_hand_computed_values():
    out = ranking_metrics(HITS, NUM_TRUTH, ks=[1, 2, 3, 4])
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
    out = ranking_metrics(HITS, NUM_TRUTH, ks=[2, 3], names=["ndcg", "recall"])
    assert set(out) == {"ndcg@2", "ndcg@3", "recall@2", "recall@3"}
    for value in out.values():
        assert value.shape == (4,)
        assert value.dtype == torch.float64


def test_k_larger_than_ranked_list():
    # Only 4 ranked items but K = 10: missing positions are misses, precision / 10,
    # NDCG's ideal still covers min(|T|, 10) positions.
    out = ranking_metrics(HITS, NUM_TRUTH, ks=[10])
    torch.testing.assert_close(
        out["precision@10"], torch.tensor([0.2, 0.2, 0.0, 0.1], dtype=torch.float64)
    )
    torch.testing.assert_close(
        out["recall@10"], torch.tensor([1.0, 2 / 3, 0.0, 1.0], dtype=torch.float64)
    )
    idcg_u1 = 1 + 1 / LOG2_3 + 0.5
    assert out["ndcg@10"][1].item() == pytest.approx((1 / LOG2_3 + 0.5) / idcg_u1)


def test_empty_hit_matrix():
    out = ranking_metrics(torch.zeros(2, 0, dtype=torch.bool), torch.tensor([1, 2]), ks=[5])
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
        ranking_metrics(HITS, NUM_TRUTH, **kwargs)


def test_rejects_users_without_truth():
    with pytest.raises(ValueError, match="num_truth > 0"):
        ranking_metrics(HITS, torch.tensor([2, 0, 1, 1]), ks=[2])
    with pytest.raises(ValueError, match="expected hits"):
        ranking_metrics(HITS, torch.tensor([2, 1]), ks=[2])


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
    ours = ranking_metrics(hits, num_truth, ks=[k], names=[name])[f"{name}@{k}"]
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
    ours = ranking_metrics(hits, torch.tensor([3]), ks=[2], names=["recall"])["recall@2"]
    assert ours.item() == pytest.approx(2 / 3)
    assert metric.compute().item() == pytest.approx(2 / 3)
