"""model=blend: per-user standardised scores of other models, weighted per user group."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from gnnrec.api import load_run_config, train
from gnnrec.config import compose_config
from gnnrec.errors import ConfigError
from gnnrec.models import Blend, Recommender
from gnnrec.nn import Scorer
from gnnrec.nn.scoring import InteractionScorer
from gnnrec.run import build_model, prepare, trained_state
from gnnrec.utils.io import load_checkpoint, save_checkpoint
from tests.models.test_contract import tiny_data


class Table(Recommender):
    """Fixed scores ``user_emb @ item_emb.T`` (the component, not the thing under test)."""

    trains = False

    def __init__(self, user_emb: torch.Tensor, item_emb: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("u", user_emb)
        self.register_buffer("v", item_emb)

    def forward(self):
        return self.u, self.v


class FixedScorer(Recommender):
    """A component whose forward is a Scorer over a dense matrix."""

    trains = False

    def __init__(self, scores: np.ndarray) -> None:
        super().__init__()
        self.scores = scores

    def forward(self) -> Scorer:
        import scipy.sparse as sp

        eye = sp.identity(self.scores.shape[0], format="csr")
        return InteractionScorer(eye, lambda cols: lambda rows: rows @ self.scores[:, cols])


def blend(components, weights, cold_weights=None, normalize="zscore") -> Blend:
    data = tiny_data()
    return Blend(
        components=components,
        weights=weights,
        load_model=lambda m: m,
        num_users=data.num_users,
        item_domain=data.item_domain,
        target_domain=data.target_domain,
        train_users=data.train_users,
        train_items=data.train_items,
        cold_weights=cold_weights,
        normalize=normalize,
    )


TARGET = torch.tensor([4, 5, 6, 7, 8])  # tiny_data's target domain; user 4 is its only cold user


def test_blend_matches_the_hand_computed_standardised_sum():
    # component a: every user scores target items 4..8 as 2, 1, 1, 1, 0 (sources: 9)
    a = Table(torch.ones(6, 1), torch.tensor([[9.0], [9], [9], [9], [2], [1], [1], [1], [0]]))
    # component b: user u scores item i as u * i
    b = Table(torch.arange(6.0).unsqueeze(1), torch.arange(9.0).unsqueeze(1))
    model = blend({"a": a, "b": b}, {"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 0.0})
    scores = model().against(TARGET)(torch.tensor([1, 4, 0]))
    # a over (2, 1, 1, 1, 0): mean 1, population s.d. sqrt(0.4)
    za = torch.tensor([1.0, 0, 0, 0, -1]) / math.sqrt(0.4)
    # b for user u > 0 over (4u .. 8u): z = (-2, -1, 0, 1, 2) / sqrt(2); user 0: constant, 0
    zb = torch.tensor([-2.0, -1, 0, 1, 2]) / math.sqrt(2)
    expected = torch.stack([za + 2 * zb, 3 * za, za])  # user 1 warm, 4 cold, 0 constant b
    torch.testing.assert_close(scores, expected.double())


def test_a_pair_scores_the_same_whatever_else_is_asked_for():
    a = Table(torch.randn(6, 3), torch.randn(9, 3))
    b = FixedScorer(np.random.default_rng(0).normal(size=(6, 9)))
    model = blend({"a": a, "b": b}, {"a": 1.0, "b": 0.5})
    scorer = model()
    users = torch.tensor([0, 2, 5])
    full = scorer.against(TARGET)(users)
    torch.testing.assert_close(scorer.against(torch.tensor([6]))(users), full[:, 2:3])
    torch.testing.assert_close(scorer.against(torch.tensor([8, 4]))(users), full[:, [4, 0]])
    # an item outside the target domain is standardised with the target domain's statistics
    source = scorer.against(torch.tensor([1, 6]))(users)
    torch.testing.assert_close(source[:, 1], full[:, 2])


def test_blend_equals_a_numpy_computation_of_random_components():
    rng = np.random.default_rng(1)
    dense = [rng.normal(size=(6, 9)) for _ in range(3)]
    parts = {
        "t": Table(torch.from_numpy(dense[0]), torch.eye(9, dtype=torch.float64)),
        "s": FixedScorer(dense[1]),
        "r": FixedScorer(dense[2]),
    }
    warm_w = {"t": 0.7, "s": 0.0, "r": 1.3}
    cold_w = {"t": 0.2, "s": 2.0, "r": 0.0}
    scores = blend(parts, warm_w, cold_w)().against(TARGET)(torch.arange(6)).numpy()
    warm = np.array([True, True, True, True, False, True])
    expected = np.zeros((6, 5))
    for name, m in zip(parts, dense, strict=True):
        cols = m[:, 4:]
        z = (cols - cols.mean(1, keepdims=True)) / cols.std(1, keepdims=True)
        w = np.where(warm, warm_w[name], cold_w[name])[:, None]
        expected += w * z
    np.testing.assert_allclose(scores, expected, rtol=1e-12, atol=1e-12)
    raw = blend(parts, warm_w, cold_w, normalize="none")().against(TARGET)(torch.arange(6))
    expected_raw = sum(
        np.where(warm, warm_w[n], cold_w[n])[:, None] * m[:, 4:]
        for n, m in zip(parts, dense, strict=True)
    )
    np.testing.assert_allclose(raw.numpy(), expected_raw, rtol=1e-12)


@pytest.mark.parametrize(
    ("weights", "cold", "message"),
    [
        ({"a": 1.0}, None, "weights must give one weight per component .*missing b"),
        ({"a": 1.0, "b": 1.0, "c": 1.0}, None, "unknown c"),
        ({"a": -1.0, "b": 1.0}, None, r"weights.a=-1.0: expected a finite weight >= 0"),
        ({"a": float("nan"), "b": 1.0}, None, "weights.a=nan"),
        ({"a": 0.0, "b": 0.0}, None, "weights: every weight is 0"),
        ({"a": 1.0, "b": 1.0}, {"a": 0.0, "b": 0.0}, "cold_weights: every weight is 0"),
    ],
)
def test_bad_weights_fail_naming_the_key(weights, cold, message):
    parts = {"a": Table(torch.ones(6, 1), torch.ones(9, 1)), "b": FixedScorer(np.ones((6, 9)))}
    with pytest.raises(ValueError, match=message):
        blend(parts, weights, cold)


def test_an_empty_blend_and_a_bad_normalize_fail():
    with pytest.raises(ConfigError, match="components is empty"):
        build_model(compose_config(["model=blend"]).model, tiny_data())
    cfg = compose_config(
        [
            "model=blend",
            "+model.components.pop={_target_: gnnrec.models.Popularity, _partial_: true}",
            "+model.weights.pop=1",
            "model.normalize=rank",
        ]
    )
    with pytest.raises(ConfigError, match="normalize='rank': expected one of zscore, none"):
        build_model(cfg.model, tiny_data())


def test_a_component_spec_that_is_neither_a_folder_nor_a_config_is_refused():
    cfg = compose_config(["model=blend", "+model.components.x=3", "+model.weights.x=1"])
    with pytest.raises(ConfigError, match="a run folder or a model config.*got 3"):
        build_model(cfg.model, tiny_data())


def test_components_are_frozen_and_the_blend_does_not_train():
    cfg = compose_config(
        [
            "model=blend",
            "+model.components.mf={_target_: gnnrec.models.MF, _partial_: true, embedding_dim: 4}",
            "+model.weights.mf=1",
        ]
    )
    model = build_model(cfg.model, tiny_data())
    assert not model.trainable and not model.parts[0].training
    assert "mf: 1/1" in repr(model)


ML100K = ["data=ml100k", "encoder=none", "tracker=none", "eval.sampled_negatives=99"]


@pytest.fixture(scope="module")
def mf_run(tmp_path_factory, cache_dir, data_root):
    """A real MF run on ML-100K (5 epochs), the blend's trained component."""
    out = tmp_path_factory.mktemp("mf")
    train(
        [
            *ML100K,
            f"paths.cache_dir={cache_dir}",
            "model=mf",
            "trainer.max_epochs=5",
            "trainer.eval_every=5",
        ],
        output_dir=out,
    )
    return out


