"""The worked examples of docs/extending.md run as written."""

import functools
import re
from pathlib import Path

import torch

from gnnrec.models import LightGCN, TrainingData, build_from_data
from gnnrec.train import NegativeSampler

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


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
    namespace: dict = {}
    exec(code_blocks("python")[0], namespace)
    model = build_from_data(namespace["ShrunkPopularity"], tiny())
    users, items = model()
    scores = (users @ items.t())[0]
    # target items 2, 3, 4 with counts 3, 1, 0 (+1 each): 4/7, 2/7, 1/7
    torch.testing.assert_close(scores[2:], torch.tensor([4 / 7, 2 / 7, 1 / 7], dtype=scores.dtype))
    assert not model.trains


def test_the_loss_example_trains_a_model():
    namespace: dict = {}
    exec(code_blocks("python")[1], namespace)
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
