import math

import numpy as np
import pytest
import torch

from gnnrec.evaluate import Evaluator, RankingTask
from gnnrec.evaluate.evaluator import _NegativeSampler

KS = (1, 3, 5, 20)
NAMES = ("recall", "ndcg", "hit", "mrr", "precision")


def _random_problem(seed: int, num_users: int = 60, num_items: int = 90, num_cands: int = 70):
    """Random float64 embeddings, shuffled candidates, truth and disjoint exclude pairs."""
    rng = np.random.default_rng(seed)
    cands = rng.permutation(num_items)[:num_cands]
    truth, excl = {}, {}
    for user in rng.choice(num_users, size=num_users - 10, replace=False):
        items = rng.permutation(cands)
        n_t, n_e = rng.integers(1, 8), rng.integers(0, 12)
        truth[int(user)] = {int(i) for i in items[:n_t]}
        excl[int(user)] = {int(i) for i in items[n_t : n_t + n_e]}
    # Exclude pairs of unevaluated users and non-candidate items must be ignored.
    excl[num_users - 1] = {int(cands[0])}
    outside = sorted(set(range(num_items)) - {int(c) for c in cands})
    excl[next(iter(truth))] |= {outside[0]}
    user_emb = torch.from_numpy(rng.normal(size=(num_users, 8)))
    item_emb = torch.from_numpy(rng.normal(size=(num_items, 8)))
    return user_emb, item_emb, cands, truth, excl


def _pairs(mapping):
    users = [u for u, items in mapping.items() for _ in items]
    items = [i for _, items in mapping.items() for i in sorted(items)]
    return np.array(users, dtype=np.int64), np.array(items, dtype=np.int64)


def _task(cands, truth, excl, groups=None):
    tu, ti = _pairs(truth)
    eu, ei = _pairs(excl)
    return RankingTask.from_pairs(tu, ti, cands, eu, ei, groups)


def _naive(user_emb, item_emb, cands, truth, excl, ks):
    """Per-user metrics with Python sets and a full numpy sort, users in sorted order."""
    u_np, i_np = user_emb.numpy(), item_emb.numpy()
    out = {f"{name}@{k}": [] for name in NAMES for k in ks}
    for user in sorted(truth):
        scores = i_np[cands] @ u_np[user]
        scores[[j for j, c in enumerate(cands) if c in excl.get(user, set())]] = -np.inf
        order = np.argsort(-scores, kind="stable")
        ranked = [int(cands[j]) if np.isfinite(scores[j]) else None for j in order]
        rel = [item in truth[user] for item in ranked]
        for k in ks:
            top = rel[:k]
            n_hit = sum(top)
            dcg = sum(1 / math.log2(r + 2) for r, hit in enumerate(top) if hit)
            idcg = sum(1 / math.log2(r + 2) for r in range(min(len(truth[user]), k)))
            first = next((r for r, hit in enumerate(top) if hit), None)
            out[f"recall@{k}"].append(n_hit / len(truth[user]))
            out[f"precision@{k}"].append(n_hit / k)
            out[f"hit@{k}"].append(float(n_hit > 0))
            out[f"ndcg@{k}"].append(dcg / idcg)
            out[f"mrr@{k}"].append(0.0 if first is None else 1 / (first + 1))
    return {key: torch.tensor(values, dtype=torch.float64) for key, values in out.items()}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_naive_implementation(seed):
    user_emb, item_emb, cands, truth, excl = _random_problem(seed)
    task = _task(cands, truth, excl)
    results, per_user = Evaluator(ks=KS, batch_size=16).evaluate(
        task, user_emb, item_emb, return_per_user=True
    )
    expected = _naive(user_emb, item_emb, cands, truth, excl, KS)
    assert task.users.tolist() == sorted(truth)
    assert set(per_user) == set(expected)
    for key, values in expected.items():
        torch.testing.assert_close(per_user[key], values, msg=key)
        assert results[f"all/{key}"] == pytest.approx(values.mean().item())
    assert results["all/num_users"] == len(truth)


def test_chunk_size_invariance():
    user_emb, item_emb, cands, truth, excl = _random_problem(3)
    task = _task(cands, truth, excl)
    outs = [
        Evaluator(ks=KS, batch_size=bs, sampled_negatives=50, sampled_ks=(1, 5)).evaluate(
            task, user_emb, item_emb, return_per_user=True
        )
        for bs in (1, 7, 4096)
    ]
    for results, per_user in outs[1:]:
        assert results == outs[0][0]
        for key, values in per_user.items():
            assert torch.equal(values, outs[0][1][key]), key