KNN = "{_target_: gnnrec.models.ItemKNN, _partial_: true, k: 50, shrink: 10}"


def test_a_run_folder_component_reproduces_its_run_and_mixes_as_numpy_says(
    mf_run, cache_dir, tmp_path
):
    common = [
        *ML100K,
        f"paths.cache_dir={cache_dir}",
        "model=blend",
        f"+model.components.mf={mf_run}",
        f"+model.components.knn={KNN}",
    ]
    alone = train([*common, "+model.weights={mf: 1, knn: 0}"], output_dir=tmp_path / "alone")
    saved = json.loads((mf_run / "metrics.json").read_text())
    for key in (
        "test/all/ndcg@20",
        "test/all/recall@50",
        "val/all/ndcg@20",
        "test/all/sampled_hr@10",
    ):
        assert alone[key] == pytest.approx(saved[key], abs=1e-12), key

    mixed = train([*common, "+model.weights={mf: 1, knn: 0.5}"], output_dir=tmp_path / "mixed")
    # independently: MF's tables from its checkpoint, item-KNN from its own config
    setup = prepare(compose_config([*ML100K, f"paths.cache_dir={cache_dir}", "model=mf"]))
    setup.model.load_state_dict(trained_state(mf_run)[0])
    u, v = setup.model()
    knn_cfg = compose_config(["model=itemknn", "model.k=50", "model.shrink=10"]).model
    knn = build_model(knn_cfg, setup.train)()
    items = torch.arange(setup.train.num_items)
    users = torch.arange(setup.train.num_users)
    s_mf = (u.detach() @ v.detach().T).double().numpy()
    s_knn = knn.against(items)(users).numpy()

    def z(m):
        return (m - m.mean(1, keepdims=True)) / m.std(1, keepdims=True)

    dense = torch.from_numpy(z(s_mf) + 0.5 * z(s_knn))
    eye = torch.eye(setup.train.num_items, dtype=torch.float64)
    expected = setup.protocol.evaluate("test", setup.tasks["test"], dense, eye)
    for key in ("test/all/ndcg@20", "test/all/recall@20", "test/all/mrr@20"):
        assert mixed[key] == pytest.approx(expected[key], rel=1e-9), key
    assert mixed["test/all/ndcg@20"] != pytest.approx(alone["test/all/ndcg@20"], rel=1e-6)


