"""A run folder holds one run: refuse to mix two, and record which config wrote the metrics.

A folder holds a *finished* run once its ``metrics.json`` exists: a run writes it last,
atomically, with the fingerprint of its config (:func:`config_fingerprint`) under
:data:`CONFIG_FINGERPRINT`. A second run into that folder is refused
(:func:`check_run_folder`) unless it continues the run in place (``trainer.resume`` into
the same folder) or is told to replace it (``overwrite=true``). gnnrec-report compares
the recorded fingerprint with the folder's ``.hydra/config.yaml``
(:func:`check_recorded_config`), so a folder whose config was rewritten after its
metrics (a Hydra launch rewrites ``.hydra/`` before the run starts) is not reported
under the new config.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from gnnrec.errors import ConfigError

__all__ = [
    "CONFIG_FINGERPRINT",
    "METRICS_FILE",
    "check_recorded_config",
    "check_run_folder",
    "clear_run_folder",
    "config_fingerprint",
]

METRICS_FILE = "metrics.json"
"""The file whose presence makes a folder a finished run."""

CONFIG_FINGERPRINT = "config_fingerprint"
"""Key of ``metrics.json`` holding the :func:`config_fingerprint` of the run's config."""

OUTPUTS = ("history.json", "per_user.parquet", "examples.csv", "checkpoints")
"""A run's outputs besides ``metrics.json``, removed when a new run replaces it."""


def config_fingerprint(cfg: DictConfig) -> str:
    """SHA-256 (hex, 16 characters) of a config as written, interpolations unresolved.

    The composed config a run starts with and the ``.hydra/config.yaml`` written from it
    (by Hydra or :func:`gnnrec.api.train`) give the same value.
    """
    tree = OmegaConf.to_container(cfg, resolve=False)
    text = json.dumps(tree, sort_keys=True, default=str)
    return hashlib.sha256(b"gnnrec-config-v1\0" + text.encode()).hexdigest()[:16]


def _continues_in_place(out: Path, resume: str | None) -> bool:
    if resume is None:
        return False
    folder, source = out.resolve(), Path(resume).resolve()
    return source == folder or folder in source.parents


def check_run_folder(out: str | Path, overwrite: Any, resume: str | None) -> None:
    """Refuse to start a run in a folder that holds a finished run.

    Args:
        out: The run folder.
        overwrite: The ``overwrite`` key: replace a finished run.
        resume: ``trainer.resume``; a checkpoint in ``out`` continues the run in place.

    Raises:
        ConfigError: ``out`` has ``metrics.json``, ``overwrite`` is false and the run does
            not resume from ``out``; or ``overwrite`` is not a boolean.
    """
    if not isinstance(overwrite, bool):
        raise ConfigError(f"overwrite must be true or false, got {overwrite!r}")
    out = Path(out)
    if not (out / METRICS_FILE).is_file() or overwrite or _continues_in_place(out, resume):
        return
    raise ConfigError(
        f"{out} already holds a finished run ({METRICS_FILE}); a second run there would mix "
        "the two runs' files. Choose a new folder (hydra.run.dir=..., or output_dir= of "
        f"gnnrec.api.train), continue that run with trainer.resume={out}, or replace it "
        "with overwrite=true"
    )


def clear_run_folder(out: str | Path, resume: str | None) -> list[Path]:
    """Remove what an earlier run left in ``out`` before a new run writes there.

    A run that continues in place (``resume`` in ``out``) removes nothing: it resumes
    the checkpoints and extends the history, and replaces ``metrics.json`` when it
    finishes (if it is refused or fails first, the earlier run's files stay). Any other
    run removes ``metrics.json`` first, then every output of :data:`OUTPUTS`, so that no
    file of the earlier run (a ``best.pt`` the new run never replaces, the history of a
    model that no longer trains) stays beside the new run's. Removals are warned.

    Returns:
        The removed paths.
    """
    out = Path(out)
    if _continues_in_place(out, resume):
        return []
    removed = [out / name for name in (METRICS_FILE, *OUTPUTS) if (out / name).exists()]
    for path in removed:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    if removed:
        warnings.warn(
            f"{out}: removed {', '.join(p.name for p in removed)} of an earlier run",
            stacklevel=2,
        )
    return removed


def check_recorded_config(run_dir: str | Path, recorded: str | None) -> None:
    """Refuse a folder whose ``metrics.json`` was written under another config.

    Args:
        run_dir: The run folder.
        recorded: The :data:`CONFIG_FINGERPRINT` of its ``metrics.json``; ``None`` (a run
            written before metrics carried it) is unknown and passes.

    Raises:
        ValueError: ``.hydra/config.yaml`` has another fingerprint.
    """
    path = Path(run_dir) / ".hydra" / "config.yaml"
    if recorded is None or not path.is_file():
        return
    actual = config_fingerprint(OmegaConf.load(path))
    if actual != recorded:
        raise ValueError(
            f"{run_dir}: {METRICS_FILE} was written under another config than "
            f".hydra/config.yaml ({CONFIG_FINGERPRINT} {recorded} in {METRICS_FILE}, "
            f"{actual} of the config): the folder mixes two runs. Rerun it into a new "
            "folder, or remove it"
        )
