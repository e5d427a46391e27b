import itertools
import math

import numpy as np
import pytest
import torch

from gnnrec.evaluate import Evaluator, RankingTask
from gnnrec.nn import Scorer

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


def _tied_problem(seed, num_users=12, num_items=6):
    """Integer-valued scores (many ties, also across the top-K cut) and masks."""
    rng = np.random.default_rng(seed)
    user_emb = torch.from_numpy(rng.integers(0, 2, size=(num_users, 2)).astype(np.float64))
    item_emb = torch.from_numpy(rng.integers(0, 3, size=(num_items, 2)).astype(np.float64))
    cands = rng.permutation(num_items)
    truth, excl = {}, {}
    for user in range(num_users):
        items = rng.permutation(cands)
        n_t, n_e = rng.integers(1, 4), rng.integers(0, 3)
        truth[user] = {int(i) for i in items[:n_t]}
        excl[user] = {int(i) for i in items[n_t : n_t + n_e]}
    return user_emb, item_emb, cands, truth, excl


def _brute_force(user_emb, item_emb, cands, truth, excl, ks):
    """Average of the no-tie metrics over every tie-break (all permutations of the items)."""
    out = {f"{name}@{k}": [] for name in NAMES for k in ks}
    perms = list(itertools.permutations(range(len(cands))))
    for user in sorted(truth):
        scores = (item_emb[cands] @ user_emb[user]).tolist()
        valid = [int(c) not in excl[user] for c in cands]
        sums = dict.fromkeys(out, 0.0)
        for perm in perms:
            order = sorted(range(len(cands)), key=lambda j: (not valid[j], -scores[j], perm[j]))
            rel = [valid[j] and int(cands[j]) in truth[user] for j in order]
            for k in ks:
                top = rel[:k]
                first = next((r for r, x in enumerate(top) if x), None)
                idcg = sum(1 / math.log2(r + 2) for r in range(min(len(truth[user]), k)))
                sums[f"recall@{k}"] += sum(top) / len(truth[user])
                sums[f"precision@{k}"] += sum(top) / k
                sums[f"hit@{k}"] += float(first is not None)
                sums[f"mrr@{k}"] += 0.0 if first is None else 1 / (first + 1)
                sums[f"ndcg@{k}"] += (
                    sum(1 / math.log2(r + 2) for r, x in enumerate(top) if x) / idcg
                )
        for key, total in sums.items():
            out[key].append(total / len(perms))
    return {key: torch.tensor(values, dtype=torch.float64) for key, values in out.items()}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("ks", [(1, 2, 3), (2, 4, 8)])
def test_ties_match_average_over_all_tie_breaks(seed, ks):
    # ks = (1, 2, 3) cuts tied blocks at K_max = 3 < m = 6 (the block's rest is counted
    # outside the top list); ks = (2, 4, 8) has K > m. Chunks of 5 users split the rows.
    user_emb, item_emb, cands, truth, excl = _tied_problem(seed)
    task = _task(cands, truth, excl)
    _, per_user = Evaluator(ks=ks, batch_size=5).evaluate(task, user_emb, item_emb, True)
    expected = _brute_force(user_emb, item_emb, cands, truth, excl, ks)
    for key, values in expected.items():
        torch.testing.assert_close(per_user[key], values, rtol=0, atol=1e-12, msg=key)


def test_constant_scores_give_the_random_level():
    # All scores equal: Recall@K = K / m' exactly, m' = the user's unmasked candidates
    # (1 when K >= m'). The old top-k order gave whatever torch.topk returned.
    m = 50
    rng = np.random.default_rng(0)
    truth = {u: {int(rng.integers(0, m))} for u in range(30)}
    excl = {u: set(rng.choice(m, size=u, replace=False).tolist()) - truth[u] for u in truth}
    task = _task(np.arange(m), truth, excl)
    ks = (1, 10, 20, 60)
    _, per_user = Evaluator(ks=ks, batch_size=7).evaluate(
        task, torch.ones(30, 3), torch.ones(m, 3), True
    )
    valid = torch.tensor([m - len(excl[u]) for u in sorted(truth)], dtype=torch.float64)
    for k in ks:
        level = (k / valid).clamp(max=1.0)
        torch.testing.assert_close(per_user[f"recall@{k}"], level, rtol=0, atol=1e-12)
        torch.testing.assert_close(per_user[f"hit@{k}"], level, rtol=0, atol=1e-12)
        torch.testing.assert_close(per_user[f"precision@{k}"], level / k, rtol=0, atol=1e-12)
    harmonic = sum(1 / r for r in range(1, 11))
    torch.testing.assert_close(per_user["mrr@10"], harmonic / valid, rtol=0, atol=1e-12)


