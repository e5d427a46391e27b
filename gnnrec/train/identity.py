"""What a checkpoint was trained on, so that a resume never continues another run.

A run's *identity* is a flat mapping of what decides its trained weights and its
held-out rows: the data and split fingerprints (:mod:`gnnrec.data.fingerprint`), the
seed, the data selection, preprocessing and split settings, and the configs of the
model, loss, sampler and optimiser with the batch size. The trainer stores it in every
checkpoint and compares it on ``trainer.resume``: resuming a ``seed=0`` checkpoint under
``seed=1`` would train on, then test on, another split, whose test pairs include
training positives of the resumed model.

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

__all__ = ["IDENTITY_KEYS", "identity_differences", "run_identity"]

IDENTITY_KEYS = (
    "seed",
    "data.name",
    "data.target_domain",
    "data.zero_shot_domain",
    "data.source_edges",
    "data.preprocess",
    "data.split",
    "model",
    "loss",
    "sampler",
    "optimizer",
    "trainer.batch_size",
)
"""Config keys (and everything under them) of a run's identity, besides the fingerprints."""

_ABSENT = object()


def _flatten(value: Any, key: str, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for child, item in value.items():
            _flatten(item, f"{key}.{child}", out)
    else:
        out[key] = value


def run_identity(cfg: DictConfig, data: InteractionData, split: Split) -> dict[str, Any]:
    """The identity of a run: :data:`IDENTITY_KEYS` resolved and flattened, and fingerprints.

    Values are plain numbers, strings, booleans, ``None`` and lists, as a checkpoint
    loaded with ``weights_only=True`` holds them.
    """
    out: dict[str, Any] = {}
    for key in IDENTITY_KEYS:
        value = OmegaConf.select(cfg, key, default=None)
        if isinstance(value, DictConfig | ListConfig):
            value = OmegaConf.to_container(value, resolve=True)
        _flatten(value, key, out)
    out["data_fingerprint"] = data_fingerprint(data)
    out["split_fingerprint"] = split_fingerprint(data, split)
    return out


def _shown(value: Any) -> str:
    return "(not set)" if value is _ABSENT else str(value)


def identity_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``"key: checkpoint A, this run B"`` for every key whose value differs.

    Keys come in ``current``'s order, then keys only the checkpoint has.
    """
    keys = [*current, *(k for k in saved if k not in current)]
    out = []
    for key in keys:
        old, new = saved.get(key, _ABSENT), current.get(key, _ABSENT)
        if old is not new and old != new:
            out.append(f"{key}: checkpoint {_shown(old)}, this run {_shown(new)}")
    return out
