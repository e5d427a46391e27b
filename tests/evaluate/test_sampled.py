import itertools
import math

import numpy as np
import pytest
import torch

from gnnrec.evaluate import Evaluator, RankingTask
from gnnrec.evaluate.sampled import SAMPLED_METRICS, NegativeSampler


def _random_problem(seed, num_users=40, num_items=60):
    rng = np.random.default_rng(seed)
    truth = {
        u: {int(i) for i in rng.choice(num_items, size=rng.integers(1, 4))}
        for u in range(num_users)
    }
    excl = {u: set(rng.choice(num_items, size=5).tolist()) - truth[u] for u in truth}
    users = [u for u in truth for _ in truth[u]]
    items = [i for u in truth for i in sorted(truth[u])]
    ex_u = [u for u in excl for _ in excl[u]]
    ex_i = [i for u in excl for i in sorted(excl[u])]
    task = RankingTask.from_pairs(users, items, np.arange(num_items), ex_u, ex_i)
    user_emb = torch.from_numpy(rng.normal(size=(num_users, 8)))
    item_emb = torch.from_numpy(rng.normal(size=(num_items, 8)))
    return task, user_emb, item_emb


def test_sampled_hand_checked_rank():
    # Item i scores i (dim 1). Candidates {1, 2, 3, 4, 5}; user 0: truth {2}, exclude
    # {1, 3, 4} -> the only allowed negative is item 5 (score 5 > 2), so all 4 drawn
    # negatives beat the positive: rank = 1 + 4 = 5, HR@1 = 0, HR@5 = 1,
    # NDCG@5 = NDCG@10 = 1 / log2(5 + 1).
    user_emb, item_emb = torch.ones(1, 1), torch.arange(6, dtype=torch.float32).unsqueeze(1)
    task = RankingTask.from_pairs([0], [2], [1, 2, 3, 4, 5], [0, 0, 0], [1, 3, 4])
    out = Evaluator(ks=(1,), sampled_negatives=4, sampled_ks=(1, 5, 10)).evaluate(
        task, user_emb, item_emb
    )
    assert out["all/sampled_hr@1"] == 0.0
    assert out["all/sampled_hr@5"] == 1.0
    assert out["all/sampled_ndcg@5"] == pytest.approx(1 / math.log2(6))
    assert out["all/sampled_ndcg@10"] == pytest.approx(1 / math.log2(6))
    # Ties cost their expectation: negative item 5 now scores 2 like the positive, so the
    # positive sits uniformly at positions 0..4 (g = 0, q = 4). The old rule (rank =
    # 1 + #strictly higher) gave HR@1 = NDCG@1 = 1.
    item_emb[5] = 2.0
    out = Evaluator(ks=(1,), sampled_negatives=4, sampled_ks=(1, 2, 5)).evaluate(
        task, user_emb, item_emb
    )
    assert out["all/sampled_hr@1"] == pytest.approx(1 / 5)
    assert out["all/sampled_ndcg@1"] == pytest.approx(1 / 5)
    assert out["all/sampled_hr@2"] == pytest.approx(2 / 5)
    assert out["all/sampled_ndcg@2"] == pytest.approx((1 + 1 / math.log2(3)) / 5)
    assert out["all/sampled_hr@5"] == pytest.approx(1.0)


