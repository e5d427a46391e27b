"""Utilities shared by every stage."""

from gnnrec.utils.cache import Cached, cached_dir, cached_file, file_lock, write_file_atomically
from gnnrec.utils.io import (
    atomic_write,
    load_checkpoint,
    save_checkpoint,
    state_digest,
    write_json,
)
from gnnrec.utils.runtime import (
    available_memory,
    resolve_device,
    resolve_precision,
    seed_everything,
    set_deterministic,
)

__all__ = [
    "Cached",
    "atomic_write",
    "available_memory",
    "cached_dir",
    "cached_file",
    "file_lock",
    "load_checkpoint",
    "resolve_device",
    "resolve_precision",
    "save_checkpoint",
    "seed_everything",
    "set_deterministic",
    "state_digest",
    "write_file_atomically",
    "write_json",
]
