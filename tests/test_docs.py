"""The worked examples of docs/extending.md run as written."""

import functools
import re
from pathlib import Path

import numpy as np
import torch

from gnnrec.models import LightGCN, TrainingData, build_from_data
from gnnrec.nn import Scorer
from gnnrec.train import NegativeSampler

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


def defining(name: str) -> dict:
    """The namespace of the page's one Python block that defines class ``name``."""
    (block,) = [b for b in code_blocks("python") if f"class {name}(" in b]
    namespace: dict = {}
    exec(block, namespace)
    return namespace


def tiny() -> TrainingData:
    return TrainingData(
        num_users=3,
        num_items=5,
        domains=("a", "b"),
        item_domain=torch.tensor([0, 0, 1, 1, 1]),
        target_domain=1,
        train_users=torch.tensor([0, 0, 1, 2, 2, 2]),
        train_items=torch.tensor([0, 2, 2, 1, 2, 3]),
    )


def test_the_model_example_builds_from_training_data_and_ranks_by_popularity():
    model = build_from_data(defining("ShrunkPopularity")["ShrunkPopularity"], tiny())
    users, items = model()
    scores = (users @ items.t())[0]
    # target items 2, 3, 4 with counts 3, 1, 0 (+1 each): 4/7, 2/7, 1/7
    torch.testing.assert_close(scores[2:], torch.tensor([4 / 7, 2 / 7, 1 / 7], dtype=scores.dtype))
    assert not model.trains


def test_the_loss_example_trains_a_model():
    namespace = defining("HingeLoss")
    data = tiny()
    torch.manual_seed(0)
    model = build_from_data(functools.partial(LightGCN, embedding_dim=4), data)
    loss = namespace["HingeLoss"](margin=1.0)
    sampler = NegativeSampler(data.train_users, data.train_items, data.item_domain, num_negatives=2)
    users, pos, neg = next(sampler.epoch(6))
    value = loss(model, users, pos, neg)
    s_pos = model.score(model.encode(), users, pos)
    s_neg = model.score(model.encode(), users, neg)
    expected = (1.0 - s_pos.unsqueeze(1) + s_neg).clamp(min=0).mean()
    torch.testing.assert_close(value, expected)
    value.backward()
    assert model.embedding.weight.grad.abs().sum() > 0


def test_the_scorer_example_scores_co_occurrences_as_numpy_does():
    model = build_from_data(defining("CoOccurrence")["CoOccurrence"], tiny())
    scorer = model()
    assert isinstance(scorer, Scorer) and not model.trains
    x = np.zeros((3, 5))
    x[[0, 0, 1, 2, 2, 2], [0, 2, 2, 1, 2, 3]] = 1.0
    items = torch.tensor([4, 2, 3])  # any candidate order
    scores = scorer.against(items)(torch.tensor([2, 0]))
    np.testing.assert_array_equal(scores.numpy(), (x @ x.T @ x)[[2, 0]][:, [4, 2, 3]])
    # user 0 (items 0, 2): item 2 co-occurs with 0 once and with itself 3 times
    assert scores[1, 1] == 4.0
