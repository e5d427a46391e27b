"""Seeds, determinism, device selection and the memory a run may use."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = [
    "available_memory",
    "resolve_device",
    "resolve_precision",
    "seed_everything",
    "set_deterministic",
]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_deterministic(enabled: bool) -> None:
    """Ask torch for deterministic kernels (raises on ops that have none)."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=False)


def resolve_device(device: str, key: str = "device") -> torch.device:
    """``"auto"`` is CUDA when available, else CPU; anything else is passed to torch.

    ``key`` is the config key the user sets (the top-level ``device``), for messages.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"{key}={device!r} is not a device; use auto, cpu, cuda or cuda:N"
        ) from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{key}={device!r} but CUDA is not available; use {key}=auto or {key}=cpu")
    return dev


def resolve_precision(precision: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """Map ``trainer.precision`` to ``(autocast dtype or None, use GradScaler)``.

    ``"auto"`` is bf16 mixed precision on CUDA devices that support it, else fp32.
    """
    allowed = ("auto", "32", "bf16-mixed", "16-mixed")
    if precision not in allowed:
        raise ValueError(f"trainer.precision must be one of {allowed}, got {precision!r}")
    if precision == "auto":
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        precision = "bf16-mixed" if cuda_bf16 else "32"
    if precision == "32":
        return None, False
    if device.type != "cuda":
        raise ValueError(f"trainer.precision={precision!r} needs a CUDA device, got {device}")
    return (torch.bfloat16, False) if precision == "bf16-mixed" else (torch.float16, True)


def available_memory() -> int | None:
    """Bytes of memory available to new allocations now, or ``None`` where unknown.

    Linux's ``MemAvailable`` (free memory plus what the page cache can give back), else
    the free physical pages the C library reports.
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