def test_random_scores_near_the_random_level():
    # Scores independent of the (uniform) truth: mean Recall@10 is 10 / m in expectation;
    # 4 standard errors of a Bernoulli(10 / m) mean over 3000 users.
    n, m, k = 3000, 200, 10
    gen = torch.Generator().manual_seed(0)
    users = torch.arange(n)
    items = torch.randint(0, m, (n,), generator=gen)
    task = RankingTask.from_pairs(users, items, torch.arange(m))
    out = Evaluator(ks=(k,), metrics=("recall",)).evaluate(
        task, torch.randn(n, 16, generator=gen), torch.randn(m, 16, generator=gen)
    )
    p = k / m
    assert abs(out["all/recall@10"] - p) < 4 * math.sqrt(p * (1 - p) / n)


def test_ties_do_not_depend_on_candidate_order():
    # Listing the candidates in reverse order reverses the local positions, which is what
    # topk's order of equal values follows; once ties cost their expectation nothing changes.
    user_emb, item_emb, cands, truth, excl = _tied_problem(3, num_users=20, num_items=9)
    evaluator = Evaluator(ks=(1, 3, 5))
    forward = evaluator.evaluate(_task(cands, truth, excl), user_emb, item_emb)
    backward = evaluator.evaluate(_task(cands[::-1].copy(), truth, excl), user_emb, item_emb)
    assert forward.keys() == backward.keys()
    for key in forward:
        assert forward[key] == pytest.approx(backward[key], abs=1e-12), key


def test_nan_scores_raise_naming_the_user():
    task = RankingTask.from_pairs([3, 5], [0, 1], [0, 1, 2])
    user_emb = torch.ones(6, 2)
    user_emb[5, 1] = float("nan")
    with pytest.raises(ValueError, match=r"NaN for user 5 \(row 1\).*user_emb or item_emb"):
        Evaluator(ks=(1,)).evaluate(task, user_emb, torch.ones(3, 2))
    # A NaN only at a masked item is masked away.
    item_emb = torch.ones(3, 2)
    item_emb[2, 0] = float("nan")
    task = RankingTask.from_pairs([0], [0], [0, 1, 2], [0], [2])
    out = Evaluator(ks=(1,), metrics=("recall",)).evaluate(task, torch.ones(1, 2), item_emb)
    assert out["all/recall@1"] == pytest.approx(1 / 2)


class _MatrixScorer(Scorer):
    """A Scorer over an explicit dense score matrix, recording the blocks it is asked for."""

    def __init__(self, scores: torch.Tensor, wrong_shape: bool = False) -> None:
        super().__init__(*scores.shape, dtype=scores.dtype)
        self.scores, self.wrong_shape, self.calls = scores, wrong_shape, []

    def against(self, items):
        def block(users):
            self.calls.append(users.numel())
            out = self.scores[users][:, items]
            return out[:, :-1] if self.wrong_shape else out

        return block


@pytest.mark.parametrize("seed", [0, 5])
def test_a_scorer_is_ranked_exactly_as_the_same_scores_by_dot_product(seed):
    user_emb, item_emb, cands, truth, excl = _random_problem(seed)
    scores = user_emb @ item_emb.T
    scores[:, ::4] = 0.25  # blocks of tied scores that cross the cut at K
    scores[::5] = 1.0  # users whose every score ties
    task = _task(cands, truth, excl, {"some": np.array(sorted(truth)[::2])})
    evaluator = Evaluator(ks=KS, batch_size=16, sampled_negatives=30, sampled_ks=(1, 5))
    eye = torch.eye(scores.size(1), dtype=torch.float64)
    expected = evaluator.evaluate(task, scores, eye, return_per_user=True)
    scorer = _MatrixScorer(scores)
    results, per_user = evaluator.evaluate(task, scorer, return_per_user=True)
    assert results == expected[0]
    for key, values in expected[1].items():
        assert torch.equal(per_user[key], values), key
    assert scorer.calls == [16, 16, 16, 2]  # 50 users in chunks of batch_size


def test_a_scorer_with_a_wrong_block_or_with_item_embeddings_fails_clearly():
    user_emb, item_emb, cands, truth, excl = _random_problem(0)
    task = _task(cands, truth, excl)
    bad = _MatrixScorer(user_emb @ item_emb.T, wrong_shape=True)
    with pytest.raises(ValueError, match=r"_MatrixScorer returned a block of shape \(50, 69\)"):
        Evaluator().evaluate(task, bad)
    with pytest.raises(ValueError, match="a scorer ranks alone"):
        Evaluator().evaluate(task, _MatrixScorer(user_emb @ item_emb.T), item_emb)
    with pytest.raises(ValueError, match="item_emb is missing"):
        Evaluator().evaluate(task, user_emb)