def test_group_means_and_keys():
    user_emb, item_emb, cands, truth, excl = _random_problem(4)
    users = sorted(truth)
    warm = np.array(users[::3])
    groups = {"warm": warm, "cold": np.array(users[1::3] + [10_000]), "nobody": np.array([10_001])}
    task = _task(cands, truth, excl, groups)
    assert set(task.groups) == {"warm", "cold", "nobody", "all"}
    assert task.groups["all"].all()
    results, per_user = Evaluator(ks=(5,), metrics=("ndcg", "recall")).evaluate(
        task, user_emb, item_emb, return_per_user=True
    )
    assert "nobody/num_users" not in results
    assert not any(key.startswith("nobody/") for key in results)
    warm_mask = torch.from_numpy(np.isin(task.users.numpy(), warm))
    assert results["warm/num_users"] == len(warm)
    assert results["cold/num_users"] == len(users[1::3])
    assert results["warm/ndcg@5"] == pytest.approx(per_user["ndcg@5"][warm_mask].mean().item())
    assert results["all/recall@5"] == pytest.approx(per_user["recall@5"].mean().item())
    assert set(results) == {
        f"{g}/{key}" for g in ("warm", "cold", "all") for key in ("num_users", "ndcg@5", "recall@5")
    }


def test_explicit_all_group_is_kept():
    task = RankingTask.from_pairs([0, 1], [0, 1], [0, 1, 2], [], [], {"all": [1]})
    assert task.groups["all"].tolist() == [False, True]


def _ordered_task(exclude_items, truth_items=(3,), num_items=6):
    """User 0 on dim-1 scores 0..5 (item i scores i), like a popularity baseline."""
    user_emb = torch.ones(1, 1)
    item_emb = torch.arange(num_items, dtype=torch.float32).unsqueeze(1)
    task = RankingTask.from_pairs(
        [0] * len(truth_items),
        list(truth_items),
        torch.arange(num_items),
        [0] * len(exclude_items),
        list(exclude_items),
    )
    return task, user_emb, item_emb


def test_masking_skips_masked_items():
    # Ranking by score is [5, 4, 3, 2, 1, 0]; truth {3} is ranked 3rd.
    evaluator = Evaluator(ks=(1, 3), metrics=("hit", "mrr"))
    task, user_emb, item_emb = _ordered_task(exclude_items=[])
    unmasked = evaluator.evaluate(task, user_emb, item_emb)
    assert unmasked["all/hit@1"] == 0.0
    assert unmasked["all/mrr@3"] == pytest.approx(1 / 3)
    # Masking 5 and 4 moves item 3 to the top.
    task, user_emb, item_emb = _ordered_task(exclude_items=[5, 4])
    masked = evaluator.evaluate(task, user_emb, item_emb)
    assert masked["all/hit@1"] == 1.0
    assert masked["all/mrr@3"] == 1.0


def test_masked_item_never_counts():
    # A masked truth item is ranked last (-inf) and never counts as a hit, even with
    # K larger than the number of unmasked candidates.
    evaluator = Evaluator(ks=(6,), metrics=("hit", "recall"))
    task, user_emb, item_emb = _ordered_task(exclude_items=[3, 5], truth_items=(3, 5))
    assert evaluator.evaluate(task, user_emb, item_emb)["all/hit@6"] == 0.0
    task, user_emb, item_emb = _ordered_task(exclude_items=[3], truth_items=(3, 0))
    assert evaluator.evaluate(task, user_emb, item_emb)["all/recall@6"] == pytest.approx(0.5)


def test_masked_items_never_in_top_k():
    # With every unmasked item a truth item and K = number of unmasked items, all top-K
    # slots are hits only if no masked item got in, even though masked ones score highest.
    user_emb, item_emb, cands, truth, excl = _random_problem(5, num_cands=70)
    user = sorted(truth)[0]
    scores = item_emb[cands] @ user_emb[user]
    top = [int(cands[j]) for j in scores.argsort(descending=True)]
    masked, rest = top[:60], top[60:]
    task = RankingTask.from_pairs([user] * 10, rest, cands, [user] * 60, masked)
    out = Evaluator(ks=(10,), metrics=("precision",)).evaluate(task, user_emb, item_emb)
    assert out["all/precision@10"] == 1.0


def test_popularity_embeddings_dim_one():
    user_emb, item_emb, cands, truth, excl = _random_problem(6)
    counts = torch.randperm(item_emb.size(0)).to(torch.float64).unsqueeze(1)  # distinct
    ones = torch.ones(user_emb.size(0), 1, dtype=torch.float64)
    _, per_user = Evaluator(ks=KS).evaluate(_task(cands, truth, excl), ones, counts, True)
    expected = _naive(ones, counts, cands, truth, excl, KS)
    for key, values in expected.items():
        torch.testing.assert_close(per_user[key], values, msg=key)


def test_fewer_candidates_than_k():
    task = RankingTask.from_pairs([0], [2], [0, 1, 2], [], [])
    out = Evaluator(ks=(10,), metrics=("precision", "ndcg")).evaluate(
        task, torch.ones(1, 1), torch.tensor([[3.0], [2.0], [1.0]])
    )
    assert out["all/precision@10"] == pytest.approx(0.1)
    assert out["all/ndcg@10"] == pytest.approx(1 / math.log2(4))


