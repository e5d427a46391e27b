import numpy as np
import pandas as pd
import pytest
import torch

from gnnrec.data.split import Split
from gnnrec.evaluate.evaluator import Evaluator
from gnnrec.evaluate.tasks import cold_item_tasks, ranking_tasks


def _split():
    # Items 0-1 source domain, 2-6 target. Item 6 never occurs in training (cold item);
    # item 5 occurs in training only through user 3.
    train = pd.DataFrame(
        {
            "user_idx": [0, 0, 1, 1, 2, 3],
            "item_idx": [0, 2, 1, 3, 0, 5],
            "domain_idx": [0, 1, 0, 1, 0, 1],
        }
    )
    val = pd.DataFrame({"user_idx": [0], "item_idx": [4], "group": ["warm"]})
    test = pd.DataFrame(
        {
            "user_idx": [0, 1, 2, 2],
            "item_idx": [6, 5, 6, 4],
            "group": ["warm", "warm", "cold", "cold"],
        }
    )
    return Split(train, val, test, "tgt", 1), np.array([0, 0, 1, 1, 1, 1, 1])


def test_cold_item_task_keeps_only_never_trained_positives():
    split, item_domain = _split()
    val, test = cold_item_tasks(split, item_domain)
    # Item 4 never occurs in training either: validation has a cold item.
    assert val.users.tolist() == [0] and val.truth_indices.tolist() == [2]
    assert val.exclude_indices.tolist() == [0]  # user 0's training item 2
    assert test.users.tolist() == [0, 2]
    assert test.candidates.tolist() == [2, 3, 4, 5, 6]
    # truth: user 0 -> item 6 (local 4); user 2 -> items 6 and 4 (4 is cold too).
    assert test.truth_indices.tolist() == [4, 2, 4]
    assert set(test.groups) == {"cold_item", "all"}


def test_cold_item_task_masks_warm_positives_and_training_items():
    split, item_domain = _split()
    split.test = pd.DataFrame({"user_idx": [2, 2], "item_idx": [6, 5], "group": ["cold", "cold"]})
    _, test = cold_item_tasks(split, item_domain)
    # user 2: truth item 6 (local 4); item 5 is a warm positive -> masked (local 3).
    assert test.users.tolist() == [2]
    assert test.truth_indices.tolist() == [4]
    assert test.exclude_indices.tolist() == [3]
    # A perfect score for item 5 must not push item 6 out of the top 1.
    user_emb = torch.tensor([[1.0], [1.0], [1.0], [1.0]])
    item_emb = torch.tensor([[0.0], [0.0], [0.0], [0.0], [0.0], [9.0], [5.0]])
    out = Evaluator(ks=[1], metrics=["hit"]).evaluate(test, user_emb, item_emb)
    assert out["cold_item/hit@1"] == 1.0
    main = ranking_tasks(split, item_domain)[1]
    assert Evaluator(ks=[1], metrics=["hit"]).evaluate(main, user_emb, item_emb)["cold/hit@1"] == 1


def test_no_cold_items_gives_no_task():
    split, item_domain = _split()
    split.val = split.val.iloc[:0]
    split.test = pd.DataFrame({"user_idx": [1], "item_idx": [5], "group": ["warm"]})
    assert cold_item_tasks(split, item_domain) == (None, None)


def test_cold_item_only_ranks_among_the_untrained_target_items():
    split, item_domain = _split()
    _, test = cold_item_tasks(split, item_domain, only=True)
    # untrained target items: 4 and 6 (2, 3 and 5 occur in training)
    assert test.candidates.tolist() == [4, 6]
    assert test.users.tolist() == [0, 2]
    assert set(test.groups) == {"cold_item_only", "all"}
    # user 2's truth is both cold items: nothing left to rank against, full marks
    out = Evaluator(ks=[1], metrics=["recall"]).evaluate(
        test, torch.ones(4, 1), torch.tensor([[0.0]] * 7)
    )
    assert out["cold_item_only/num_users"] == 2


