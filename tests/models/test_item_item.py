"""Item-KNN, EASE and GF-CF: scores against hand-computed values and independent numpy code."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from gnnrec.config import compose_config
from gnnrec.errors import ConfigError
from gnnrec.models import EASE, GFCF, ItemKNN
from gnnrec.models import gfcf as gfcf_module
from gnnrec.models.gfcf import top_right_singular_vectors
from gnnrec.models.itemknn import _column_blocks
from gnnrec.nn import Scorer
from gnnrec.run import build_model, prepare
from tests.models.test_contract import tiny_data


def random_data(num_users=30, num_items=20, density=0.25, seed=0):
    """A random binary matrix with one item and one user without interactions."""
    rng = np.random.default_rng(seed)
    x = (rng.random((num_users, num_items)) < density).astype(np.float64)
    x[:, -1] = 0.0  # an item nobody interacted with
    x[0] = 0.0  # a user with no training history
    users, items = np.nonzero(x)
    # a repeated interaction counts once
    users, items = np.concatenate([users, users[:3]]), np.concatenate([items, items[:3]])
    return x, torch.tensor(users), torch.tensor(items)


def all_scores(model) -> np.ndarray:
    scorer = model()
    assert isinstance(scorer, Scorer)
    users = torch.arange(scorer.num_users)
    return scorer.against(torch.arange(scorer.num_items))(users).numpy()


# ------------------------------------------------------------------------------- item-KNN

# 3 users x 4 items: u0 {0, 1}, u1 {0, 1, 2}, u2 {2, 3}. Degrees 2, 2, 2, 1; co-occurrences
# (0,1) = 2, (0,2) = (1,2) = (2,3) = 1. With shrink 1: s01 = 2 / (2 + 1), s02 = s12 =
# 1 / (2 + 1), s23 = 1 / (sqrt(2) + 1) = sqrt(2) - 1.
KNN_USERS = torch.tensor([0, 0, 1, 1, 1, 2, 2])
KNN_ITEMS = torch.tensor([0, 1, 0, 1, 2, 2, 3])
S01, S02, S23 = 2 / 3, 1 / 3, math.sqrt(2) - 1


def test_item_knn_with_one_neighbour_matches_the_hand_computed_scores():
    # N_1: item 0 -> {1}, item 1 -> {0}, item 2 -> {3} (s23 > s02 = s12), item 3 -> {2}
    model = ItemKNN(3, 4, KNN_USERS, KNN_ITEMS, k=1, shrink=1.0)
    expected = [
        [S01, S01, 0.0, 0.0],  # u0 has 0 and 1; item 2's neighbour 3 is not u0's
        [S01, S01, 0.0, S23],
        [0.0, 0.0, S23, S23],
    ]
    np.testing.assert_allclose(all_scores(model), expected, rtol=1e-12)


def test_item_knn_breaks_a_tie_at_the_kth_neighbour_by_the_smaller_index():
    # N_2(item 2) = {3, then 0 or 1 at 1/3 each}: item 0 wins; item 3 has one positive.
    model = ItemKNN(3, 4, KNN_USERS, KNN_ITEMS, k=2, shrink=1.0)
    expected = [
        [S01, S01, S02, 0.0],  # u0 -> item 2 through item 0 only, not item 1
        [S01 + S02, S01 + S02, S02, S23],
        [S02, S02, S23, S23],
    ]
    np.testing.assert_allclose(all_scores(model), expected, rtol=1e-12)


def knn_reference(x, k, shrink):
    norms = np.sqrt(x.sum(0))
    denom = norms[:, None] * norms[None, :] + shrink
    sim = np.divide(x.T @ x, denom, out=np.zeros((x.shape[1],) * 2), where=denom > 0)
    np.fill_diagonal(sim, 0.0)
    weights = np.zeros_like(sim)
    for i in range(sim.shape[1]):
        ranked = sorted(range(sim.shape[0]), key=lambda j: (-sim[j, i], j))[:k]
        for j in ranked:
            weights[j, i] = sim[j, i] if sim[j, i] > 0 else 0.0
    return x @ weights


@pytest.mark.parametrize(("k", "shrink"), [(3, 2.0), (1, 0.0), (50, 10.0)])
def test_item_knn_equals_a_dense_numpy_computation(k, shrink):
    x, users, items = random_data()
    model = ItemKNN(*x.shape, users, items, k=k, shrink=shrink)
    np.testing.assert_allclose(all_scores(model), knn_reference(x, k, shrink), atol=1e-12)


def test_item_knn_fits_in_blocks_as_in_one(monkeypatch):
    x, users, items = random_data()
    whole = all_scores(ItemKNN(*x.shape, users, items, k=4))
    monkeypatch.setattr("gnnrec.models.itemknn._BLOCK_ENTRIES", 50)
    blocks = _column_blocks(x.T @ x.sum(1))
    assert len(blocks) > 5 and blocks[0][0] == 0 and blocks[-1][1] == x.shape[1]
    np.testing.assert_array_equal(all_scores(ItemKNN(*x.shape, users, items, k=4)), whole)


# ----------------------------------------------------------------------------------- EASE


def ease_reference(x, reg):
    p = np.linalg.inv(x.T @ x + reg * np.eye(x.shape[1]))
    b = np.eye(x.shape[1]) - p / np.diag(p)[None, :]
    return x @ b, b


@pytest.mark.parametrize("reg", [0.5, 500.0])
def test_ease_equals_the_closed_form_in_numpy(reg):
    x, users, items = random_data()
    domain = torch.zeros(x.shape[1], dtype=torch.long)
    model = EASE(*x.shape, users, items, domain, 0, reg=reg)
    expected, b = ease_reference(x, reg)
    np.testing.assert_allclose(np.diag(b), 0.0, atol=1e-12)
    np.testing.assert_allclose(model.weights, b, atol=1e-12)
    np.testing.assert_allclose(all_scores(model), expected, atol=1e-12)


def test_ease_max_items_keeps_the_target_and_the_most_interacted_source_items():
    x, users, items = random_data(num_items=12)
    domain = torch.tensor([0] * 8 + [1] * 4)  # items 8-11 are the target domain
    counts = x.sum(0)
    source_order = sorted(range(8), key=lambda i: (-counts[i], i))
    kept = sorted([*source_order[:3], 8, 9, 10, 11])
    model = EASE(*x.shape, users, items, domain, 1, reg=2.0, max_items=7)
    assert model.items.tolist() == kept
    scores = all_scores(model)
    sub, _ = ease_reference(x[:, kept], 2.0)
    np.testing.assert_allclose(scores[:, kept], sub, atol=1e-12)
    dropped = sorted(set(range(12)) - set(kept))
    np.testing.assert_array_equal(scores[:, dropped], 0.0)
    with pytest.raises(ValueError, match=r"model=ease: model.max_items=3 is below the 4 items"):
        EASE(*x.shape, users, items, domain, 1, max_items=3)


def test_ease_refuses_a_matrix_larger_than_the_memory_naming_the_item_count(monkeypatch):
    # 9 items need 9 * 9 * 8 = 648 bytes; 90% of 400 is 360, enough for 6 x 6
    monkeypatch.setattr("gnnrec.models.ease.available_memory", lambda: 400)
    cfg = compose_config(["model=ease"])
    with pytest.raises(
        ConfigError,
        match=r"model=ease: the 9 items of this data need a dense 9 x 9 float64 matrix"
        r".*set model.max_items=6 or lower",
    ):
        build_model(cfg.model, tiny_data())
    monkeypatch.setattr("gnnrec.models.ease.available_memory", lambda: 200)
    with pytest.raises(ValueError, match=r"the 5 fitted items \(model.max_items=5\) need"):
        EASE(**ease_fields(tiny_data()), max_items=5)  # 200 bytes > 90% of 200
    monkeypatch.setattr("gnnrec.models.ease.available_memory", lambda: 240)
    assert EASE(**ease_fields(tiny_data()), max_items=5).items.tolist() == [4, 5, 6, 7, 8]


def ease_fields(data):
    names = ("num_users", "num_items", "train_users", "train_items", "item_domain")
    return {**{k: getattr(data, k) for k in names}, "target_domain": data.target_domain}


def test_ease_rejects_a_non_positive_reg():
    data = tiny_data()
    with pytest.raises(ValueError, match="model.reg must be > 0"):
        EASE(**ease_fields(data), reg=0.0)


# ---------------------------------------------------------------------------------- GF-CF


def gfcf_reference(x, k, alpha):
    du, di = x.sum(1), x.sum(0)
    inv_u = np.array([d**-0.5 if d else 0.0 for d in du])
    inv_i = np.array([d**-0.5 if d else 0.0 for d in di])
    norm = inv_u[:, None] * x * inv_i[None, :]
    _, s, vt = np.linalg.svd(norm)
    v = vt[: min(k, int((s > 1e-10 * s[0]).sum()))].T
    low_pass = np.diag(inv_i) @ v @ v.T @ np.diag(np.sqrt(di))
    return x @ norm.T @ norm + alpha * x @ low_pass


@pytest.mark.parametrize("solver", ["arpack", "gram"])
@pytest.mark.parametrize("shape", [(30, 20), (20, 30)])
@pytest.mark.parametrize(("k", "alpha"), [(5, 0.3), (12, 1.0), (5, 0.0), (64, 0.3)])
def test_gfcf_equals_a_dense_numpy_computation(k, alpha, shape, solver):
    # k = 5 and 12 take the solver (k < min(shape) - 1), k = 64 the dense SVD of every
    # component; (30, 20) has more users than items (the Gram matrix of the items), (20, 30)
    # fewer (the users' Gram matrix, then V = R~^T U S^-1)
    x, users, items = random_data(*shape)
    model = GFCF(*x.shape, users, items, k=k, alpha=alpha, solver=solver)
    expected = gfcf_reference(x, k, alpha)
    np.testing.assert_allclose(all_scores(model), expected, atol=1e-12)
    assert not all_scores(model)[0].any()  # no history: every score 0
    assert not all_scores(model)[:, -1].any()  # an item without interactions scores 0


@pytest.mark.parametrize("shape", [(80, 50), (50, 80)])
def test_the_gram_solver_finds_the_subspace_of_arpack_and_of_a_dense_svd(shape):
    x, users, items = random_data(*shape, density=0.1, seed=3)
    model = GFCF(*x.shape, users, items, k=15, solver="arpack")
    norm = model.norm
    _, s, vt = np.linalg.svd(norm.toarray())
    dense = vt[:15].T
    for solver in ("arpack", "gram"):
        v = top_right_singular_vectors(norm, 15, solver=solver)
        assert v.shape == (x.shape[1], 15)
        np.testing.assert_allclose(v.T @ v, np.eye(15), atol=1e-10)  # orthonormal
        # the same projector (the vectors' signs and a rotation in a tie may differ)
        np.testing.assert_allclose(v @ v.T, dense @ dense.T, atol=1e-10)
        # each is a right singular vector of its singular value, largest first
        np.testing.assert_allclose(np.linalg.norm(norm @ v, axis=0), s[:15], atol=1e-10)


def test_the_gram_solver_drops_components_of_a_rank_below_k():
    # 4 distinct user rows repeated: rank 4, so k = 8 keeps 4 components
    base = np.array(
        [[1, 1, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 1, 1]]
    )
    x = np.tile(np.hstack([base, base]), (5, 1)).astype(float)  # 20 users x 12 items
    users, items = np.nonzero(x)
    for solver in ("arpack", "gram"):
        model = GFCF(*x.shape, torch.tensor(users), torch.tensor(items), k=8, solver=solver)
        assert model.rank == 4, solver
        np.testing.assert_allclose(all_scores(model), gfcf_reference(x, 8, 0.3), atol=1e-10)


def components_data(blocks=25, seed=0):
    """A user-item graph of ``blocks`` connected components (random 6 x 15 blocks)."""
    rng = np.random.default_rng(seed)
    parts = []
    for _ in range(blocks):
        part = (rng.random((6, 15)) < 0.4).astype(float)
        part[:, 0] = part[0] = 1.0  # each block connected
        parts.append(part)
    x = np.zeros((6 * blocks, 15 * blocks))
    for b, part in enumerate(parts):
        x[6 * b : 6 * b + 6, 15 * b : 15 * b + 15] = part
    users, items = np.nonzero(x)
    return x, torch.tensor(users), torch.tensor(items)


def test_the_gram_solver_keeps_every_copy_of_a_repeated_singular_value():
    # each of the 25 components gives the normalised matrix one singular value 1, so the
    # top 30 hold 25 of them; a Krylov solver misses copies (on Movies ARPACK held 86 of 105)
    x, users, items = components_data()
    model = GFCF(*x.shape, users, items, k=30, solver="gram")
    norm = model.norm
    assert gfcf_module.graph_components(norm) == 25
    v = top_right_singular_vectors(norm, 30, solver="gram")
    s = np.linalg.norm(norm @ v, axis=0)
    assert (s > 1 - 1e-9).sum() == 25
    dense_s = np.linalg.svd(norm.toarray(), compute_uv=False)
    np.testing.assert_allclose(s, dense_s[:30], atol=1e-10)
    # the unit subspace is the dense SVD's (it is unique: a gap follows the 25th value)
    _, _, vt = np.linalg.svd(norm.toarray())
    np.testing.assert_allclose(v[:, :25] @ v[:, :25].T, vt[:25].T @ vt[:25], atol=1e-10)


def test_a_subspace_short_of_the_components_unit_values_is_warned_about(caplog):
    x, users, items = components_data()
    norm = GFCF(*x.shape, users, items, alpha=0.0).norm
    v = top_right_singular_vectors(norm, 30, solver="gram")
    with caplog.at_level("WARNING", logger="gnnrec.models.gfcf"):
        gfcf_module._warn_on_missed_components(norm, v)
    assert not caplog.records
    with caplog.at_level("WARNING", logger="gnnrec.models.gfcf"):
        gfcf_module._warn_on_missed_components(norm, v[:, 3:])  # 22 of the 25 unit values
    (record,) = caplog.records
    assert "hold 22 singular values 1, the graph's 25 components call for 25" in record.message
    assert "model.solver=gram" in record.message


def test_the_auto_solver_takes_the_gram_matrix_up_to_its_largest_side(monkeypatch):
    x, users, items = random_data()
    assert GFCF(*x.shape, users, items, k=5).solver == "gram"
    monkeypatch.setattr(gfcf_module, "GRAM_MAX_SIDE", 19)  # the smaller side is 20
    assert GFCF(*x.shape, users, items, k=5).solver == "arpack"
    with pytest.raises(
        ValueError, match="model.solver must be one of auto, arpack, gram, got 'eig'"
    ):
        GFCF(*x.shape, users, items, k=5, solver="eig")


def test_gfcf_does_not_depend_on_the_seed_beyond_round_off():
    x, users, items = random_data(num_users=60, num_items=40, seed=1)
    a = all_scores(GFCF(*x.shape, users, items, k=10, seed=0, solver="arpack"))
    np.testing.assert_array_equal(
        all_scores(GFCF(*x.shape, users, items, k=10, seed=0, solver="arpack")), a
    )
    np.testing.assert_allclose(
        all_scores(GFCF(*x.shape, users, items, k=10, seed=7, solver="arpack")), a, atol=1e-12
    )


def test_source_history_reaches_target_items():
    # tiny_data: user 4's only interaction is source item 0; users 0 and 4 share it, and
    # user 0 also has target item 4, so every model scores item 4 for user 4.
    data = tiny_data()
    for name in ("itemknn", "ease", "gfcf"):
        model = build_model(compose_config([f"model={name}"]).model, data)
        target = model().against(torch.tensor([4, 5, 6, 7, 8]))(torch.tensor([4]))[0]
        assert target[0] > 0, name
        assert target[0] == target.max(), name


def test_the_command_line_runs_gfcf_end_to_end(cache_dir, tmp_path, data_root):
    """`python -m gnnrec.train model=gfcf` on ML-100K: the metrics of a dense numpy GF-CF."""
    run_dir = tmp_path / "run"
    overrides = [
        f"paths.cache_dir={cache_dir}",
        "data=ml100k",
        "encoder=none",
        "model=gfcf",
        "model.k=32",
        "tracker=none",
        "eval.sampled_negatives=99",
        "eval.batch_size=300",  # several chunks of users
    ]
    env = {**os.environ, "WANDB_MODE": "offline"}
    cmd = [sys.executable, "-m", "gnnrec.train", *overrides, f"hydra.run.dir={run_dir}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["best_epoch"] == 0 and not (run_dir / "checkpoints").exists()
    assert (run_dir / "per_user.parquet").is_file() and (run_dir / "examples.csv").is_file()

    # The same split, scored by the dense formula and ranked by the dot-product path.
    setup = prepare(compose_config(overrides), check=False)
    train = setup.train
    x = np.zeros((train.num_users, train.num_items))
    x[train.train_users.numpy(), train.train_items.numpy()] = 1.0
    scores = torch.from_numpy(gfcf_reference(x, 32, 0.3))
    eye = torch.eye(train.num_items, dtype=torch.float64)
    expected = setup.protocol.evaluate("test", setup.tasks["test"], scores, eye)
    for key in ("test/all/ndcg@20", "test/all/recall@50", "test/all/sampled_hr@10"):
        assert metrics[key] == pytest.approx(expected[key], rel=1e-9), key
    # Popularity reaches NDCG@20 0.049 on this split
    assert metrics["test/all/ndcg@20"] > 0.07