def mf_blend(cache_dir, folder, *extra: str):
    """The config of a blend of the MF run in ``folder`` alone, on ML-100K."""
    overrides = [*ML100K, f"paths.cache_dir={cache_dir}", "model=blend", *extra]
    return compose_config([*overrides, f"+model.components.mf={folder}", "+model.weights.mf=1"])


def test_a_run_of_another_split_is_refused_naming_the_key(mf_run, cache_dir):
    cfg = mf_blend(cache_dir, mf_run, "data.split.seed=1")
    with pytest.raises(ConfigError, match=r"made with data.split=\{.*'seed': 0.*this run has"):
        prepare(cfg)


def test_a_checkpoint_of_another_split_is_refused(mf_run, cache_dir, tmp_path):
    # the same config, a checkpoint whose recorded split differs (data files changed since)
    copy = tmp_path / "copy"
    (copy / ".hydra").mkdir(parents=True)
    (copy / "checkpoints").mkdir()
    (copy / ".hydra" / "config.yaml").write_text((mf_run / ".hydra" / "config.yaml").read_text())
    state = load_checkpoint(mf_run / "checkpoints" / "best.pt")
    state["identity"] = {**state["identity"], "split_fingerprint": "0123456789abcdef"}
    save_checkpoint(copy / "checkpoints" / "best.pt", state)
    assert load_run_config(copy).model._target_ == "gnnrec.models.MF"
    cfg = mf_blend(cache_dir, copy)
    with pytest.raises(ConfigError, match="split_fingerprint is 0123456789abcdef, this run's is"):
        prepare(cfg)


def test_a_folder_that_is_not_a_run_is_refused(tmp_path, cache_dir):
    cfg = mf_blend(cache_dir, tmp_path)
    with pytest.raises(ConfigError, match="is not a run folder"):
        prepare(cfg)
