"""Experiment tracking: Weights & Biases, or nothing."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["NullTracker", "WandbTracker"]


class NullTracker:
    """A tracker that records nothing (``tracker=none``)."""

    run = None

    def start(self, config: Mapping[str, Any], run_dir: str | Path) -> None:
        """Begin a run."""

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        """Record per-epoch values."""

    def finish(self, summary: Mapping[str, float] | None = None, exit_code: int = 0) -> None:
        """Record final values and close the run."""


class WandbTracker(NullTracker):
    """Weights & Biases tracking: config, per-epoch curves and a final summary.

    Args:
        project: W&B project.
        entity: W&B entity (team or user); ``None`` for the default.
        mode: ``"online"``, ``"offline"`` or ``"disabled"``. Offline runs are written
            under ``<run_dir>/wandb`` and can be uploaded later with ``wandb sync``.
        group: Run group (for example an experiment or sweep name).
        tags: Run tags.
        name: Run name; ``None`` lets W&B choose.
        job_type: W&B job type.
    """

    def __init__(
        self,
        project: str = "gnnrec",
        entity: str | None = None,
        mode: str = "offline",
        group: str | None = None,
        tags: Sequence[str] = (),
        name: str | None = None,
        job_type: str = "train",
    ) -> None:
        allowed = ("online", "offline", "disabled")
        if mode not in allowed:
            raise ValueError(f"tracker.mode must be one of {allowed}, got {mode!r}")
        self.project, self.entity, self.mode = project, entity, mode
        self.group, self.tags, self.name, self.job_type = group, list(tags), name, job_type
        self.run = None

    def start(self, config: Mapping[str, Any], run_dir: str | Path) -> None:
        import wandb

        # The environment variable (not only init's argument) keeps offline runs off
        # the network, including at exit.
        os.environ["WANDB_MODE"] = self.mode
        os.environ.setdefault("WANDB_SILENT", "true")
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=self.project,
            entity=self.entity,
            mode=self.mode,
            group=self.group,
            tags=self.tags,
            name=self.name,
            job_type=self.job_type,
            dir=str(run_dir),
            config=dict(config),
            reinit="finish_previous",
        )

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        if self.run is not None:
            self.run.log(dict(metrics), step=step)

    def finish(self, summary: Mapping[str, float] | None = None, exit_code: int = 0) -> None:
        if self.run is None:
            return
        if summary:
            self.run.summary.update(dict(summary))
        self.run.finish(exit_code=exit_code)
        self.run = None
