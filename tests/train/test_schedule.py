"""Learning-rate schedules, gradient clipping and weight decay in the trainer.

Learning rates are read from the optimiser when the loss is called (once per step, before
the step) and compared with the formulas computed by hand in numpy, and with torch's own
CosineAnnealingLR; clipping is compared with ``clip_grad_norm_`` on a copy of the model.
"""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from hydra.utils import get_class, instantiate

from gnnrec.config import compose_config
from gnnrec.data.graph import build_graph
from gnnrec.models import MF, BPRLoss, LightGCN, SoftmaxLoss, build_from_data
from gnnrec.nn import normalized_adjacency
from gnnrec.run import build_model
from gnnrec.train import (
    CosineSchedule,
    NegativeSampler,
    PlateauSchedule,
    Schedule,
    Trainer,
    WarmupCosineLR,
    check_training,
)
from gnnrec.train.identity import ADDED_LATER, IDENTITY_KEYS, identity_differences
from gnnrec.utils.io import load_checkpoint
from tests.models.test_contract import MODELS, small, tiny_data

NUM_USERS, NUM_ITEMS, BATCH = 30, 20, 16


class LrRecorder(BPRLoss):
    """BPR that notes the optimiser's learning rate at every call (one call per step)."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        super().__init__()
        self.optimizer, self.lrs = optimizer, []

    def forward(self, model, users, pos, neg):
        self.lrs.append(self.optimizer.param_groups[0]["lr"])
        return super().forward(model, users, pos, neg)


@pytest.fixture
def pairs():
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(NUM_USERS), 4)
    items = rng.integers(0, NUM_ITEMS, size=len(users))
    keys = np.unique(users * NUM_ITEMS + items)
    return (
        torch.tensor(keys // NUM_ITEMS),
        torch.tensor(keys % NUM_ITEMS),
        torch.zeros(NUM_ITEMS, dtype=torch.long),
    )


def fit(pairs, tmp_path=None, schedule=None, lr=0.01, validate=None, on_epoch=None, **kwargs):
    """MF trained by Adam under ``schedule``: the model, the result and every step's lr."""
    torch.manual_seed(0)
    model = MF(NUM_USERS, NUM_ITEMS, embedding_dim=8)
    sampler = NegativeSampler(*pairs, seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss = LrRecorder(optimizer)
    kwargs = {"progress": False, "device": "cpu", "batch_size": BATCH, **kwargs}
    if validate is not None:
        kwargs["monitor"] = "val/all/ndcg@20"
    result = Trainer(**kwargs).fit(
        model,
        loss,
        sampler,
        optimizer,
        validate,
        None if tmp_path is None else tmp_path / "checkpoints",
        on_epoch=on_epoch,
        schedule=schedule,
    )
    return model, result, loss.lrs


def steps_per_epoch(pairs) -> int:
    return math.ceil(len(pairs[0]) / BATCH)


def cosine(t: np.ndarray, base: float, eta_min: float, total: int) -> np.ndarray:
    return eta_min + (base - eta_min) * (1 + np.cos(np.pi * t / total)) / 2


# ------------------------------------------------------------------ the learning rates


def test_cosine_per_step_follows_the_formula_and_torch(pairs):
    epochs, steps = 4, steps_per_epoch(pairs)
    _, result, lrs = fit(pairs, schedule=CosineSchedule(eta_min=1e-3), lr=2e-2, max_epochs=epochs)
    total = epochs * steps
    expected = cosine(np.arange(total), 2e-2, 1e-3, total)
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)
    # each epoch's record holds the rate of its first step
    assert [r["train/lr"] for r in result.history] == [lrs[e * steps] for e in range(epochs)]
    # torch's recursive CosineAnnealingLR agrees (to its rounding drift)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=2e-2)
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=1e-3)
    torch_lrs = []
    for _ in range(total):
        torch_lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        reference.step()
    np.testing.assert_allclose(lrs, torch_lrs, rtol=1e-9)


def test_warmup_then_cosine_and_per_epoch_stepping(pairs):
    epochs, steps = 3, steps_per_epoch(pairs)
    total, warmup = epochs * steps, 4
    _, _, lrs = fit(pairs, schedule=CosineSchedule(eta_min=0.0, warmup=warmup), max_epochs=epochs)
    t = np.arange(total)
    expected = np.where(
        t < warmup, 0.01 * (t + 1) / warmup, cosine(t - warmup, 0.01, 0.0, total - warmup)
    )
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)
    assert lrs[warmup - 1] == lrs[warmup] == pytest.approx(0.01, rel=1e-15)

    schedule = CosineSchedule(eta_min=1e-4, interval="epoch")
    _, result, lrs = fit(pairs, schedule=schedule, max_epochs=epochs)
    per_epoch = cosine(np.arange(epochs), 0.01, 1e-4, epochs)
    np.testing.assert_allclose(lrs, np.repeat(per_epoch, steps), rtol=1e-12)
    np.testing.assert_allclose([r["train/lr"] for r in result.history], per_epoch, rtol=1e-12)


