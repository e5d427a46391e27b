"""Atomic file writes: a file appears whole or not at all; checkpoints verified on load.

Build-once caches (check, else build under a lock, then rename) are in
:mod:`gnnrec.utils.cache`; :func:`file_lock` is re-exported from there.

A checkpoint carries the SHA-256 of its own contents (:func:`state_digest`) under the
key :data:`CHECKSUM_KEY`, inside the one file: it is written by the same atomic rename
(a killed write cannot leave a checkpoint and a checksum that disagree, as a separate
``.sha256`` file could), and it travels with the file when the file is copied. Torch's
zip format checks nothing in the tensor data, so a flipped byte there would otherwise
load as a changed weight.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from gnnrec.errors import GnnrecError
from gnnrec.utils.cache import file_lock, write_file_atomically

__all__ = [
    "CHECKSUM_KEY",
    "atomic_write",
    "file_lock",
    "load_checkpoint",
    "save_checkpoint",
    "sqlite_url",
    "state_digest",
    "write_json",
]

CHECKSUM_KEY = "sha256"
"""Key of a checkpoint's own content digest (:func:`state_digest` of the other keys)."""

_DAMAGED_FIX = "Restore an intact copy, or delete it and train again (without trainer.resume)"


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


def _update_digest(digest, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        tensor = obj.detach().cpu().contiguous()
        digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(obj, dict):
        digest.update(f"D{len(obj)}\0".encode())
        for key, value in obj.items():
            _update_digest(digest, key)
            _update_digest(digest, value)
    elif isinstance(obj, list | tuple):
        digest.update(f"{type(obj).__name__}{len(obj)}\0".encode())
        for value in obj:
            _update_digest(digest, value)
    else:
        text = repr(obj)
        digest.update(f"{type(obj).__name__}:{len(text)}:{text}\0".encode())


def state_digest(state: dict) -> str:
    """SHA-256 (hex) of a checkpoint's contents: every key, value, tensor dtype, shape and byte.

    The same on any device and after a save and load round trip (tensors are hashed by
    their bytes on the CPU, numbers by their exact ``repr``).
    """
    digest = hashlib.sha256(b"gnnrec-checkpoint-v1\0")
    _update_digest(digest, state)
    return digest.hexdigest()


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Save a checkpoint atomically, with its :func:`state_digest` under :data:`CHECKSUM_KEY`.

    Args:
        path: The file.
        state: Tensors, numbers, strings, lists and dicts only (``weights_only`` loads).

    Raises:
        ValueError: ``state`` already has a :data:`CHECKSUM_KEY` key.
    """
    if CHECKSUM_KEY in state:
        raise ValueError(f"checkpoint key {CHECKSUM_KEY!r} is reserved for the checksum")
    full = {**state, CHECKSUM_KEY: state_digest(state)}
    return atomic_write(path, lambda tmp: torch.save(full, tmp))


def _first_sentence(err: Exception) -> str:
    """``"Type: first sentence"`` of an exception (torch's messages run to paragraphs)."""
    lines = str(err).strip().splitlines()
    text = lines[0].split(". ")[0].rstrip(".") if lines else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True`` (no arbitrary pickles) and verify it.

    The stored :data:`CHECKSUM_KEY` is checked against the loaded contents and removed:
    the state is what :func:`save_checkpoint` was given. A checkpoint written before
    checkpoints carried a checksum loads unverified, with a warning.

    Raises:
        FileNotFoundError: No file at ``path``.
        GnnrecError: The file cannot be read (truncated, damaged, not a checkpoint, or a
            pickle that ``weights_only`` refuses), or its contents do not match its
            checksum; the message names the file and what to do.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (MemoryError, PermissionError):
        raise
    except Exception as err:  # EOFError, torch's zip RuntimeError, UnpicklingError, ...
        raise GnnrecError(
            f"checkpoint {path} cannot be read ({_first_sentence(err)}): the file is "
            f"truncated or damaged, or not a gnnrec checkpoint. {_DAMAGED_FIX}"
        ) from err
    if not isinstance(state, dict):
        raise GnnrecError(
            f"checkpoint {path} holds a {type(state).__name__}, not a checkpoint's dict. "
            f"{_DAMAGED_FIX}"
        )
    stored = state.pop(CHECKSUM_KEY, None)
    if stored is None:
        warnings.warn(
            f"checkpoint {path} has no checksum (written before checkpoints carried one); "
            "loaded unverified",
            stacklevel=2,
        )
    elif stored != state_digest(state):
        raise GnnrecError(
            f"checkpoint {path} is damaged: its contents do not match the SHA-256 stored in "
            f"it. {_DAMAGED_FIX}"
        )
    return state


def sqlite_url(path: str | Path) -> str:
    """The ``sqlite:///`` URL of ``path``, creating its folder (SQLite makes only the file).

    ``conf/hparams_search/*`` uses it for the Optuna study storage.
    """
    path = Path(path).expanduser().absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"
