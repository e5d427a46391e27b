"""Find saved runs, read what they recorded, and group them by configuration.

A *run* is a folder holding ``metrics.json`` (written by ``gnnrec-train`` and
:func:`gnnrec.api.train`); a folder whose ``metrics.json`` records another config than
its ``.hydra/config.yaml`` mixes two runs and is refused
(:func:`gnnrec.track.run_folder.check_recorded_config`). Runs whose resolved configs
(``.hydra/config.yaml``) are equal once the seed and the location-only keys
(:data:`IGNORED_KEYS`) are removed form one *group*; the seeds of a group are its
repetitions. A group's *label* shows the config-group choices and keys that differ
between groups (:mod:`gnnrec.report.groups`). A run without ``.hydra/config.yaml`` is
grouped by its recorded overrides instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import OmegaConf

from gnnrec.report.groups import IGNORED_KEYS, config_choices, group_labels, resolved_config
from gnnrec.track.run_folder import CONFIG_FINGERPRINT, check_recorded_config

__all__ = ["IGNORED_KEYS", "NoRunsError", "Run", "collect_runs", "load_runs", "override_key"]


class NoRunsError(ValueError):
    """No run was found under the given folders."""


@dataclass
class Run:
    """One finished run: where it lies, its group overrides, seed and what it recorded.

    Attributes:
        path: The run folder.
        overrides: The run's recorded overrides without the seed and the
            :data:`IGNORED_KEYS` (the command a group shows).
        seed: The run's seed, as written in its override or config (``"0"`` by default).
        metrics: Final metrics (``metrics.json`` or the W&B summary).
        history: Per-epoch records (``history.json`` or the W&B history).
        per_user_path: The run's ``per_user.parquet``, or ``None`` when it has none.
        label: The group's label, set by :func:`load_runs`.
        config: The flat resolved config that defines the group (the group key).
        choices: Config-group choices (``{"model": "lightgcn", ...}``) where known.
    """

    path: Path
    overrides: tuple[str, ...]
    seed: str
    metrics: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)
    per_user_path: Path | None = None
    label: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    choices: dict[str, str] = field(default_factory=dict)

    def per_user(self) -> pd.DataFrame:
        """The run's test metrics per user (``per_user.parquet``).

        Raises:
            FileNotFoundError: The run has no ``per_user.parquet``.
        """
        if self.per_user_path is None or not self.per_user_path.is_file():
            where = self.per_user_path or self.path / "per_user.parquet"
            raise FileNotFoundError(
                f"{where} does not exist: run {self.path} ({self.label or 'no label'}, seed "
                f"{self.seed}) has no per-user metrics, which the significance tests need. "
                f"Create it with `gnnrec-evaluate {self.path}` (re-evaluates the "
                "saved checkpoint), or leave out --baseline"
            )
        return pd.read_parquet(self.per_user_path)


def override_key(override: str) -> str:
    """The config key an override sets: ``"+model.dim=8"`` -> ``"model.dim"``."""
    return override.lstrip("+~").split("=", 1)[0]


def _ignored(override: str, ignore: Iterable[str]) -> bool:
    key = override_key(override).replace("/", ".")
    return any(key == p or key.startswith(f"{p}.") for p in ignore)


def _natural(path: Path) -> list:
    """Sort key putting ``multirun/2`` before ``multirun/10``."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(path))]


def _read_overrides(run_dir: Path) -> list[str] | None:
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None
    overrides = OmegaConf.to_container(OmegaConf.load(path))
    if not isinstance(overrides, list):
        raise ValueError(f"{path} must hold a list of override strings, got {overrides!r}")
    return [str(o) for o in overrides]


def _seed_of(overrides: Sequence[str], config_seed: Any) -> str:
    for o in reversed(overrides):
        if override_key(o) == "seed" and "=" in o:
            return o.split("=", 1)[1]
    return "0" if config_seed is None else str(config_seed)


def _config_seed(run_dir: Path) -> Any:
    path = run_dir / ".hydra" / "config.yaml"
    return OmegaConf.load(path).get("seed") if path.is_file() else None


