"""Find saved runs, read what they recorded, and group them by configuration.

A *run* is a folder holding ``metrics.json`` (written by ``gnnrec-train`` and
:func:`gnnrec.api.train`). Runs whose Hydra overrides are equal once the seed and the
location-only overrides (:data:`IGNORED_KEYS`) are removed form one *group*; the seeds of
a group are its repetitions. A group's *label* is its overrides that are not shared by
every group, so the label says what distinguishes it.
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

__all__ = ["IGNORED_KEYS", "NoRunsError", "Run", "collect_runs", "load_runs", "override_key"]

IGNORED_KEYS = ("seed", "hydra", "paths", "tracker", "task_name")
"""Top-level config keys whose overrides never make a group: the seed (the repetition
itself) and the keys that only say where a run is written or logged."""


class NoRunsError(ValueError):
    """No run was found under the given folders."""


@dataclass
class Run:
    """One finished run: where it lies, its group overrides, seed and what it recorded.

    Attributes:
        path: The run folder.
        overrides: The run's overrides without the seed and the :data:`IGNORED_KEYS`.
        seed: The run's seed, as written in its override or config (``"0"`` by default).
        metrics: Final metrics (``metrics.json`` or the W&B summary).
        history: Per-epoch records (``history.json`` or the W&B history).
        per_user_path: The run's ``per_user.parquet``, or ``None`` when it has none.
        label: The group's label, set by :func:`load_runs`.
    """

    path: Path
    overrides: tuple[str, ...]
    seed: str
    metrics: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)
    per_user_path: Path | None = None
    label: str = ""

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
    top = re.split(r"[./]", override_key(override), maxsplit=1)[0]
    return top in set(ignore)


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


def _labels(groups: Sequence[tuple[str, ...]]) -> list[str]:
    """Each group's overrides that not every group shares (all of them for a single group)."""
    if len(groups) == 1:
        return [" ".join(groups[0]) or "(defaults)"]
    common = set.intersection(*(set(g) for g in groups))
    return [" ".join(o for o in g if o not in common) or "(defaults)" for g in groups]


def load_runs(
    folders: Sequence[str | Path],
    ignore: Iterable[str] = IGNORED_KEYS,
) -> list[Run]:
    """Read every run under ``folders`` and label it with its group.

    Args:
        folders: Run folders, multirun folders, or any parents: searched recursively for
            ``metrics.json``.
        ignore: Top-level config keys whose overrides do not define a group.

    Returns:
        The runs in folder order (multirun job numbers in numeric order), each with
        ``label`` set. Groups are the runs with equal overrides once ``seed`` and
        ``ignore`` keys are removed (the order of the overrides does not matter).

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
            runs.append(Run(path, tuple(by_key.values()), seed, metrics, history, per_user))
    if not runs:
        raise NoRunsError(f"no metrics.json under {[str(f) for f in folders]}")
    keys = list(dict.fromkeys(tuple(sorted(r.overrides)) for r in runs))
    first = {}
    for r in runs:
        first.setdefault(tuple(sorted(r.overrides)), r.overrides)
    labels = dict(zip(keys, _labels([first[k] for k in keys]), strict=True))
    return [replace(r, label=labels[tuple(sorted(r.overrides))]) for r in runs]


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