def test_past_its_horizon_the_cosine_stays_at_eta_min():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = WarmupCosineLR(opt, total=4, eta_min=0.1)
    lrs = []
    for _ in range(7):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    np.testing.assert_allclose(lrs[:4], cosine(np.arange(4), 1.0, 0.1, 4), rtol=1e-12)
    assert lrs[4:] == [0.1, 0.1, 0.1]  # torch's CosineAnnealingLR would rise again


def test_no_schedule_keeps_the_configured_rate(pairs):
    _, result, lrs = fit(pairs, schedule=Schedule(), max_epochs=2)
    assert set(lrs) == {0.01} and [r["train/lr"] for r in result.history] == [0.01, 0.01]
    assert Schedule().build(torch.optim.SGD([torch.zeros(1)], lr=1.0), 3, 2) is None


def test_plateau_lowers_the_rate_after_patience_validations_without_improvement(pairs):
    scores = iter([0.1, 0.2, 0.2, 0.15, 0.2, 0.3, 0.3, 0.3, 0.3, 0.3])

    def validate(model):
        return {"val/all/ndcg@20": next(scores)}

    schedule = PlateauSchedule(factor=0.5, patience=1, min_lr=0.003)
    _, result, _ = fit(pairs, schedule=schedule, validate=validate, max_epochs=10, patience=0)
    # bad validations in a row after each epoch: 0 0 1 2* 1 0 1 2* 1 2*  (* > patience: drop,
    # the count restarts); the drop applies from the next epoch on; 0.01/8 < min_lr
    expected = [0.01] * 4 + [0.005] * 4 + [0.003] * 2
    assert [r["train/lr"] for r in result.history] == pytest.approx(expected, rel=1e-15)


def test_plateau_without_validation_is_refused(pairs):
    with pytest.raises(ValueError, match="PlateauSchedule is stepped on the monitored"):
        fit(pairs, schedule=PlateauSchedule(), max_epochs=2)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: CosineSchedule(eta_min=-1.0), "scheduler.eta_min must be >= 0, got -1.0"),
        (lambda: CosineSchedule(warmup=-1), "scheduler.warmup must be >= 0 (0: none), got -1"),
        (lambda: CosineSchedule(interval="batch"), "scheduler.interval must be one of"),
        (lambda: PlateauSchedule(factor=1.0), "scheduler.factor must be in (0, 1), got 1.0"),
        (lambda: PlateauSchedule(patience=-1), "scheduler.patience must be >= 0, got -1"),
    ],
)
def test_bad_schedule_settings_name_the_key(make, message):
    with pytest.raises(ValueError, match=f"^{message}".replace("(", r"\(").replace(")", r"\)")):
        make()


def test_a_warmup_as_long_as_the_run_is_refused_with_the_steps(pairs):
    steps = steps_per_epoch(pairs)
    with pytest.raises(ValueError, match=f"scheduler.warmup={2 * steps} must be .* {2 * steps} "):
        fit(pairs, schedule=CosineSchedule(warmup=2 * steps), max_epochs=2)


# ------------------------------------------------------------------ resume


@pytest.mark.parametrize("kind", ["cosine", "plateau"])
def test_a_resumed_run_follows_the_same_rates_to_the_same_weights(pairs, tmp_path, kind):
    scores = [0.1, 0.2, 0.2, 0.2, 0.3, 0.3]

    def schedule():
        if kind == "cosine":
            return CosineSchedule(eta_min=1e-3, warmup=3)
        return PlateauSchedule(factor=0.5, patience=1)

    def run(folder, epochs, start=0, **kwargs):
        it = iter(scores[start:])
        return fit(
            pairs,
            folder,
            schedule(),
            validate=lambda m: {"val/all/ndcg@20": next(it)},
            max_epochs=epochs,
            patience=0,
            **kwargs,
        )

    class Killed(Exception):
        pass

    def kill_in_epoch_3(record, history):  # before epoch 3's checkpoint: last.pt is epoch 2
        if record["epoch"] == 3:
            raise Killed

    full, full_result, full_lrs = run(tmp_path / "full", 6)
    with pytest.raises(Killed):  # the same run, interrupted (a plateau count of 1 saved)
        run(tmp_path / "part", 6, on_epoch=kill_in_epoch_3)
    assert load_checkpoint(tmp_path / "part" / "checkpoints" / "last.pt")["epoch"] == 2
    resumed, result, resumed_lrs = run(tmp_path / "part", 6, 3, resume=str(tmp_path / "part"))
    steps = steps_per_epoch(pairs)
    assert resumed_lrs == full_lrs[3 * steps :]
    assert [r["train/lr"] for r in result.history] == [r["train/lr"] for r in full_result.history]
    assert len(set(full_lrs)) > 1  # the rate moved
    for key, value in full.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key
    state = load_checkpoint(tmp_path / "part" / "checkpoints" / "last.pt")
    assert (
        state["scheduler"]
        == load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pt")["scheduler"]
    )