def test_sampled_averages_pairs_then_users():
    # Item i scores i. User 0: truth {2, 5}, exclude {0, 1, 3} -> allowed negative {4}
    # only, drawn 3 times: pair (0, 2) has rank 1 + 3 = 4, pair (0, 5) rank 1.
    #   hr@1 = (0 + 1) / 2, hr@4 = 1, ndcg@4 = (1 / log2 5 + 1) / 2.
    # User 1: truth {5}, exclude {0, 1, 2, 3} -> negative {4}: rank 1 -> all 1.
    # Group "all" averages users: hr@1 = (0.5 + 1) / 2.
    user_emb, item_emb = torch.ones(2, 1), torch.arange(6, dtype=torch.float32).unsqueeze(1)
    task = RankingTask.from_pairs(
        [0, 0, 1], [2, 5, 5], torch.arange(6), [0, 0, 0, 1, 1, 1, 1], [0, 1, 3, 0, 1, 2, 3]
    )
    results, per_user = Evaluator(ks=(1,), sampled_negatives=3, sampled_ks=(1, 4)).evaluate(
        task, user_emb, item_emb, return_per_user=True
    )
    assert per_user["sampled_hr@1"].tolist() == [0.5, 1.0]
    assert per_user["sampled_hr@4"].tolist() == [1.0, 1.0]
    assert per_user["sampled_ndcg@4"].tolist() == pytest.approx([(1 / math.log2(5) + 1) / 2, 1.0])
    assert results["all/sampled_hr@1"] == pytest.approx(0.75)


def test_sampled_determinism_and_seed():
    task, user_emb, item_emb = _random_problem(7)

    def run(seed, batch_size=4096):
        evaluator = Evaluator(
            ks=(5,), sampled_negatives=20, sampled_ks=(5,), seed=seed, batch_size=batch_size
        )
        return evaluator.evaluate(task, user_emb, item_emb, return_per_user=True)[1]

    first = run(0)
    assert torch.equal(first["sampled_ndcg@5"], run(0)["sampled_ndcg@5"])
    assert torch.equal(first["sampled_ndcg@5"], run(0, batch_size=3)["sampled_ndcg@5"])
    assert not torch.equal(first["sampled_ndcg@5"], run(1)["sampled_ndcg@5"])
    assert {"sampled_hr@5", "sampled_ndcg@5", "ndcg@5"} <= set(first)


def test_sampled_negatives_are_allowed_and_uniform():
    # User 0 may draw from {2, 5, 6, 9} only; draws must cover them about equally.
    task = RankingTask.from_pairs([0, 0, 1], [1, 3, 0], torch.arange(10), [0] * 4, [0, 4, 7, 8])
    evaluator = Evaluator(sampled_negatives=4000)
    truth_keys = torch.tensor([1, 3, 10])  # row * m + col with m = 10
    excl_keys = torch.tensor([0, 4, 7, 8])
    sampler = NegativeSampler(
        task.users, 10, truth_keys, excl_keys, evaluator.sampled_negatives, (10,), 0
    )
    negatives = sampler._draw(0)
    assert negatives.shape == (3, 4000)
    user0 = negatives[:2].flatten()
    assert set(user0.tolist()) == {2, 5, 6, 9}
    assert torch.bincount(user0, minlength=10)[[2, 5, 6, 9]].min() > 1800  # ~2000 each
    assert set(negatives[2].tolist()) == set(range(1, 10))


def test_sampled_error_when_nothing_to_sample():
    task = RankingTask.from_pairs([0], [0], [0, 1], [0], [1])
    with pytest.raises(ValueError, match="user 0 has no candidate"):
        Evaluator(sampled_negatives=5).evaluate(task, torch.ones(1, 2), torch.ones(2, 2))


@pytest.mark.parametrize("num_negatives", [9, 99])
def test_constant_scores_give_the_random_level(num_negatives):
    # Every score equal: HR@K = K / (N + 1) and NDCG@K = D_K / (N + 1) exactly, for every
    # pair. The old rule (ties to the positive) gave HR@10 = 1.
    task, _, _ = _random_problem(0)
    ks = (1, 5, 10)
    out = Evaluator(ks=(1,), sampled_negatives=num_negatives, sampled_ks=ks).evaluate(
        task, torch.ones(40, 2), torch.ones(60, 2)
    )
    for k in ks:
        assert out[f"all/sampled_hr@{k}"] == pytest.approx(k / (num_negatives + 1), abs=1e-12)
        dcg = sum(1 / math.log2(r + 2) for r in range(k))
        assert out[f"all/sampled_ndcg@{k}"] == pytest.approx(dcg / (num_negatives + 1), abs=1e-12)


