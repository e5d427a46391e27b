r"""Learning-rate schedules (``scheduler=``), built on :mod:`torch.optim.lr_scheduler`.

A schedule is a small config object (``conf/scheduler/<name>.yaml``). The trainer asks
it for a torch scheduler once the run's length is known (:meth:`Schedule.build`: the
steps per epoch and ``trainer.max_epochs``) and steps that scheduler at the schedule's
:attr:`~Schedule.interval`:

* ``"step"``: after every optimiser step (the choice for large-batch recipes, which take
  few steps per epoch);
* ``"epoch"``: after every epoch's training;
* ``"validation"``: after every validation, on the monitored metric
  (``optimized_metric``; larger is better).

Schedules:

* :class:`Schedule` (``scheduler=none``): a constant learning rate; no scheduler.
* :class:`CosineSchedule` (``scheduler=cosine``, ``scheduler=warmup_cosine``): an
  optional linear warmup, then cosine annealing to ``eta_min`` at the end of the run
  (:class:`WarmupCosineLR`).
* :class:`PlateauSchedule` (``scheduler=plateau``):
  :class:`~torch.optim.lr_scheduler.ReduceLROnPlateau` in ``mode="max"``.

The scheduler's state is saved in every checkpoint and restored by ``trainer.resume``,
so a resumed run follows the same learning rates as an uninterrupted one. The cosine
horizon (the run's total steps or epochs) is part of that state: it is fixed when the
run starts, and a resume with a larger ``trainer.max_epochs`` trains the steps past the
horizon at ``eta_min``.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

__all__ = [
    "INTERVALS",
    "CosineSchedule",
    "PlateauSchedule",
    "Schedule",
    "WarmupCosineLR",
]

Interval = Literal["step", "epoch"]
INTERVALS = (*get_args(Interval), "validation")
"""When a scheduler is stepped: after each optimiser step, epoch, or validation."""


class WarmupCosineLR(LRScheduler):
    r"""Linear warmup for ``warmup`` steps, then cosine annealing to ``eta_min``.

    The learning rate of step :math:`t` (0-based; a "step" is one call of
    :meth:`step`, per optimiser step or per epoch), for a parameter group whose
    configured rate is :math:`\eta`, over a horizon of :math:`T` steps with
    :math:`W` of warmup:

    .. math::
        \eta_t = \begin{cases}
        \eta \, \frac{t + 1}{W} & t < W \\
        \eta_{\min} + (\eta - \eta_{\min}) \,
            \frac{1}{2}\Big(1 + \cos\big(\pi \frac{t - W}{T - W}\big)\Big) & W \le t < T \\
        \eta_{\min} & t \ge T
        \end{cases}

    Without warmup it is :class:`~torch.optim.lr_scheduler.CosineAnnealingLR` with
    ``T_max = T`` in closed form (no drift from a recursive update), and it stays at
    ``eta_min`` past the horizon instead of rising again.

    Args:
        optimizer: The optimiser.
        total: :math:`T`, the horizon in steps.
        eta_min: The final learning rate :math:`\eta_{\min}` of every group.
        warmup: :math:`W`, warmup steps (``0``: none); less than ``total``.
        last_epoch: The last step taken (``-1``: none).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        total: int,
        eta_min: float = 0.0,
        warmup: int = 0,
        last_epoch: int = -1,
    ) -> None:
        if total < 1:
            raise ValueError(f"a cosine schedule needs at least one step, got total={total}")
        if not 0 <= warmup < total:
            raise ValueError(
                f"scheduler.warmup={warmup} must be at least 0 and less than the run's "
                f"{total} scheduler steps (trainer.max_epochs x steps per epoch, or epochs "
                "with scheduler.interval=epoch)"
            )
        self.total, self.eta_min, self.warmup = int(total), float(eta_min), int(warmup)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base: float, t: int) -> float:
        """The learning rate of step ``t`` for a group configured with ``base``."""
        if t < self.warmup:
            return base * (t + 1) / self.warmup
        if t >= self.total:
            return self.eta_min
        progress = (t - self.warmup) / (self.total - self.warmup)
        return self.eta_min + (base - self.eta_min) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def get_lr(self) -> list[float]:
        return [self.lr_at(base, self.last_epoch) for base in self.base_lrs]


