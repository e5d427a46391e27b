import time
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from gnnrec.data.graph import build_graph
from gnnrec.errors import ConfigError, GnnrecError
from gnnrec.models import MF, BPRLoss, LightGCN
from gnnrec.nn import normalized_adjacency
from gnnrec.train import NegativeSampler, Trainer
from gnnrec.utils.io import load_checkpoint


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(30), 4)
    items = rng.integers(0, 20, size=len(users))
    train = pd.DataFrame({"user_idx": users, "item_idx": items, "domain_idx": 0})
    train = train.drop_duplicates(["user_idx", "item_idx"])
    item_domain = np.zeros(20, dtype=np.int64)
    adj = normalized_adjacency(build_graph(30, item_domain, ["a"], train))
    sampler_args = (
        torch.tensor(train.user_idx.to_numpy()),
        torch.tensor(train.item_idx.to_numpy()),
        torch.tensor(item_domain),
    )
    return adj, sampler_args


def fit(problem, tmp_path, validate=None, identity=None, on_epoch=None, **kwargs):
    adj, sampler_args = problem
    torch.manual_seed(0)
    model = LightGCN(30, 20, adj, embedding_dim=8, num_layers=2)
    sampler = NegativeSampler(*sampler_args, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    kwargs = {
        "progress": False,
        "device": "cpu",
        "batch_size": 16,
        "monitor": "val/all/ndcg@20",
        **kwargs,
    }
    trainer = Trainer(**kwargs)
    result = trainer.fit(
        model,
        BPRLoss(),
        sampler,
        opt,
        validate,
        tmp_path / "checkpoints",
        identity=identity,
        on_epoch=on_epoch,
    )
    return model, result


def test_loss_decreases_and_checkpoints_are_written(problem, tmp_path):
    model, result = fit(problem, tmp_path, max_epochs=15)
    losses = [r["train/loss"] for r in result.history]
    assert losses[-1] < losses[0]
    assert result.best_epoch == 14
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["epoch"] == 14
    torch.testing.assert_close(state["model"]["embedding.weight"], model.embedding.weight)
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))


def test_early_stopping_restores_best_weights(problem, tmp_path):
    scores = iter([0.1, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0, 0.0])
    snapshots = []

    def validate(m):
        snapshots.append(m.embedding.weight.detach().clone())
        return {"val/all/ndcg@20": next(scores)}

    model, result = fit(problem, tmp_path, validate=validate, max_epochs=8, patience=3)
    assert result.stopped_early and result.best_epoch == 1 and result.best_value == 0.5
    assert len(result.history) == 5
    torch.testing.assert_close(model.embedding.weight, snapshots[1])
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert best["epoch"] == 1


def test_resume_continues_exactly(problem, tmp_path):
    full, _ = fit(problem, tmp_path / "full", max_epochs=6)
    fit(problem, tmp_path / "part", max_epochs=3)
    resumed, result = fit(problem, tmp_path / "part", max_epochs=6, resume=str(tmp_path / "part"))
    assert [r["epoch"] for r in result.history] == list(range(6))
    torch.testing.assert_close(resumed.embedding.weight, full.embedding.weight)
    # the training time covers every epoch of the history, not only the resumed ones
    per_epoch = sum(r["time/epoch_s"] for r in result.history)
    assert result.train_time_s == pytest.approx(per_epoch, rel=1e-9)


def test_elapsed_time_is_the_wall_clock_since_the_fit_began_and_survives_a_resume(
    problem, tmp_path
):
    def validate(m):
        time.sleep(0.05)  # validation time counts in the wall clock, not in time/epoch_s
        return {"val/all/ndcg@20": 0.1}

    t0 = time.perf_counter()
    _, first = fit(problem, tmp_path, validate=validate, max_epochs=3)
    wall = time.perf_counter() - t0
    elapsed = [r["time/elapsed_s"] for r in first.history]
    assert elapsed == sorted(elapsed) and elapsed[-1] <= wall
    for n, record in enumerate(first.history):
        trained = sum(r["time/epoch_s"] for r in first.history[: n + 1])
        assert record["time/elapsed_s"] >= trained + 0.05 * (n + 1)
    _, resumed = fit(
        problem, tmp_path, validate=validate, max_epochs=5, resume=str(tmp_path), patience=0
    )
    more = [r["time/elapsed_s"] for r in resumed.history]
    assert more[:3] == elapsed  # the interrupted run's records are kept as they were
    assert more[3] >= elapsed[-1] + resumed.history[3]["time/epoch_s"] + 0.05


