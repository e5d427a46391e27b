"""Atomic file writes: a file appears whole or not at all.

Build-once caches (check, else build under a lock, then rename) are in
:mod:`gnnrec.utils.cache`; :func:`file_lock` is re-exported from there.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from gnnrec.utils.cache import file_lock, write_file_atomically

__all__ = [
    "atomic_write",
    "file_lock",
    "load_checkpoint",
    "save_checkpoint",
    "sqlite_url",
    "write_json",
]


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``.

    If ``write`` raises, the temporary file is removed and ``path`` is untouched.

    Returns:
        ``path``.
    """
    write_file_atomically(path, write)
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    text = json.dumps(obj, indent=2, sort_keys=True)
    return atomic_write(path, lambda tmp: tmp.write_text(text + "\n"))


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Save a checkpoint atomically (tensors, numbers, strings, lists and dicts only)."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True`` (no arbitrary pickles)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return torch.load(path, map_location=map_location, weights_only=True)


def sqlite_url(path: str | Path) -> str:
    """The ``sqlite:///`` URL of ``path``, creating its folder (SQLite makes only the file).

    ``conf/hparams_search/*`` uses it for the Optuna study storage.
    """
    path = Path(path).expanduser().absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"