def test_a_resume_with_more_epochs_keeps_the_cosine_horizon(pairs, tmp_path):
    steps = steps_per_epoch(pairs)
    schedule = CosineSchedule(eta_min=1e-3)
    _, _, first = fit(pairs, tmp_path, schedule, max_epochs=2)
    _, _, more = fit(pairs, tmp_path, schedule, max_epochs=3, resume=str(tmp_path))
    np.testing.assert_allclose(first, cosine(np.arange(2 * steps), 0.01, 1e-3, 2 * steps))
    assert more == [1e-3] * steps


def test_a_checkpoint_without_scheduler_state_warns_and_starts_the_schedule(pairs, tmp_path):
    fit(pairs, tmp_path, max_epochs=1)
    with pytest.warns(UserWarning, match="holds no learning-rate scheduler state"):
        fit(pairs, tmp_path, CosineSchedule(), max_epochs=2, resume=str(tmp_path))


def test_the_scheduler_is_part_of_the_run_identity():
    assert "scheduler" in IDENTITY_KEYS and "trainer.grad_clip" in IDENTITY_KEYS
    base = {"seed": 0, "model.embedding_dim": 8}
    now = {**base, "scheduler._target_": "gnnrec.train.Schedule", "trainer.grad_clip": None}
    now["optimizer.weight_decay"] = 0.0
    # a checkpoint written before these keys existed trained as scheduler=none, no clipping
    assert identity_differences(base, now) == []
    assert set(ADDED_LATER) == {"scheduler._target_", "trainer.grad_clip", "optimizer.weight_decay"}
    cosine_run = {**now, "scheduler._target_": "gnnrec.train.CosineSchedule"}
    assert identity_differences(base, cosine_run) == [
        "scheduler._target_: checkpoint gnnrec.train.Schedule, this run gnnrec.train.CosineSchedule"
    ]
    assert identity_differences({**base, "trainer.grad_clip": 1.0}, now) == [
        "trainer.grad_clip: checkpoint 1.0, this run None"
    ]


# ------------------------------------------------------------------ clipping


def lightgcn(pairs) -> LightGCN:
    """The same LightGCN on every call (seeded), with large initial gradients."""
    users, items, item_domain = pairs
    train = pd.DataFrame({"user_idx": users.numpy(), "item_idx": items.numpy(), "domain_idx": 0})
    adj = normalized_adjacency(build_graph(NUM_USERS, item_domain.numpy(), ["a"], train))
    torch.manual_seed(0)
    return LightGCN(NUM_USERS, NUM_ITEMS, adj, embedding_dim=8, num_layers=2, init_std=1.0)


def one_step(pairs, grad_clip, scaler=None):
    """One SGD(lr=1) step: the parameters' change, the epoch's record, and the reference.

    The reference is an identical model with the gradient of the same first batch.
    """
    model = lightgcn(pairs)
    before = [p.detach().clone() for p in model.parameters()]
    trainer = Trainer(
        max_epochs=1,
        limit_train_batches=1,
        batch_size=BATCH,
        grad_clip=grad_clip,
        progress=False,
        device="cpu",
    )
    if scaler is not None:
        trainer.scaler = scaler
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    result = trainer.fit(model, BPRLoss(), NegativeSampler(*pairs, seed=0), optimizer)
    change = [(b - a.detach()) for b, a in zip(before, model.parameters(), strict=True)]
    reference = lightgcn(pairs)
    batch = next(NegativeSampler(*pairs, seed=0).epoch(BATCH, 1))  # the same first batch
    BPRLoss()(reference, *batch).backward()
    return change, result.history[0], list(reference.parameters())


@pytest.mark.parametrize("scaled", [False, True])
def test_clipping_bounds_the_global_norm_as_clip_grad_norm_does(pairs, scaled):
    # scaled: a GradScaler multiplies the loss by 2**10; the trainer unscales before
    # clipping, so the step is the same as without it
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10) if scaled else None
    clip = 0.01
    change, record, reference = one_step(pairs, clip, scaler)
    grads = [p.grad.detach().double().numpy().ravel() for p in reference]
    norm = float(np.sqrt(sum((g**2).sum() for g in grads)))
    assert norm > 10 * clip  # clipping is active
    total = torch.nn.utils.clip_grad_norm_(reference, clip)  # the reference, clipped by torch
    assert float(total) == pytest.approx(norm, rel=1e-5)
    assert record["train/grad_norm"] == pytest.approx(norm, rel=1e-5)
    for step, ref in zip(change, reference, strict=True):
        torch.testing.assert_close(step, ref.grad, rtol=1e-4, atol=1e-6)
    step_norm = torch.sqrt(sum(s.double().square().sum() for s in change))
    assert float(step_norm) == pytest.approx(clip, rel=1e-4)


