"""Mini-batch trainer: optimisation with a learning-rate schedule and gradient clipping,
early stopping, checkpoints and resume."""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from gnnrec.errors import ConfigError
from gnnrec.train.identity import identity_differences
from gnnrec.train.sampler import NegativeSampler
from gnnrec.train.schedule import Schedule
from gnnrec.utils.io import load_checkpoint, save_checkpoint
from gnnrec.utils.runtime import resolve_device, resolve_precision

__all__ = ["RESUME_MISMATCH", "Trainer", "FitResult"]

log = logging.getLogger(__name__)

Validate = Callable[[nn.Module], dict[str, float]]
EpochHook = Callable[[dict[str, float], list[dict[str, float]]], None]

RESUME_MISMATCH = ("error", "allow")
"""Choices of ``trainer.resume_mismatch``."""


def _check_limit(limit: int | float | None) -> None:
    """Raise unless ``trainer.limit_train_batches`` trains something: a count or a fraction."""
    if limit is None:
        return
    if isinstance(limit, float):
        if not 0.0 < limit <= 1.0:
            raise ValueError(
                f"trainer.limit_train_batches as a fraction must be in (0, 1], got {limit}"
            )
    elif limit < 1:
        raise ValueError(
            f"trainer.limit_train_batches must be a count >= 1, a fraction in (0, 1] or null "
            f"(all batches), got {limit}; {limit} batches would train nothing"
        )


@dataclass
class FitResult:
    """What :meth:`Trainer.fit` returns.

    Attributes:
        best_epoch: Epoch (0-based) whose weights the model holds after ``fit``
            (the best validated epoch, or the last one without validation).
        best_value: The monitored metric at ``best_epoch`` (``nan`` without validation).
        history: One record per epoch: ``epoch``, ``train/loss``, ``train/lr`` (the
            first parameter group's learning rate at the epoch's first step),
            ``train/grad_norm`` (with ``grad_clip``: the mean global gradient norm
            before clipping), ``time/epoch_s``, ``time/elapsed_s`` (wall-clock seconds
            since the fit began, at the end of the epoch's training and validation; a
            resumed fit continues the interrupted one's clock; time spent in
            ``on_epoch``, such as test-curve monitoring, is left out) and the
            validation metrics of epochs that were evaluated.
        train_time_s: Seconds spent in training steps, over every epoch of ``history``
            (a resumed run adds the time recorded in its checkpoint).
        eval_time_s: Seconds spent in validation, likewise.
        stopped_early: Whether patience ran out.
        stopped_on_time: Whether the time budget (``max_time_min``) ended training.
    """

    best_epoch: int
    best_value: float
    history: list[dict[str, float]] = field(default_factory=list)
    train_time_s: float = 0.0
    eval_time_s: float = 0.0
    stopped_early: bool = False
    stopped_on_time: bool = False