def test_monitoring_hook_time_is_neither_training_time_nor_budget(problem, tmp_path):
    # a slow on_epoch (test-curve monitoring) must not move the wall clock of the
    # history nor spend the time budget: 6 epochs with a 0.3 s hook each (1.8 s in all)
    # run to the end under a 0.02 min (1.2 s) budget, and elapsed_s stays below it
    def slow_hook(record, history):
        time.sleep(0.3)

    _, result = fit(problem, tmp_path, on_epoch=slow_hook, max_epochs=6, max_time_min=0.02)
    assert len(result.history) == 6 and not result.stopped_on_time
    elapsed = [r["time/elapsed_s"] for r in result.history]
    assert elapsed == sorted(elapsed) and elapsed[-1] < 1.2


def test_resume_missing_checkpoint_is_a_clear_error(problem, tmp_path):
    with pytest.raises(FileNotFoundError, match="trainer.resume=.*checkpoints/last.pt"):
        fit(problem, tmp_path, max_epochs=1, resume=str(tmp_path / "nothing"))


def test_limits_and_fast_dev_run(problem, tmp_path):
    _, result = fit(problem, tmp_path, fast_dev_run=True, max_epochs=50)
    assert len(result.history) == 1
    t = Trainer(limit_train_batches=0.5, batch_size=16, progress=False, device="cpu")
    sampler = NegativeSampler(*problem[1])
    assert t._batches_per_epoch(sampler) == -(-sampler.num_batches(16) // 2)
    with pytest.raises(ValueError, match="limit_train_batches"):
        Trainer(limit_train_batches=1.5, device="cpu")._batches_per_epoch(sampler)


def test_unknown_monitor_key_names_available_metrics(problem, tmp_path):
    with pytest.raises(KeyError, match="optimized_metric='val/all/ndcg@20'"):
        fit(problem, tmp_path, validate=lambda m: {"val/all/recall@20": 0.0}, max_epochs=1)


def test_mf_trains_with_same_trainer(problem, tmp_path):
    _, sampler_args = problem
    model = MF(30, 20, embedding_dim=8)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    result = Trainer(max_epochs=3, batch_size=16, progress=False, device="cpu").fit(
        model, BPRLoss(), NegativeSampler(*sampler_args), opt
    )
    assert len(result.history) == 3


def test_bad_devices_and_precision():
    if not torch.cuda.is_available():
        # the message names the top-level key the user sets (device=), not trainer.device
        with pytest.raises(ValueError, match="^device='cuda' but CUDA is not available"):
            Trainer(device="cuda")
        with pytest.raises(ValueError, match="needs a CUDA device"):
            Trainer(device="cpu", precision="bf16-mixed")
    with pytest.raises(ValueError, match="trainer.precision"):
        Trainer(device="cpu", precision="fp8")


def test_time_budget_stops_after_the_epoch_that_spends_it(problem, tmp_path):
    calls = []

    def slow_validate(m):  # each epoch takes ~0.3 s through its validation
        calls.append(1)
        time.sleep(0.3)
        return {"val/all/ndcg@20": float(len(calls))}

    # 0.01 min = 0.6 s: no epoch starts after the one that ends past it (2 unloaded).
    _, result = fit(problem, tmp_path, validate=slow_validate, max_epochs=50, max_time_min=0.01)
    assert result.stopped_on_time and not result.stopped_early
    assert 1 <= len(result.history) <= 3  # of max_epochs=50
    assert result.best_epoch == len(result.history) - 1
    with pytest.raises(ValueError, match="max_time_min"):
        Trainer(max_time_min=0, device="cpu")


IDENTITY = {"seed": 0, "model.embedding_dim": 8, "split_fingerprint": "aaaa"}
OTHER = {"seed": 1, "model.embedding_dim": 8, "split_fingerprint": "bbbb"}
MIX = (
    "Continuing it would mix two runs (another split puts this run's test pairs among the "
    "checkpoint's training pairs). Start a fresh run without trainer.resume, or set "
    "trainer.resume_mismatch=allow if the change is intended"
)


def test_checkpoints_carry_the_run_identity(problem, tmp_path):
    fit(problem, tmp_path, lambda m: {"val/all/ndcg@20": 0.5}, identity=IDENTITY, max_epochs=1)
    for name in ("last.pt", "best.pt"):
        assert load_checkpoint(tmp_path / "checkpoints" / name)["identity"] == IDENTITY


def test_resume_of_another_runs_checkpoint_is_refused_naming_what_differs(problem, tmp_path):
    fit(problem, tmp_path, identity=IDENTITY, max_epochs=2)
    before = (tmp_path / "checkpoints" / "last.pt").read_bytes()
    with pytest.raises(ConfigError) as err:
        fit(problem, tmp_path, identity=OTHER, max_epochs=4, resume=str(tmp_path))
    assert str(err.value) == (
        f"trainer.resume={tmp_path}: checkpoint {tmp_path}/checkpoints/last.pt was trained on "
        "another setup than this run: seed: checkpoint 0, this run 1; split_fingerprint: "
        f"checkpoint aaaa, this run bbbb. {MIX}"
    )
    assert (tmp_path / "checkpoints" / "last.pt").read_bytes() == before
    # keys that only one side has are named too
    with pytest.raises(ConfigError, match=r"run: loss.margin: checkpoint \(not set\), this run 1"):
        fit(problem, tmp_path, identity={"loss.margin": 1, **IDENTITY}, resume=str(tmp_path))


def test_resume_mismatch_allow_continues_with_a_warning(problem, tmp_path):
    fit(problem, tmp_path, identity=IDENTITY, max_epochs=2)
    with pytest.warns(UserWarning) as record:
        _, result = fit(
            problem,
            tmp_path,
            identity=OTHER,
            max_epochs=3,
            resume=str(tmp_path),
            resume_mismatch="allow",
        )
    assert [str(w.message) for w in record] == [
        f"trainer.resume={tmp_path}: continuing checkpoint {tmp_path}/checkpoints/last.pt of "
        "another setup (trainer.resume_mismatch=allow): seed: checkpoint 0, this run 1; "
        "split_fingerprint: checkpoint aaaa, this run bbbb"
    ]
    assert [r["epoch"] for r in result.history] == [0, 1, 2]
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["identity"] == OTHER
    with pytest.raises(ValueError, match="trainer.resume_mismatch must be one of"):
        Trainer(device="cpu", resume_mismatch="warn")


def test_more_epochs_and_other_budgets_resume_silently(problem, tmp_path):
    fit(problem, tmp_path, identity=IDENTITY, max_epochs=2, patience=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, result = fit(
            problem,
            tmp_path,
            identity=dict(IDENTITY),
            max_epochs=4,
            patience=2,
            max_time_min=60.0,
            limit_train_batches=3,
            resume=str(tmp_path),
        )
    assert [r["epoch"] for r in result.history] == [0, 1, 2, 3]


def test_resume_of_a_checkpoint_without_identity_warns(problem, tmp_path):
    fit(problem, tmp_path, max_epochs=1)
    with pytest.warns(UserWarning) as record:
        fit(problem, tmp_path, identity=IDENTITY, max_epochs=2, resume=str(tmp_path))
    assert [str(w.message) for w in record] == [
        f"checkpoint {tmp_path}/checkpoints/last.pt records no run identity (written before "
        "checkpoints carried one); resuming without checking that it was trained on this "
        "run's data, split, seed and model"
    ]


def test_resume_from_best_pt_or_a_damaged_checkpoint_is_a_clear_error(problem, tmp_path):
    fit(problem, tmp_path, lambda m: {"val/all/ndcg@20": 0.5}, max_epochs=1)
    best = tmp_path / "checkpoints" / "best.pt"
    with pytest.raises(ConfigError) as err:
        fit(problem, tmp_path, max_epochs=2, resume=str(best))
    assert str(err.value) == (
        f"trainer.resume={best}: {best} has no optimizer, sampler; resume from a run folder "
        "or its checkpoints/last.pt (best.pt holds only the best weights)"
    )
    last = tmp_path / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    with pytest.raises(GnnrecError, match=f"^checkpoint {last} cannot be read"):
        fit(problem, tmp_path, max_epochs=2, resume=str(tmp_path))
