"""Every model config builds from a tiny TrainingData and honours the Recommender contract."""

import numpy as np
import pandas as pd
import pytest
import torch
from hydra.utils import instantiate

from gnnrec.config import CONFIG_DIR, compose_config
from gnnrec.data.graph import build_graph
from gnnrec.data.knowledge import knowledge_graph
from gnnrec.errors import ConfigError
from gnnrec.models import Recommender, TrainingData, build_from_data
from gnnrec.nn import Scorer
from gnnrec.run import ModelLoader, build_model
from gnnrec.train import check_training

MODELS = sorted(p.stem for p in (CONFIG_DIR / "model").glob("*.yaml"))
SAMPLERS = sorted(p.stem for p in (CONFIG_DIR / "sampler").glob("*.yaml"))

# 6 users; items 0-3 in domain "a", items 4-8 in the target domain "b" (item 8: no edge).
TRAIN = pd.DataFrame(
    {
        "user_idx": [0, 0, 1, 1, 2, 2, 3, 3, 4, 5, 5],
        "item_idx": [0, 4, 1, 5, 2, 6, 3, 7, 0, 1, 4],
        "domain_idx": [0, 1, 0, 1, 0, 1, 0, 1, 0, 0, 1],
    }
)
ITEM_DOMAIN = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1])


def tiny_data(seed: int = 0) -> TrainingData:
    g = torch.Generator().manual_seed(seed)
    kg = pd.DataFrame({"head": ["e0", "e1"], "relation": ["r", "r"], "tail": ["e1", "e2"]})
    links = pd.DataFrame({"item_idx": [4, 5], "entity": ["e0", "e1"]})
    item_text = torch.randn(9, 16, generator=g)
    profiles = torch.randn(6, 16, generator=g)
    data = TrainingData(
        num_users=6,
        num_items=9,
        domains=("a", "b"),
        item_domain=torch.tensor(ITEM_DOMAIN),
        target_domain=1,
        train_users=torch.tensor(TRAIN["user_idx"].to_numpy()),
        train_items=torch.tensor(TRAIN["item_idx"].to_numpy()),
        builders={
            "graph": lambda: build_graph(6, ITEM_DOMAIN, ["a", "b"], TRAIN),
            "knowledge_graph": lambda: knowledge_graph(kg, links, 9),
            "item_text_emb": lambda: item_text,
            "user_profiles": lambda: profiles,
            # model configs only: a run folder needs the run's config, data and split
            "load_model": lambda: ModelLoader(None, None, None, data),
        },
    )
    return data


def model_config(name: str, *extra: str):
    return compose_config([f"model={name}", "model.embedding_dim=8", *extra]).model


BLEND = [  # two components fitted on the training data, cold users on popularity only
    "+model.components.pop={_target_: gnnrec.models.Popularity, _partial_: true}",
    "+model.components.knn={_target_: gnnrec.models.ItemKNN, _partial_: true, k: 2}",
    "+model.weights={pop: 0.5, knn: 1.0}",
    "model.cold_weights={pop: 1.0, knn: 0.0}",
]


def small(name: str, *extra: str) -> list[str]:
    # Shrink what a YAML makes large; keys only where the model has them.
    if name == "blend":
        return BLEND + list(extra)
    keys = compose_config([f"model={name}"]).model
    sizes = {"hidden_dim": 8, "dim": 8}
    return [f"model.{k}={v}" for k, v in sizes.items() if k in keys] + list(extra)


@pytest.mark.parametrize("name", MODELS)
def test_every_model_builds_from_training_data_and_keeps_the_contract(name):
    keys = compose_config([f"model={name}"]).model
    extra = ["model.embedding_dim=8"] if "embedding_dim" in keys else []
    cfg = compose_config([f"model={name}", *extra, *small(name)])
    torch.manual_seed(0)
    model = build_model(cfg.model, tiny_data())
    assert isinstance(model, Recommender)
    ranked = model()
    out = model.encode()
    users = torch.tensor([0, 1, 2, 3])
    target_items = torch.tensor([[4, 5], [6, 7], [8, 4], [5, 8]])
    if isinstance(ranked, Scorer):  # item-item models: the evaluator asks for blocks
        assert not model.trains
        assert (ranked.num_users, ranked.num_items) == (6, 9)
        candidates = torch.tensor([4, 5, 6, 7, 8])  # the target domain, as the evaluator ranks
        block = ranked.against(candidates)(users)
        assert block.shape == (4, 5) and block.dtype == ranked.dtype
        expected = block.gather(1, target_items - 4)
        torch.testing.assert_close(
            model.score_matrix(out, users, candidates), block, rtol=0, atol=0
        )
    else:
        user_emb, item_emb = ranked
        assert user_emb.shape[0] == 6 and item_emb.shape[0] == 9
        assert user_emb.shape[1] == item_emb.shape[1]
        expected = (user_emb[users].unsqueeze(1) * item_emb[target_items]).sum(-1)
    # what the losses score is what the evaluator ranks, for target-domain items
    torch.testing.assert_close(model.score(out, users, target_items), expected)
    torch.testing.assert_close(model.score(out, users, target_items[:, 0]), expected[:, 0])
    assert model.trainable == model.trains
    if not model.trains:
        return
    loss = instantiate(cfg.loss)
    sampler = build_from_data(instantiate(cfg.sampler), tiny_data(), "sampler")
    check_training(model, loss, sampler)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(model.parameter_groups(), lr=0.05)
    before = [p.detach().clone() for p in params]
    batch = next(sampler.epoch(8))
    value = loss(model, *batch)
    assert torch.isfinite(value)
    value.backward()
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, params, strict=True))


def test_a_misspelt_model_key_fails_naming_the_model():
    cfg = compose_config(["model=lightgcn", "+model.embeding_dim=8"])
    with pytest.raises(ConfigError, match="model gnnrec.models.LightGCN: .*embeding_dim"):
        build_model(cfg.model, tiny_data())


def test_a_required_argument_that_is_not_training_data_lists_the_fields():
    class NeedsSomething(Recommender):
        def __init__(self, num_users: int, something: int) -> None:
            super().__init__()

    with pytest.raises(ValueError, match="needs 'something'.*training data has .*item_text_emb"):
        build_from_data(NeedsSomething, tiny_data())


def test_missing_text_features_name_the_encoder_setting():
    data = tiny_data()
    data = TrainingData(**{**data.__dict__, "builders": {}})
    with pytest.raises(ConfigError, match="needs 'item_text_emb': encoder=none"):
        build_model(model_config("lightgcn_text"), data)


def test_lazy_fields_are_built_only_when_a_model_names_them():
    calls = []
    data = tiny_data()
    data.builders = {**data.builders, "item_text_emb": lambda: calls.append(1)}
    build_model(model_config("lightgcn"), data)
    assert calls == []  # LightGCN takes no text: nothing encoded


@pytest.mark.parametrize("name", SAMPLERS)
def test_every_sampler_builds_from_training_data(name):
    cfg = compose_config([f"sampler={name}"])
    sampler = build_from_data(instantiate(cfg.sampler), tiny_data(), "sampler")
    users, pos, neg = next(sampler.epoch(4))
    assert neg.shape == (4, sampler.num_negatives)
