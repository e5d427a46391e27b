"""Experiment tracking: Weights & Biases, or nothing.

The run (:func:`gnnrec.run.run`) drives a tracker through ``start``, ``log`` (once per
epoch), ``log_table``, ``save`` and ``finish``; :class:`NullTracker` ignores them all.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

__all__ = ["NullTracker", "WandbTracker", "flatten_config", "hydra_sweep", "read_overrides"]

log = logging.getLogger(__name__)

_ENV_KEYS = ("WANDB_MODE", "WANDB_SILENT")
_MAX_TAG = 64  # W&B rejects longer tags

FAST_SETTINGS = {
    "x_disable_stats": True,  # no system-metrics sampler process
    "x_disable_meta": True,  # no host/Python/git metadata collection
    "x_disable_machine_info": True,  # no hardware probing (GPU, CPU, cloud metadata)
    "x_save_requirements": False,  # no `pip freeze` into requirements.txt
    "console": "off",  # no console capture (the run folder keeps the log)
    "disable_git": True,
    "save_code": False,
    "disable_job_creation": True,
}
"""Public :class:`wandb.Settings` that cut ``wandb.init``'s set-up (docs/wandb.md has the
figures, ``benchmarks/bench_startup.py`` measures them)."""


def flatten_config(config: Mapping[str, Any] | DictConfig) -> dict[str, Any]:
    """A nested config as one level of dotted keys: ``{"model.embedding_dim": 64, ...}``.

    Lists stay values. A :class:`~omegaconf.DictConfig` is resolved value by value; an
    interpolation that cannot be resolved here (``${hydra:...}`` outside a Hydra
    launch) is kept as its ``${...}`` text rather than failing the run.
    """
    is_omega = isinstance(config, DictConfig)
    raw = OmegaConf.to_container(config, resolve=False) if is_omega else config
    out: dict[str, Any] = {}

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if is_omega and "${" in str(value):
                value = resolve_value(config, name, value)
            if isinstance(value, Mapping) and value:
                walk(value, f"{name}.")
            else:
                out[name] = value

    walk(raw, "")
    return out


def resolve_value(config: DictConfig, key: str, raw: Any) -> Any:
    """The resolved value of ``key``, or ``raw`` where this process cannot resolve it."""
    try:
        value = OmegaConf.select(config, key, throw_on_missing=False)
    except OmegaConfBaseException:  # an interpolation this process cannot resolve
        return raw
    if isinstance(value, DictConfig | ListConfig):
        try:
            return OmegaConf.to_container(value, resolve=True)
        except OmegaConfBaseException:
            return raw
    return value


def read_overrides(run_dir: str | Path) -> list[str]:
    """The run's Hydra overrides: ``<run_dir>/.hydra/overrides.yaml``, else Hydra's own.

    Both ``gnnrec-train`` (Hydra) and :func:`gnnrec.api.train` write the file; a run
    started some other way has ``[]``.
    """
    path = Path(run_dir) / ".hydra" / "overrides.yaml"
    if path.is_file():
        overrides = OmegaConf.load(path)
        if not isinstance(overrides, ListConfig):
            raise ValueError(f"{path} must hold a list of override strings")
        return [str(o) for o in overrides]
    hydra = _hydra_config()
    return [str(o) for o in hydra.overrides.task] if hydra is not None else []


def _hydra_config():
    try:
        from hydra.core.hydra_config import HydraConfig
    except ImportError:  # pragma: no cover - Hydra is a dependency
        return None
    return HydraConfig.get() if HydraConfig.initialized() else None


def hydra_sweep() -> dict[str, Any]:
    """The Hydra multirun this process runs a job of, or ``{}`` outside a multirun.

    Returns:
        ``{"dir": <sweep folder>, "name": <its name>, "job_num": <job number>}``.
    """
    from hydra.types import RunMode

    hydra = _hydra_config()
    if hydra is None or hydra.mode != RunMode.MULTIRUN:
        return {}
    try:
        sweep_dir = Path(str(hydra.sweep.dir))
    except Exception:  # unresolvable: the job folder's parent is the sweep folder
        sweep_dir = Path(str(hydra.runtime.output_dir)).parent
    return {"dir": str(sweep_dir), "name": sweep_dir.name, "job_num": int(hydra.job.num)}


class NullTracker:
    """A tracker that records nothing (``tracker=none``).

    It accepts and ignores tracker settings (``group``, ``tags``, ...), so an experiment
    file that sets them still runs with ``tracker=none``.
    """

    run = None

    def __init__(self, **settings: Any) -> None:
        self.ignored_settings = dict(settings)

    def start(self, config: Mapping[str, Any] | DictConfig, run_dir: str | Path) -> None:
        """Begin a run."""

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        """Record per-epoch values."""

    def log_table(self, name: str, frame: pd.DataFrame) -> None:
        """Record a table (e.g. example recommendations)."""

    def save(self, path: str | Path) -> None:
        """Keep a copy of a file with the run (e.g. ``per_user.parquet``)."""

    def finish(self, summary: Mapping[str, float] | None = None, exit_code: int = 0) -> None:
        """Record final values and close the run."""


class WandbTracker(NullTracker):
    """Weights & Biases tracking for a team: grouped, tagged, filterable runs.

    What a run holds: the config as flat dotted keys (``model.embedding_dim``) plus
    ``overrides`` (the Hydra override strings) and, in a multirun, ``sweep.dir``,
    ``sweep.name`` and ``sweep.job_num``; per-epoch curves over the ``epoch`` axis;
    a summary equal to ``metrics.json``; tables (:meth:`log_table`); saved files
    (:meth:`save`); and optionally the checkpoint as a ``model`` artifact.

    Args:
        project: W&B project.
        entity: W&B entity (team or user); ``None`` for the default.
        mode: ``"online"``, ``"offline"`` or ``"disabled"``. Offline runs are written
            under ``<run_dir>/wandb`` and can be uploaded later with ``wandb sync``.
        group: Run group, e.g. the experiment (``${task_name}``).
        tags: User tags, added to the automatic ones.
        name: Run name; ``None`` lets W&B choose.
        job_type: W&B job type; ``None`` is ``"train"``, or ``"sweep-<multirun folder>"``
            for a job of a Hydra multirun, so runs group by experiment, then by sweep.
        tag_keys: Automatic tags ``<tag>:<value>`` from these dotted config keys
            (e.g. ``{"model": "model._target_"}``; a ``_target_`` gives its class
            name); keys that are absent or null give no tag.
        log_checkpoint: At a successful finish, log ``checkpoints/best.pt`` (else
            ``last.pt``) of the run folder as a ``model`` artifact.
    """

    def __init__(
        self,
        project: str = "gnnrec",
        entity: str | None = None,
        mode: str = "offline",
        group: str | None = None,
        tags: Sequence[str] = (),
        name: str | None = None,
        job_type: str | None = None,
        tag_keys: Mapping[str, str] | None = None,
        log_checkpoint: bool = False,
    ) -> None:
        allowed = ("online", "offline", "disabled")
        if mode not in allowed:
            raise ValueError(f"tracker.mode must be one of {allowed}, got {mode!r}")
        if isinstance(tags, str):
            raise TypeError(f"tracker.tags must be a list of strings, got the string {tags!r}")
        self.project, self.entity, self.mode = project, entity, mode
        self.group, self.tags, self.name, self.job_type = group, list(tags), name, job_type
        self.tag_keys = dict(tag_keys or {})
        self.log_checkpoint = bool(log_checkpoint)
        self.run = None
        self.run_dir: Path | None = None
        self._saved_env: dict[str, str | None] | None = None

    def _auto_tags(self, flat: Mapping[str, Any]) -> list[str]:
        tags = []
        for tag, key in self.tag_keys.items():
            value = flat.get(key)
            if value is None or value == "":
                continue
            if key.endswith("_target_"):
                value = str(value).rsplit(".", 1)[-1]
            tags.append(f"{tag}:{value}"[:_MAX_TAG])
        return tags

    def start(self, config: Mapping[str, Any] | DictConfig, run_dir: str | Path) -> None:
        """Open the run: flat config, overrides, group, job type and tags."""
        if self.mode == "disabled":
            # Record nothing, and keep W&B out of the process: a disabled wandb.init makes
            # the next offline run's finish() return before its log is written (0.31).
            return
        import wandb

        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        flat = flatten_config(config)
        flat["overrides"] = read_overrides(run_dir)
        sweep = hydra_sweep()
        flat.update({f"sweep.{k}": v for k, v in sweep.items()})
        tags = [*self._auto_tags(flat), *(str(t)[:_MAX_TAG] for t in self.tags)]
        job_type = self.job_type
        if sweep:
            tags.append(f"sweep:{sweep['name']}"[:_MAX_TAG])
            job_type = job_type or f"sweep-{sweep['name']}"[:_MAX_TAG]
        # The environment variable (not only init's argument) keeps offline runs off the
        # network, including at exit; finish() restores the previous values.
        if self._saved_env is None:
            self._saved_env = {key: os.environ.get(key) for key in _ENV_KEYS}
        os.environ["WANDB_MODE"] = self.mode
        os.environ.setdefault("WANDB_SILENT", "true")
        self.run_dir = run_dir
        try:
            self.run = wandb.init(
                project=self.project,
                entity=self.entity,
                mode=self.mode,
                group=self.group,
                tags=list(dict.fromkeys(tags)),
                name=self.name,
                job_type=job_type or "train",
                dir=str(run_dir),
                config=flat,
                reinit="finish_previous",
                settings=wandb.Settings(**FAST_SETTINGS),
            )
        except BaseException:
            self._restore_env()
            raise
        # Curves over epochs; the summary holds exactly what finish() is given.
        self.run.define_metric("epoch", summary="none")
        self.run.define_metric("*", step_metric="epoch", summary="none")

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        """Log one epoch's record (it carries ``epoch``, the curves' x axis)."""
        if self.run is not None:
            self.run.log(dict(metrics), step=step)

    def log_table(self, name: str, frame: pd.DataFrame) -> None:
        """Log ``frame`` as a W&B table (``files/media/table/<name>_*.table.json``)."""
        if self.run is None:
            return
        import wandb

        self.run.log({name: wandb.Table(dataframe=frame.reset_index(drop=True))})

    def save(self, path: str | Path) -> None:
        """Copy ``path`` into the run's files folder (``files/<name>``) and register it."""
        if self.run is None:
            return
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"cannot save {path} to the W&B run: no such file")
        target = Path(self.run.dir) / path.name
        shutil.copy2(path, target)
        self.run.save(str(target), base_path=self.run.dir, policy="now")

    def _checkpoint_artifact(self, summary: Mapping[str, float]) -> None:
        import wandb

        folder = (self.run_dir or Path(".")) / "checkpoints"
        found = [folder / name for name in ("best.pt", "last.pt") if (folder / name).is_file()]
        if not found:
            log.warning("tracker.log_checkpoint: no checkpoint in %s; nothing logged", folder)
            return
        path = found[0]
        # W&B allows 100 metadata keys; the metrics are in the run's summary.
        meta = {k: summary[k] for k in ("best_epoch", "epochs") if k in summary}
        artifact = wandb.Artifact(
            f"model-{self.run.id}", type="model", metadata={"file": path.name, **meta}
        )
        # "immutable": referenced in place, not copied; keep the run folder until synced.
        artifact.add_file(str(path), name=path.name, policy="immutable")
        self.run.log_artifact(artifact, aliases=[path.stem])

    def finish(self, summary: Mapping[str, float] | None = None, exit_code: int = 0) -> None:
        """Set the summary (``metrics.json``), log the checkpoint if asked, close the run.

        ``run.finish()`` then ``wandb.teardown()``: teardown waits for W&B's service to
        flush and exit, so an offline run's folder is complete (``wandb sync`` accepts it)
        when this returns.
        """
        try:
            if self.run is None:
                return
            import wandb

            if summary:
                self.run.summary.update(dict(summary))
            if self.log_checkpoint and exit_code == 0:
                self._checkpoint_artifact(dict(summary or {}))
            self.run.finish(exit_code=exit_code)
            self.run = None
            wandb.teardown(exit_code=exit_code)
        finally:
            self._restore_env()

    def _restore_env(self) -> None:
        if self._saved_env is None:
            return
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env = None