def _read_folder_run(run_dir: Path) -> tuple[list[str], str, dict, list, Path | None]:
    metrics_path = run_dir / "metrics.json"
    try:
        metrics = json.loads(metrics_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{metrics_path} is not valid JSON ({err}); rerun or remove it") from err
    # Runs written before metrics.json carried the fingerprint pass unchecked.
    check_recorded_config(run_dir, metrics.pop(CONFIG_FINGERPRINT, None))
    overrides = _read_overrides(run_dir) or []
    history_path = run_dir / "history.json"
    history = json.loads(history_path.read_text()) if history_path.is_file() else []
    per_user = run_dir / "per_user.parquet"
    seed = _seed_of(overrides, _config_seed(run_dir))
    return overrides, seed, metrics, history, per_user if per_user.is_file() else None


def _find(folder: Path) -> list[Path]:
    if not folder.exists():
        raise FileNotFoundError(f"{folder} does not exist; pass run folders or their parents")
    return sorted((p.parent for p in folder.rglob("metrics.json")), key=_natural)


def load_runs(
    folders: Sequence[str | Path],
    ignore: Iterable[str] = IGNORED_KEYS,
) -> list[Run]:
    """Read every run under ``folders`` and label it with its group.

    Args:
        folders: Run folders, multirun folders, or any parents: searched recursively for
            ``metrics.json``.
        ignore: Dotted config keys (and everything under them) that do not define a group.

    Returns:
        The runs in folder order (multirun job numbers in numeric order), each with
        ``label``, ``config`` and ``choices`` set. Groups are the runs with equal
        resolved configs once ``ignore`` keys, seed-following keys and location keys are
        removed (see :mod:`gnnrec.report.groups`).

    Raises:
        FileNotFoundError: A folder does not exist.
        NoRunsError: No run was found (a ``ValueError``).
    """
    if isinstance(folders, str | Path):
        folders = [folders]
    ignore = tuple(ignore)
    runs: list[Run] = []
    seen: set[Path] = set()
    for folder in folders:
        for path in _find(Path(folder)):
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            overrides, seed, metrics, history, per_user = _read_folder_run(path)
            by_key = {override_key(o): o for o in overrides if not _ignored(o, ignore)}
            kept = tuple(by_key.values())
            config_path = path / ".hydra" / "config.yaml"
            if config_path.is_file():
                config = resolved_config(config_path, ignore)
            else:  # an old run: its overrides are all that says what ran
                config = {k: o.split("=", 1)[-1] for k, o in by_key.items()}
            choices = config_choices(path, overrides)
            runs.append(
                Run(path, kept, seed, metrics, history, per_user, config=config, choices=choices)
            )
    if not runs:
        raise NoRunsError(f"no metrics.json under {[str(f) for f in folders]}")

    def key_of(run: Run) -> str:
        return json.dumps(sorted(run.config.items()), default=str)

    first: dict[str, Run] = {}
    for r in runs:
        first.setdefault(key_of(r), r)
    reps = list(first.values())
    labels = group_labels(
        [r.config for r in reps], [r.choices for r in reps], [r.overrides for r in reps]
    )
    by_key = dict(zip(first, labels, strict=True))
    return [replace(r, label=by_key[key_of(r)]) for r in runs]


def collect_runs(folders: Sequence[str | Path]) -> pd.DataFrame:
    """One row per run: ``run_dir``, ``overrides``, ``label``, ``seed`` and its metrics.

    Args:
        folders: Run folders, or parents searched recursively for ``metrics.json``.

    Returns:
        A frame with an ``overrides`` column (the run's overrides without ``seed`` and
        the location-only keys, space-separated), ``label`` (see :func:`load_runs`),
        ``seed`` (a string), ``run_dir`` and one column per metric; empty when no run
        is found.
    """
    try:
        runs = load_runs(folders)
    except NoRunsError:
        return pd.DataFrame()
    return pd.DataFrame(
        [
            {
                "run_dir": str(r.path),
                "overrides": " ".join(r.overrides),
                "label": r.label,
                "seed": r.seed,
                **r.metrics,
            }
            for r in runs
        ]
    )
