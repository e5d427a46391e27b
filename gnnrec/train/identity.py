"""What a checkpoint was trained on, so that a resume never continues another run.

A run's *identity* is a flat mapping of what decides its trained weights and its
held-out rows: the data and split fingerprints (:mod:`gnnrec.data.fingerprint`), the
seed, the data selection, preprocessing and split settings, and the configs of the
model, loss, sampler, optimiser and learning-rate scheduler with the batch size and the
gradient clipping. The trainer stores it in every checkpoint and compares it on
``trainer.resume``: resuming a ``seed=0`` checkpoint under ``seed=1`` would train on,
then test on, another split, whose test pairs include training positives of the resumed
model.

A key added to the identity after checkpoints were written (:data:`ADDED_LATER`) is
compared, for a checkpoint that lacks it, as the value that behaves as the code did
before: an older checkpoint resumes under ``scheduler=none``, without clipping or weight
decay.

Not part of it, so free to change when a run is continued: the training budget
(``trainer.max_epochs``, ``max_time_min``, ``patience``, ``eval_every``,
``limit_train_batches``, ``fast_dev_run``), the device and precision, ``deterministic``,
the evaluation settings (``eval``, ``optimized_metric``, ``test_curve_every``), the
text encoder, tracking and every location (``paths``, ``data.source.path``: the data
fingerprint stands for the data's content).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from gnnrec.data.fingerprint import data_fingerprint, split_fingerprint
from gnnrec.data.schema import InteractionData
from gnnrec.data.split import Split

__all__ = [
    "ADDED_LATER",
    "IDENTITY_KEYS",
    "SPLIT_KEYS",
    "identity_differences",
    "resolved",
    "run_identity",
]

SPLIT_KEYS = (
    "data.name",
    "data.target_domain",
    "data.zero_shot_domain",
    "data.source_edges",
    "data.preprocess",
    "data.split",
)
"""Config keys that decide a run's training and held-out rows (resolved: ``data.split.seed``
follows ``seed`` unless set)."""

IDENTITY_KEYS = (
    "seed",
    *SPLIT_KEYS,
    "model",
    "loss",
    "sampler",
    "optimizer",
    "scheduler",
    "trainer.batch_size",
    "trainer.grad_clip",
)
"""Config keys (and everything under them) of a run's identity, besides the fingerprints."""

ADDED_LATER: dict[str, Any] = {
    "optimizer.weight_decay": 0.0,
    "scheduler._target_": "gnnrec.train.Schedule",
    "trainer.grad_clip": None,
}
"""Flattened identity keys that older checkpoints lack, with the value they trained under."""

_ABSENT = object()


def _flatten(value: Any, key: str, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for child, item in value.items():
            _flatten(item, f"{key}.{child}", out)
    else:
        out[key] = value


def resolved(cfg: DictConfig, key: str) -> Any:
    """The value at dotted ``key`` with interpolations resolved, as plain containers."""
    value = OmegaConf.select(cfg, key, default=None)
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def run_identity(cfg: DictConfig, data: InteractionData, split: Split) -> dict[str, Any]:
    """The identity of a run: :data:`IDENTITY_KEYS` resolved and flattened, and fingerprints.

    Values are plain numbers, strings, booleans, ``None`` and lists, as a checkpoint
    loaded with ``weights_only=True`` holds them.
    """
    out: dict[str, Any] = {}
    for key in IDENTITY_KEYS:
        _flatten(resolved(cfg, key), key, out)
    out["data_fingerprint"] = data_fingerprint(data)
    out["split_fingerprint"] = split_fingerprint(data, split)
    return out


def _shown(value: Any) -> str:
    return "(not set)" if value is _ABSENT else str(value)


def identity_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``"key: checkpoint A, this run B"`` for every key whose value differs.

    Keys come in ``current``'s order, then keys only the checkpoint has. A key of
    :data:`ADDED_LATER` that the checkpoint lacks counts as its listed value.
    """
    keys = [*current, *(k for k in saved if k not in current)]
    out = []
    for key in keys:
        old = saved.get(key, ADDED_LATER.get(key, _ABSENT))
        new = current.get(key, _ABSENT)
        if old is not new and old != new:
            out.append(f"{key}: checkpoint {_shown(old)}, this run {_shown(new)}")
    return out