def test_catalogue_items_without_any_interaction_are_candidates():
    split, item_domain = _split()
    item_domain = np.append(item_domain, 1)  # item 7: a target item nobody ever interacted with
    val, test = ranking_tasks(split, item_domain)
    assert 7 in test.candidates.tolist() and 7 in val.candidates.tolist()
    assert 7 in cold_item_tasks(split, item_domain, only=True)[1].candidates.tolist()


def test_knowing_which_items_are_new_is_worth_nothing_among_cold_items_only():
    """The degree-0-first random floor: strong among all items, random among cold ones."""
    from gnnrec.models import RandomRanking

    rng = np.random.default_rng(0)
    n_users, n_items = 400, 60  # items 0-9 source, 10-59 target
    item_domain = np.array([0] * 10 + [1] * 50)
    train_rows, test_rows = [], []
    for u in range(n_users):
        for i in rng.choice(np.arange(10, 40), size=3, replace=False):  # 10-39 trained
            train_rows.append((u, int(i), 1))
        test_rows.append((u, int(rng.integers(40, 60)), "warm"))  # 40-59: held out only
    train = pd.DataFrame(train_rows, columns=["user_idx", "item_idx", "domain_idx"])
    test = pd.DataFrame(test_rows, columns=["user_idx", "item_idx", "group"])
    split = Split(train, test.iloc[:0], test, "tgt", 1)
    counts = torch.bincount(torch.tensor(train["item_idx"].to_numpy()), minlength=n_items)
    ev = Evaluator(ks=[10], metrics=["recall"])
    among_all = cold_item_tasks(split, item_domain)[1]
    among_cold = cold_item_tasks(split, item_domain, only=True)[1]
    results = {}
    for cold_first in (False, True):
        model = RandomRanking(n_users, counts, cold_first=cold_first, seed=1)
        emb = model()
        results[cold_first] = (
            ev.evaluate(among_all, *emb)["cold_item/recall@10"],
            ev.evaluate(among_cold, *emb)["cold_item_only/recall@10"],
        )
    # among all 50 target items random gets 10/50; new-first gets 10/20 (20 new items)
    assert results[False][0] == pytest.approx(10 / 50, abs=0.05)
    assert results[True][0] == pytest.approx(10 / 20, abs=0.06)
    # among the 20 cold items both are random: 10/20, the same
    assert results[False][1] == pytest.approx(10 / 20, abs=0.06)
    assert results[True][1] == pytest.approx(results[False][1], abs=1e-12)


def test_sampled_protocol_without_negatives_for_a_user_fails_when_tasks_are_built():
    # Among the cold items {4, 6} only, test users 0 and 2 have each one masked or held
    # out: no negative is left to sample, which crashed the test evaluation after training.
    # Main task: 5 candidates less truth and masks (user 0: 6 / 2, 4; user 1: 5 / 3; user 2:
    # 6, 4).
    from gnnrec.errors import ConfigError
    from gnnrec.evaluate import Protocol

    split, item_domain = _split()
    assert Protocol(sampled_negatives=0).tasks(split, item_domain)["test"]["cold_item_only"]
    with pytest.raises(ConfigError) as info:
        Protocol(sampled_negatives=2).tasks(split, item_domain)
    assert str(info.value) == (
        "eval.sampled_negatives=2: 2 of the 2 users of the test cold_item_only task (e.g. user "
        "index 0) have no candidate to draw negatives from: each of the 2 candidate items is "
        "held out or masked for them; set eval.sampled_negatives=0, or remove cold_item_only "
        "from eval.tasks"
    )
    tasks = Protocol(sampled_negatives=2, tasks=["main", "cold_item"]).tasks(split, item_domain)
    assert tasks["test"]["main"].num_negative_candidates().tolist() == [2, 3, 3]