class Trainer:
    """Trains a model whose ``loss(model, users, pos, neg)`` is a scalar.

    Args:
        max_epochs: Upper bound on epochs.
        batch_size: Training pairs per step.
        patience: Stop after this many validations without improvement (0 disables).
        monitor: Validation metric key to maximise, e.g. ``"val/all/ndcg@20"``; the run
            sets it from ``optimized_metric`` (one key for both). ``None``: no model
            selection (the last epoch is kept).
        eval_every: Validate every this many epochs; at most ``max_epochs``, or no
            epoch would be validated.
        limit_train_batches: Steps per epoch: an int count (>= 1) or a float fraction
            in (0, 1]; ``None`` for all.
        fast_dev_run: One epoch of one batch, validated, for smoke tests.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        precision: ``"auto"`` (bf16 mixed on CUDA, else fp32), ``"32"``, ``"bf16-mixed"``
            or ``"16-mixed"``.
        checkpoint: Save ``last.pt`` every epoch and ``best.pt`` on improvement.
        resume: A checkpoint file or a run directory (its ``checkpoints/last.pt``) to
            continue from; ``None`` starts fresh.
        resume_mismatch: What a resume does when the checkpoint's run identity
            (:mod:`gnnrec.train.identity`: data, split, seed, model, ...) differs from
            this run's: ``"error"`` refuses it, naming what differs; ``"allow"``
            continues with a warning, for intended changes.
        progress: Show progress bars.
        max_time_min: Wall-clock budget in minutes: no new epoch starts once this much
            time has passed since ``fit`` began (validation included, ``on_epoch``
            monitoring not); ``None``: no
            budget. The history records the stop (``FitResult.stopped_on_time``).
        grad_clip: Clip the global L2 norm of all gradients to this value before each
            step (:func:`torch.nn.utils.clip_grad_norm_`; with a ``16-mixed``
            ``GradScaler`` the gradients are unscaled first); ``None``: no clipping.
    """

    def __init__(
        self,
        max_epochs: int = 1000,
        batch_size: int = 2048,
        patience: int = 20,
        monitor: str | None = None,
        eval_every: int = 1,
        limit_train_batches: int | float | None = None,
        fast_dev_run: bool = False,
        device: str = "auto",
        precision: str = "auto",
        checkpoint: bool = True,
        resume: str | None = None,
        progress: bool = True,
        max_time_min: float | None = None,
        resume_mismatch: str = "error",
        grad_clip: float | None = None,
    ) -> None:
        if grad_clip is not None and not grad_clip > 0:
            raise ValueError(f"trainer.grad_clip must be positive or null (off), got {grad_clip}")
        if max_time_min is not None and max_time_min <= 0:
            raise ValueError(f"trainer.max_time_min must be positive or null, got {max_time_min}")
        for key, value in (
            ("max_epochs", max_epochs),
            ("batch_size", batch_size),
            ("eval_every", eval_every),
        ):
            if value < 1:
                raise ValueError(f"trainer.{key} must be >= 1, got {value}")
        if patience < 0:
            raise ValueError(f"trainer.patience must be >= 0 (0: never stop early), got {patience}")
        _check_limit(limit_train_batches)
        if eval_every > max_epochs and not fast_dev_run:
            raise ValueError(
                f"trainer.eval_every={eval_every} is greater than trainer.max_epochs={max_epochs}: "
                "no epoch would be validated, so no model could be selected; set "
                f"trainer.eval_every to at most {max_epochs}"
            )
        if resume_mismatch not in RESUME_MISMATCH:
            raise ValueError(
                f"trainer.resume_mismatch must be one of {list(RESUME_MISMATCH)}, got "
                f"{resume_mismatch!r}"
            )
        self.max_epochs = 1 if fast_dev_run else max_epochs
        self.batch_size = batch_size
        self.patience = patience
        self.monitor = monitor
        self.eval_every = 1 if fast_dev_run else eval_every
        self.limit_train_batches = 1 if fast_dev_run else limit_train_batches
        self.device = resolve_device(device, key="device")
        self.autocast_dtype, use_scaler = resolve_precision(precision, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=use_scaler)
        self.checkpoint = checkpoint
        self.resume = resume
        self.resume_mismatch = resume_mismatch
        self.progress = progress
        self.max_time_min = max_time_min
        self.grad_clip = None if grad_clip is None else float(grad_clip)

    def _batches_per_epoch(self, sampler: NegativeSampler) -> int:
        full = sampler.num_batches(self.batch_size)
        limit = self.limit_train_batches
        if limit is None:
            return full
        if isinstance(limit, float):  # checked in __init__: a fraction in (0, 1]
            return max(1, math.ceil(full * limit))
        return min(full, int(limit))

    def _resume_path(self) -> Path | None:
        if self.resume is None:
            return None
        path = Path(self.resume)
        if path.is_dir():
            path = path / "checkpoints" / "last.pt"
        if not path.is_file():
            raise FileNotFoundError(
                f"trainer.resume={self.resume!r}: no checkpoint at {path}; pass a checkpoint "
                "file or a run directory that has checkpoints/last.pt"
            )
        return path

    def _check_identity(
        self, path: Path, saved: Mapping[str, Any] | None, current: Mapping[str, Any] | None
    ) -> None:
        """Refuse (or, with ``resume_mismatch="allow"``, warn about) another run's checkpoint."""
        if current is None:
            return
        if saved is None:
            warnings.warn(
                f"checkpoint {path} records no run identity (written before checkpoints "
                "carried one); resuming without checking that it was trained on this run's "
                "data, split, seed and model",
                stacklevel=3,
            )
            return
        differences = identity_differences(saved, current)
        if not differences:
            return
        what = "; ".join(differences)
        if self.resume_mismatch == "allow":
            warnings.warn(
                f"trainer.resume={self.resume}: continuing checkpoint {path} of another setup "
                f"(trainer.resume_mismatch=allow): {what}",
                stacklevel=3,
            )
            return
        raise ConfigError(
            f"trainer.resume={self.resume}: checkpoint {path} was trained on another setup "
            f"than this run: {what}. Continuing it would mix two runs (another split puts "
            "this run's test pairs among the checkpoint's training pairs). Start a fresh "
            "run without trainer.resume, or set trainer.resume_mismatch=allow if the "
            "change is intended"
        )

    def fit(
        self,
        model: nn.Module,
        loss: nn.Module,
        sampler: NegativeSampler,
        optimizer: torch.optim.Optimizer,
        validate: Validate | None = None,
        checkpoint_dir: str | Path | None = None,
        on_epoch: EpochHook | None = None,
        identity: Mapping[str, Any] | None = None,
        schedule: Schedule | None = None,
    ) -> FitResult:
        """Train ``model`` in place; afterwards it holds the best validated weights.

        Args:
            model: The model, already on :attr:`device`.
            loss: Called as ``loss(model, users, pos, neg)``.
            sampler: Training triples.
            optimizer: Optimiser over the model's parameters.
            validate: Returns validation metrics (keys include :attr:`monitor`).
            checkpoint_dir: Where ``last.pt`` / ``best.pt`` go (``None``: no files).
            on_epoch: Called after each epoch with its record (which it may extend,
                e.g. with monitoring metrics) and the whole history so far.
            identity: The run's identity (:func:`gnnrec.train.identity.run_identity`),
                stored in every checkpoint and compared with the resumed one's
                (``resume_mismatch``); ``None``: neither.
            schedule: The learning-rate schedule (:mod:`gnnrec.train.schedule`); its
                scheduler is stepped at its ``interval`` and saved in ``last.pt``.
                ``None``: a constant learning rate.

        Raises:
            ConfigError: The resumed checkpoint's identity differs from ``identity``
                (``resume_mismatch="error"``).
            GnnrecError: The resumed checkpoint is damaged.
        """
        ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None and self.checkpoint else None
        steps = self._batches_per_epoch(sampler)
        schedule = schedule if schedule is not None else Schedule()
        if schedule.needs_monitor and validate is None:
            raise ValueError(
                f"scheduler {type(schedule).__name__} is stepped on the monitored validation "
                "metric, but this run validates nothing (optimized_metric=null, or data "
                "without a validation split); choose another scheduler"
            )
        # Built on the fresh optimiser, before a resumed optimiser state is loaded: the
        # loaded state then restores the learning rates of the interrupted run.
        scheduler = schedule.build(optimizer, steps, self.max_epochs)
        result = FitResult(best_epoch=-1, best_value=float("nan"))
        best_state: dict | None = None
        bad_evals, start_epoch, elapsed_before = 0, 0, 0.0
        resume = self._resume_path()
        if resume is not None:
            # On the CPU: load_state_dict moves each tensor to its parameter's device.
            state = load_checkpoint(resume, map_location="cpu")
            missing = [k for k in ("model", "optimizer", "sampler", "epoch") if k not in state]
            if missing:
                raise ConfigError(
                    f"trainer.resume={self.resume}: {resume} has no {', '.join(missing)}; "
                    "resume from a run folder or its checkpoints/last.pt (best.pt holds "
                    "only the best weights)"
                )
            self._check_identity(resume, state.get("identity"), identity)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            sampler.load_state_dict(state["sampler"])
            if scheduler is not None and "scheduler" in state:
                scheduler.load_state_dict(state["scheduler"])
            elif scheduler is not None:
                warnings.warn(
                    f"checkpoint {resume} holds no learning-rate scheduler state; "
                    f"{schedule!r} starts from its beginning",
                    stacklevel=2,
                )
            start_epoch = int(state["epoch"]) + 1
            result.best_epoch, result.best_value = (
                int(state["best_epoch"]),
                float(state["best_value"]),
            )
            result.history = list(state["history"])
            result.train_time_s = float(state.get("train_time_s", 0.0))
            result.eval_time_s = float(state.get("eval_time_s", 0.0))
            elapsed_before = float(state.get("elapsed_s", 0.0))
            bad_evals = int(state["bad_evals"])
            best_state = state.get("best_model")
            log.info("resumed from %s at epoch %d", resume, start_epoch)

        epochs = tqdm(
            range(start_epoch, self.max_epochs),
            desc="epochs",
            disable=not self.progress,
            initial=start_epoch,
            total=self.max_epochs,
        )
        t_fit, hook_s = time.perf_counter(), 0.0
        for epoch in epochs:
            record = self._train_epoch(
                model,
                loss,
                sampler,
                optimizer,
                steps,
                epoch,
                scheduler if schedule.interval == "step" else None,
            )
            if scheduler is not None and schedule.interval == "epoch":
                scheduler.step()
            result.train_time_s += record["time/epoch_s"]
            improved = False
            if validate is not None and (epoch + 1) % self.eval_every == 0:
                if self.monitor is None:
                    raise ValueError("Trainer.fit got validate but no monitor key to select on")
                t0 = time.perf_counter()
                model.eval()
                metrics = validate(model)
                result.eval_time_s += time.perf_counter() - t0
                if self.monitor not in metrics:
                    raise KeyError(
                        f"optimized_metric={self.monitor!r} is not a validation metric; "
                        f"available: {sorted(metrics)[:12]}..."
                    )
                record.update(metrics)
                value = float(metrics[self.monitor])
                if scheduler is not None and schedule.interval == "validation":
                    scheduler.step(value)
                if result.best_epoch < 0 or value > result.best_value:
                    result.best_epoch, result.best_value, bad_evals = epoch, value, 0
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    improved = True
                else:
                    bad_evals += 1
                epochs.set_postfix(
                    {self.monitor: f"{value:.4f}", "best": f"{result.best_value:.4f}"}
                )
            elif validate is None:
                result.best_epoch = epoch
            # wall clock at the end of this epoch's training and validation, since the
            # fit began (a resumed fit continues the interrupted one's clock); the time
            # spent in on_epoch (monitoring, e.g. test curves) is not training time
            record["time/elapsed_s"] = elapsed_before + time.perf_counter() - t_fit - hook_s
            result.history.append(record)
            if on_epoch is not None:
                t0 = time.perf_counter()
                on_epoch(record, result.history)
                hook_s += time.perf_counter() - t0
            stop = self.patience > 0 and bad_evals >= self.patience
            if ckpt_dir is not None:
                state = {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "sampler": sampler.state_dict(),
                    "epoch": epoch,
                    "best_epoch": result.best_epoch,
                    "best_value": result.best_value,
                    "bad_evals": bad_evals,
                    "history": result.history,
                    "train_time_s": result.train_time_s,
                    "eval_time_s": result.eval_time_s,
                    "elapsed_s": record["time/elapsed_s"],
                }
                if scheduler is not None:
                    state["scheduler"] = scheduler.state_dict()
                if best_state is not None:
                    state["best_model"] = best_state
                if identity is not None:
                    state["identity"] = dict(identity)
                save_checkpoint(ckpt_dir / "last.pt", state)
                if improved:
                    best = {"model": best_state, "epoch": epoch, "value": result.best_value}
                    if identity is not None:
                        best["identity"] = dict(identity)
                    save_checkpoint(ckpt_dir / "best.pt", best)
            elapsed_min = (time.perf_counter() - t_fit - hook_s) / 60
            if not stop and self.max_time_min is not None and elapsed_min >= self.max_time_min:
                result.stopped_on_time = True
                log.info(
                    "time budget trainer.max_time_min=%g reached after epoch %d (%.1f min)",
                    self.max_time_min,
                    epoch,
                    elapsed_min,
                )
                break
            if stop:
                result.stopped_early = True
                log.info(
                    "early stop at epoch %d: best %s=%.4f at epoch %d",
                    epoch,
                    self.monitor,
                    result.best_value,
                    result.best_epoch,
                )
                break
        if best_state is not None:
            model.load_state_dict(best_state)
        return result

    def _train_epoch(
        self,
        model: nn.Module,
        loss: nn.Module,
        sampler: NegativeSampler,
        optimizer: torch.optim.Optimizer,
        steps: int,
        epoch: int,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    ) -> dict[str, float]:
        """One epoch of steps; ``scheduler`` (if any) is stepped after every step."""
        model.train()
        t0 = time.perf_counter()
        lr = float(optimizer.param_groups[0]["lr"])
        params = [p for group in optimizer.param_groups for p in group["params"]]
        total = torch.zeros((), device=self.device)
        grad_norm = torch.zeros((), device=self.device)
        batches = tqdm(
            sampler.epoch(self.batch_size, steps),
            total=steps,
            desc=f"epoch {epoch}",
            leave=False,
            disable=not self.progress,
        )
        for users, pos, neg in batches:
            users, pos, neg = (t.to(self.device, non_blocking=True) for t in (users, pos, neg))
            with torch.autocast(
                self.device.type,
                dtype=self.autocast_dtype,
                enabled=self.autocast_dtype is not None,
            ):
                value = loss(model, users, pos, neg)
            optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(value).backward()
            if self.grad_clip is not None:
                self.scaler.unscale_(optimizer)  # clip true gradients, not scaled ones
                grad_norm += nn.utils.clip_grad_norm_(params, self.grad_clip)
            self.scaler.step(optimizer)
            self.scaler.update()
            if scheduler is not None:
                scheduler.step()
            total += value.detach()
        mean_loss = float(total) / max(steps, 1)
        if not math.isfinite(mean_loss):
            raise FloatingPointError(f"training loss became {mean_loss} at epoch {epoch}")
        record = {"epoch": epoch, "train/loss": mean_loss, "train/lr": lr}
        if self.grad_clip is not None:
            record["train/grad_norm"] = float(grad_norm) / max(steps, 1)
        record["time/epoch_s"] = time.perf_counter() - t0
        return record
