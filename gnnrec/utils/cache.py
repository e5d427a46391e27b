"""Build-once caches on disk: check, else build under a lock, then rename into place.

Both caches of gnnrec use it: preprocessed tables (a folder per key, written by
:func:`gnnrec.data.preprocess.load_dataset`) and text embeddings (a file per key, written
by :func:`gnnrec.features.cache.cached_embeddings`).

The recipe is the same for a file (:func:`cached_file`) and a folder (:func:`cached_dir`):

1. If the entry exists and ``load(path)`` accepts it, return it (no lock needed: entries
   only ever appear whole, by rename).
2. Otherwise take an exclusive :class:`filelock.FileLock` on the entry's lock file and
   check again, so that of several processes of a sweep one builds and the others wait
   and then load its result.
3. ``build(tmp)`` writes into a temporary file or folder beside the entry; it is renamed
   over the entry only when ``build`` returns. If ``build`` raises, the temporary is
   removed: a failed run leaves nothing behind under the entry's name.

``load`` returns ``None`` for an entry that is incomplete, corrupt or stale; it is then
rebuilt (and replaced) under the lock. Where locks do not work (some network file
systems) and another process renames the same folder into place first, its copy is kept
and this process's copy is discarded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from filelock import FileLock

__all__ = ["Cached", "cached_dir", "cached_file", "file_lock", "write_file_atomically"]

T = TypeVar("T")


@dataclass(frozen=True)
class Cached(Generic[T]):
    """What a cache call returns.

    Args:
        value: What ``load`` or ``build`` returned.
        path: The cache entry (file or folder).
        computed: ``True`` if this call built the entry, ``False`` if it loaded it.
    """

    value: T
    path: Path
    computed: bool


@contextlib.contextmanager
def file_lock(path: str | Path, timeout: float = -1) -> Iterator[None]:
    """Hold an exclusive :class:`filelock.FileLock` on ``path`` (its folder is created).

    Args:
        path: The lock file.
        timeout: Seconds to wait for the lock; ``-1`` waits forever. Raises
            :class:`filelock.Timeout` when it runs out.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path, timeout=timeout):
        yield


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_file_atomically(path: str | Path, write: Callable[[Path], T]) -> T:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``.

    The one temporary-file routine of gnnrec (:func:`gnnrec.utils.io.atomic_write` and
    :func:`cached_file` use it). If ``write`` raises, the temporary file is removed and
    ``path`` is untouched.

    Returns:
        What ``write`` returned.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        value = write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return value


def _stamp(path: Path) -> tuple[int, int] | None:
    """Identity of the entry now at ``path`` (inode, mtime), ``None`` if there is none."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def _try_load(path: Path, load: Callable[[Path], T | None]) -> tuple[T | None, object]:
    """``load(path)`` if the entry exists, with the entry's stamp."""
    stamp = _stamp(path)
    return (load(path) if stamp is not None else None), stamp


def _load_if_changed(path: Path, load: Callable[[Path], T | None], seen: object) -> T | None:
    """Under the lock: load again only an entry other than the one already rejected."""
    stamp = _stamp(path)
    if stamp is None or stamp == seen:
        return None
    return load(path)


def _lock_path(path: Path, lock: str | Path | None) -> Path:
    return Path(lock) if lock is not None else path.with_name(path.name + ".lock")


def cached_file(
    path: str | Path,
    build: Callable[[Path], T],
    load: Callable[[Path], T | None],
    *,
    lock: str | Path | None = None,
    timeout: float = -1,
) -> Cached[T]:
    """Return the cached file at ``path``, building it once if it is absent or rejected.

    Args:
        path: The cache file.
        build: Writes the entry into the temporary file it is given (same folder as
            ``path``) and returns the value; the file is renamed to ``path`` afterwards.
        load: Reads an existing ``path``; returns ``None`` to have it rebuilt.
        lock: The lock file; default ``<path>.lock``.
        timeout: Seconds to wait for the lock (``-1``: forever).

    Returns:
        The value, ``path`` and whether this call built it.
    """
    return _cached(Path(path), load, lock, timeout, lambda p: write_file_atomically(p, build))


def cached_dir(
    path: str | Path,
    build: Callable[[Path], T],
    load: Callable[[Path], T | None],
    *,
    lock: str | Path | None = None,
    timeout: float = -1,
) -> Cached[T]:
    """Return the cached folder at ``path``, building it once if it is absent or rejected.

    Args:
        path: The cache folder.
        build: Fills the empty temporary folder it is given (beside ``path``) and
            returns the value; the folder is renamed to ``path`` afterwards.
        load: Reads an existing ``path``; returns ``None`` to have it rebuilt.
        lock: The lock file; default ``<path>.lock``.
        timeout: Seconds to wait for the lock (``-1``: forever).

    Returns:
        The value, ``path`` and whether this call built it.
    """

    def store(path: Path) -> T:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        try:
            value = build(tmp)
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; give the usual mode
            if path.exists():  # rejected by load: replace it
                shutil.rmtree(path)
            try:
                os.rename(tmp, path)
            except OSError:
                if not path.exists() or load(path) is None:
                    raise
                # Another process (without working locks) stored the same entry first.
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return value

    return _cached(Path(path), load, lock, timeout, store)


def _cached(
    path: Path,
    load: Callable[[Path], T | None],
    lock: str | Path | None,
    timeout: float,
    store: Callable[[Path], T],
) -> Cached[T]:
    """Load ``path``, else, under the lock and unless another process built it, ``store`` it."""
    value, seen = _try_load(path, load)
    if value is not None:
        return Cached(value, path, False)
    with file_lock(_lock_path(path, lock), timeout):
        value = _load_if_changed(path, load, seen)
        if value is not None:  # another process built it while this one waited
            return Cached(value, path, False)
        return Cached(store(path), path, True)