class Schedule:
    """A constant learning rate (``scheduler=none``): :meth:`build` returns ``None``.

    Subclasses build a torch scheduler and say when the trainer steps it.
    """

    interval: str = "step"
    """When the trainer steps the scheduler: one of :data:`INTERVALS`."""

    needs_monitor: bool = False
    """Whether the scheduler is stepped on the monitored validation metric."""

    def build(
        self, optimizer: Optimizer, steps_per_epoch: int, max_epochs: int
    ) -> LRScheduler | None:
        """The torch scheduler of one fit (``None``: the learning rate stays as configured).

        Args:
            optimizer: The run's optimiser, before any step (and before a resumed
                optimiser state is loaded).
            steps_per_epoch: Optimiser steps per epoch (after ``limit_train_batches``).
            max_epochs: ``trainer.max_epochs``.
        """
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class CosineSchedule(Schedule):
    """Linear warmup, then cosine annealing to ``eta_min`` over the whole run.

    The horizon is the run's length: ``trainer.max_epochs`` times the steps per epoch
    with ``interval="step"``, ``trainer.max_epochs`` with ``interval="epoch"``; the last
    step trains just above ``eta_min``. A run that stops earlier (patience, the time
    budget ``trainer.max_time_min``) stops before the end of its cosine, so set
    ``trainer.max_epochs`` to what the budget allows.

    Args:
        eta_min: The final learning rate (absolute, for every parameter group).
        warmup: Warmup length in ``interval`` units (steps or epochs); ``0``: none.
        interval: ``"step"`` (per optimiser step) or ``"epoch"``.
    """

    def __init__(self, eta_min: float = 0.0, warmup: int = 0, interval: Interval = "step") -> None:
        if eta_min < 0:
            raise ValueError(f"scheduler.eta_min must be >= 0, got {eta_min}")
        if warmup < 0:
            raise ValueError(f"scheduler.warmup must be >= 0 (0: none), got {warmup}")
        if interval not in get_args(Interval):
            raise ValueError(
                f"scheduler.interval must be one of {list(get_args(Interval))}, got {interval!r}"
            )
        self.eta_min, self.warmup, self.interval = float(eta_min), int(warmup), interval

    def build(self, optimizer: Optimizer, steps_per_epoch: int, max_epochs: int) -> WarmupCosineLR:
        total = max_epochs * steps_per_epoch if self.interval == "step" else max_epochs
        return WarmupCosineLR(optimizer, total, eta_min=self.eta_min, warmup=self.warmup)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(eta_min={self.eta_min}, warmup={self.warmup}, "
            f"interval={self.interval})"
        )


class PlateauSchedule(Schedule):
    """Multiply the learning rate by ``factor`` when validation stops improving.

    :class:`~torch.optim.lr_scheduler.ReduceLROnPlateau` with ``mode="max"`` and a
    relative ``threshold``, stepped after every validation with the monitored metric
    (``optimized_metric``). The rate drops at the first validation after ``patience``
    validations without improvement (torch's convention: after ``patience + 1`` in a
    row), while ``trainer.patience`` stops training after ``trainer.patience`` of them;
    keep ``patience + 1`` below ``trainer.patience``, or training stops first.
    A run without validation (``optimized_metric=null``, data without a validation
    split) is refused at start.

    Args:
        factor: Multiplier of the learning rate on a plateau, in (0, 1).
        patience: Validations without improvement that are tolerated; the next one
            without improvement drops the rate.
        threshold: Relative improvement that counts (``best * (1 + threshold)``).
        cooldown: Validations to wait after a drop before counting again.
        min_lr: Lower bound of every group's learning rate.
    """

    interval = "validation"
    needs_monitor = True

    def __init__(
        self,
        factor: float = 0.5,
        patience: int = 5,
        threshold: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        if not 0 < factor < 1:
            raise ValueError(f"scheduler.factor must be in (0, 1), got {factor}")
        for key, value in (
            ("patience", patience),
            ("threshold", threshold),
            ("cooldown", cooldown),
            ("min_lr", min_lr),
        ):
            if value < 0:
                raise ValueError(f"scheduler.{key} must be >= 0, got {value}")
        self.factor, self.patience, self.threshold = float(factor), int(patience), float(threshold)
        self.cooldown, self.min_lr = int(cooldown), float(min_lr)

    def build(
        self, optimizer: Optimizer, steps_per_epoch: int, max_epochs: int
    ) -> ReduceLROnPlateau:
        return ReduceLROnPlateau(
            optimizer,
            mode="max",
            factor=self.factor,
            patience=self.patience,
            threshold=self.threshold,
            threshold_mode="rel",
            cooldown=self.cooldown,
            min_lr=self.min_lr,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(factor={self.factor}, patience={self.patience}, "
            f"threshold={self.threshold}, cooldown={self.cooldown}, min_lr={self.min_lr})"
        )