def test_without_clipping_the_step_is_the_raw_gradient(pairs):
    change, record, reference = one_step(pairs, None)
    for step, ref in zip(change, reference, strict=True):
        torch.testing.assert_close(step, ref.grad, rtol=1e-4, atol=1e-6)
    assert "train/grad_norm" not in record
    with pytest.raises(ValueError, match=r"trainer.grad_clip must be positive or null \(off\)"):
        Trainer(grad_clip=0.0, device="cpu")


# ------------------------------------------------------------------ weight decay, configs


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_weight_decay_reaches_every_group_but_a_models_own(optimizer):
    cfg = compose_config([f"optimizer={optimizer}", "optimizer.weight_decay=0.03"])
    mf = build_model(compose_config(["model=mf"]).model, tiny_data())
    opt = instantiate(cfg.optimizer)(mf.parameter_groups())
    assert [g["weight_decay"] for g in opt.param_groups] == [0.03]
    emcdr_cfg = compose_config(["model=emcdr", "model.mapping_l2=0.5"])
    emcdr = build_model(emcdr_cfg.model, tiny_data())
    opt = instantiate(cfg.optimizer)(emcdr.parameter_groups())
    assert [g["weight_decay"] for g in opt.param_groups] == [0.03, 0.5]
    assert type(opt).__name__ == {"adam": "Adam", "adamw": "AdamW"}[optimizer]


def test_the_shipped_schedulers_build_what_their_files_say():
    built = {
        name: instantiate(compose_config([f"scheduler={name}"]).scheduler)
        for name in ("none", "cosine", "warmup_cosine", "plateau")
    }
    assert type(built["none"]) is Schedule
    assert (built["cosine"].eta_min, built["cosine"].warmup, built["cosine"].interval) == (
        0.0,
        0,
        "step",
    )
    assert built["warmup_cosine"].warmup == 100
    assert built["plateau"].interval == "validation" and built["plateau"].needs_monitor
    assert compose_config([]).scheduler._target_ == "gnnrec.train.Schedule"  # the default


# ------------------------------------------------------------------ sampled softmax


def test_sampled_softmax_uses_each_pairs_own_negatives():
    cfg = compose_config(["loss=sampled_softmax"])
    loss = instantiate(cfg.loss)
    assert isinstance(loss, SoftmaxLoss) and not loss.in_batch_negatives
    assert cfg.sampler.num_negatives == 64 and loss.temperature == 1.0
    data = tiny_data()
    torch.manual_seed(0)
    model = build_model(compose_config(["model=mf", "model.embedding_dim=4"]).model, data)
    sampler = NegativeSampler(data.train_users, data.train_items, data.item_domain, num_negatives=3)
    users, pos, neg = next(sampler.epoch(10))
    out = model.encode(users, pos)
    logits = torch.cat([model.score(out, users, pos)[:, None], model.score(out, users, neg)], 1)
    # -log softmax of the positive among itself and its own 3 negatives, by hand
    s = logits.detach().double().numpy()
    expected = np.mean(np.log(np.exp(s).sum(1)) - s[:, 0])
    assert float(loss(model, users, pos, neg).detach()) == pytest.approx(expected, rel=1e-6)


TRAINED = [m for m in MODELS if get_class(compose_config([f"model={m}"]).model._target_).trains]


@pytest.mark.parametrize("name", TRAINED)
def test_sampled_softmax_trains_every_embedding_model_one_step(name):
    keys = compose_config([f"model={name}"]).model
    extra = ["model.embedding_dim=8"] if "embedding_dim" in keys else []
    cfg = compose_config([f"model={name}", "loss=sampled_softmax", *extra, *small(name)])
    data = tiny_data()
    torch.manual_seed(0)
    model = build_model(cfg.model, data)
    loss = instantiate(cfg.loss)
    sampler = build_from_data(instantiate(cfg.sampler), data, "sampler")
    check_training(model, loss, sampler)  # EMCDR, BiTGCF: own negatives of one domain pass
    assert sampler.num_negatives == 64
    optimizer = torch.optim.Adam(model.parameter_groups(), lr=0.05)
    before = [p.detach().clone() for p in model.parameters() if p.requires_grad]
    trainer = Trainer(
        max_epochs=1, limit_train_batches=1, batch_size=8, progress=False, device="cpu"
    )
    result = trainer.fit(model, loss, sampler, optimizer)
    assert math.isfinite(result.history[0]["train/loss"])
    after = [p for p in model.parameters() if p.requires_grad]
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
