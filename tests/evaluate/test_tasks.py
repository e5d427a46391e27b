import numpy as np
import pandas as pd
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