def test_from_pairs_builds_sorted_local_csr():
    # Candidates are shuffled global ids; columns are positions in that order.
    task = RankingTask.from_pairs(
        users_of_truth=np.array([7, 3, 7, 7]),
        items_of_truth=np.array([30, 10, 20, 30]),  # (7, 30) twice: counted once
        candidates=torch.tensor([30, 10, 20, 40]),
        exclude_users=torch.tensor([3, 3, 9]),  # user 9 has no truth: ignored
        exclude_items=torch.tensor([40, 99, 10]),  # 99 is not a candidate: ignored
        groups_by_user={"g": np.array([7, 8])},
    )
    assert task.users.tolist() == [3, 7]
    assert task.truth_indptr.tolist() == [0, 1, 3]
    assert task.truth_indices.tolist() == [1, 0, 2]
    assert task.exclude_indptr.tolist() == [0, 1, 1]
    assert task.exclude_indices.tolist() == [3]
    assert task.num_truth.tolist() == [1, 2]
    assert task.groups["g"].tolist() == [False, True]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"items_of_truth": [1, 55]}, ValueError, r"truth item 55 \(user 1\) is not among"),
        ({"candidates": [1, 2, 2]}, ValueError, "item 2 repeats"),
        ({"users_of_truth": [0]}, ValueError, "differ in length: 1 vs 2"),
        ({"exclude_users": [0, 1]}, ValueError, "exclude_users and exclude_items differ"),
        ({"items_of_truth": np.array([1.0, 2.0])}, TypeError, "integer ids"),
        ({"candidates": []}, ValueError, "candidates is empty"),
    ],
)
def test_from_pairs_errors(kwargs, error, match):
    args = {
        "users_of_truth": [0, 1],
        "items_of_truth": [1, 2],
        "candidates": [1, 2, 3],
        "exclude_users": [0],
        "exclude_items": [3],
    }
    args.update(kwargs)
    with pytest.raises(error, match=match):
        RankingTask.from_pairs(**args)


def test_task_validation():
    ptr = torch.tensor([0, 1, 1])
    with pytest.raises(ValueError, match="user 5 .* has no ground-truth"):
        RankingTask(
            torch.tensor([4, 5]), torch.arange(3), ptr, torch.tensor([0]), ptr, torch.tensor([1])
        )
    with pytest.raises(ValueError, match=r"local candidate positions in \[0, 3\)"):
        RankingTask(
            torch.tensor([4]),
            torch.arange(3),
            ptr[:2],
            torch.tensor([3]),
            ptr[:2],
            torch.tensor([1]),
        )
    with pytest.raises(ValueError, match="bool mask"):
        RankingTask(
            torch.tensor([4]),
            torch.arange(3),
            ptr[:2],
            torch.tensor([0]),
            ptr[:2],
            torch.tensor([1]),
            groups={"g": torch.tensor([1])},
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"metrics": ("auc",)}, "unknown metric"),
        ({"ks": (0,)}, "ks must be positive"),
        ({"batch_size": 0}, "batch_size must be positive"),
        ({"sampled_negatives": -1}, "sampled_negatives"),
    ],
)
def test_evaluator_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Evaluator(**kwargs)


def test_embedding_errors():
    task = RankingTask.from_pairs([0], [2], [0, 1, 2], [], [])
    with pytest.raises(ValueError, match="max candidate 2 vs 2 rows"):
        Evaluator().evaluate(task, torch.ones(1, 4), torch.ones(2, 4))
    with pytest.raises(ValueError, match="expected user_emb"):
        Evaluator().evaluate(task, torch.ones(1, 4), torch.ones(3, 5))


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
    # A tie goes to the positive: negative item 5 now scores 2 like the positive.
    item_emb[5] = 2.0
    out = Evaluator(ks=(1,), sampled_negatives=4, sampled_ks=(1,)).evaluate(
        task, user_emb, item_emb
    )
    assert out["all/sampled_hr@1"] == 1.0
    assert out["all/sampled_ndcg@1"] == 1.0


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
    user_emb, item_emb, cands, truth, excl = _random_problem(7)
    task = _task(cands, truth, excl)

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
    sampler = _NegativeSampler(task, truth_keys, excl_keys, evaluator)
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


def test_duplicate_truth_in_hand_built_task():
    ptr = torch.tensor([0, 2])
    task = RankingTask(
        torch.tensor([0]), torch.arange(3), ptr, torch.tensor([1, 1]), ptr, torch.tensor([0, 2])
    )
    with pytest.raises(ValueError, match="same ground-truth item twice"):
        Evaluator().evaluate(task, torch.ones(1, 2), torch.ones(3, 2))


def test_repr():
    assert repr(Evaluator(ks=(5,), metrics=("ndcg",), batch_size=8)) == (
        "Evaluator(ks=[5], metrics=['ndcg'], batch_size=8)"
    )
    assert repr(Evaluator(sampled_negatives=99, seed=3)).endswith(
        "sampled_negatives=99, sampled_ks=[10], seed=3)"
    )