def test_random_scores_near_the_random_level():
    # Scores independent of the truth: HR@10 with 99 negatives is 0.1 in expectation;
    # 4 standard errors of a Bernoulli(0.1) mean over 3000 single-positive users.
    n, m = 3000, 300
    gen = torch.Generator().manual_seed(1)
    task = RankingTask.from_pairs(
        torch.arange(n), torch.randint(0, m, (n,), generator=gen), torch.arange(m)
    )
    out = Evaluator(ks=(1,), sampled_negatives=99, sampled_ks=(10,)).evaluate(
        task, torch.randn(n, 16, generator=gen), torch.randn(m, 16, generator=gen)
    )
    assert abs(out["all/sampled_hr@10"] - 0.1) < 4 * math.sqrt(0.1 * 0.9 / n)


@pytest.mark.parametrize("greater", range(6))
@pytest.mark.parametrize("tied", range(5))
@pytest.mark.parametrize("k", [1, 2, 3, 7])
def test_formulas_equal_the_average_over_tie_positions(greater, tied, k):
    # Brute force: the positive takes each position g .. g + q with probability 1 / (q + 1).

    positions = range(greater, greater + tied + 1)
    hr = sum(r < k for r in positions) / (tied + 1)
    ndcg = sum(1 / math.log2(r + 2) for r in positions if r < k) / (tied + 1)
    g, q = torch.tensor([greater]), torch.tensor([tied])
    assert SAMPLED_METRICS["sampled_hr"](g, q, k).item() == pytest.approx(hr, abs=1e-15)
    assert SAMPLED_METRICS["sampled_ndcg"](g, q, k).item() == pytest.approx(ndcg, abs=1e-15)


def test_tied_pairs_against_a_permutation_average():
    # One user, item scores with ties; negatives drawn by the evaluator are read back from
    # the sampler, then every order of the positive's tied block is enumerated.
    scores = torch.tensor([[2.0], [1.0], [2.0], [1.0], [0.0], [2.0], [1.0]], dtype=torch.float64)
    task = RankingTask.from_pairs([0, 0], [0, 3], torch.arange(7))
    out = Evaluator(ks=(1,), sampled_negatives=4, sampled_ks=(1, 2, 3)).evaluate(
        task, torch.ones(1, 1, dtype=torch.float64), scores, return_per_user=True
    )[1]
    sampler = NegativeSampler(
        task.users, 7, torch.tensor([0, 3]), torch.tensor([], dtype=torch.long), 4, (1,), 0
    )
    negatives = sampler._draw(0)
    expected = {f"sampled_hr@{k}": 0.0 for k in (1, 2, 3)}
    ties = 0
    for pair, item in enumerate([0, 3]):
        pos = scores[item, 0].item()
        items = [item, *negatives[pair].tolist()]
        orders = list(itertools.permutations(range(len(items))))
        for k in (1, 2, 3):
            total = 0
            for perm in orders:
                order = sorted(
                    range(len(items)), key=lambda j: (-scores[items[j], 0].item(), perm[j])
                )
                total += order.index(0) < k
            expected[f"sampled_hr@{k}"] += total / len(orders) / 2
        ties += sum(scores[j, 0].item() == pos for j in negatives[pair].tolist())
    assert ties > 0  # the draws do tie with the positives
    for key, value in expected.items():
        assert out[key].item() == pytest.approx(value, abs=1e-12), key


def test_masked_positive_scores_zero():
    # A held-out item that is also masked never counts, even against -inf negatives
    # (the old rule ranked it first when no negative beat -inf).
    task = RankingTask.from_pairs([0], [0], torch.arange(3), [0], [0])
    item_emb = torch.tensor([[1.0], [float("-inf")], [float("-inf")]])
    out = Evaluator(ks=(1,), sampled_negatives=5, sampled_ks=(1, 10)).evaluate(
        task, torch.ones(1, 1), item_emb
    )
    assert out["all/sampled_hr@10"] == 0.0
    assert out["all/sampled_ndcg@10"] == 0.0
