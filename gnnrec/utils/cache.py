"""Build-once caches on disk: check, else build under a lock, then rename into place.

Both caches of gnnrec use it: preprocessed tables (a folder per key, written by
:func:`gnnrec.data.cache.load_dataset`) and text embeddings (a file per key, written
by :func:`gnnrec.features.cache.cached_embeddings`).

The recipe is the same for a file (:func:`cached_file`) and a folder (:func:`cached_dir`):

1. If the entry exists and ``load(path)`` accepts it, return it (no lock needed: entries
   only ever appear whole, by rename).
2. Otherwise take an exclusive :class:`filelock.FileLock` on the entry's lock file and
   check again, so that of several processes of a sweep one builds and the others wait
   and then load its result. The lock holder first removes the temporaries that a
   killed build of the same entry left behind (:func:`remove_leftover_temporaries`):
   while it holds the lock no other process writes that entry.
3. ``build(tmp)`` writes into a temporary file or folder beside the entry; it is renamed
   over the entry only when ``build`` returns. If ``build`` raises, the temporary is
   removed: a failed run leaves nothing behind under the entry's name.

A folder entry carries ``manifest.json`` (:func:`write_manifest`): the size and SHA-256
of every other file in it, written after them and before the folder is renamed into
place. :func:`cached_dir` checks it before calling ``load``, so a flipped byte, a
truncated or missing file or a file that does not belong is found whatever the file
type; the entry is then rebuilt with a warning naming the entry and what is wrong. A
file entry has no folder to hold a manifest; its ``load`` checks what the caller
recorded (the embedding cache keeps the array's SHA-256 in its ``.json`` sidecar).

``load`` returns ``None`` for an entry that is incomplete, corrupt or stale; it is then
rebuilt (and replaced) under the lock. Where locks do not work (some network file
systems) and another process renames the same folder into place first, its copy is kept
and this process's copy is discarded.

Temporaries are created with the default modes (``0o666`` for a file, ``0o777`` for a
folder, less the umask or as a default ACL of the folder says), so a cache entry gets
the permissions of any other file or folder made there and a cache shared by a group
stays readable by the group. The process umask is never read or changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from filelock import FileLock

__all__ = [
    "MANIFEST",
    "Cached",
    "cached_dir",
    "cached_file",
    "file_lock",
    "file_sha256",
    "leftover_temporaries",
    "manifest_problem",
    "remove_leftover_temporaries",
    "write_file_atomically",
    "write_manifest",
]

T = TypeVar("T")

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "gnnrec-cache-manifest-v1"
_HASH_CHUNK = 1 << 22
# ``.<name>.<random>.tmp``: 16 hex digits today, 8 of tempfile's characters before.
_TEMPORARY = r"\.{name}\.(?:[0-9a-f]{{16}}|[a-z0-9_]{{8}})\.tmp"

log = logging.getLogger(__name__)


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


# ------------------------------------------------------------------ temporaries


def _temporary_name(path: Path) -> Path:
    """A fresh ``.<name>.<16 hex digits>.tmp`` beside ``path``."""
    return path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")


def leftover_temporaries(path: str | Path) -> list[Path]:
    """The temporary files and folders of ``path`` present beside it, sorted by name.

    These are ``.<name>.<random>.tmp`` (what :func:`write_file_atomically` and
    :func:`cached_dir` create, and what gnnrec's earlier ``tempfile`` names looked like).
    Only call it as the holder of the entry's lock: then none of them is being written.
    """
    path = Path(path)
    pattern = re.compile(_TEMPORARY.format(name=re.escape(path.name)))
    try:
        names = os.listdir(path.parent)
    except FileNotFoundError:
        return []
    return sorted(path.parent / n for n in names if pattern.fullmatch(n))


def remove_leftover_temporaries(path: str | Path) -> list[Path]:
    """Remove :func:`leftover_temporaries` of ``path`` (each logged as a warning).

    Call it only while holding the entry's lock, which guarantees that no process is
    writing them: they are what a killed or crashed write left behind.

    Returns:
        The paths removed.
    """
    removed = []
    for tmp in leftover_temporaries(path):
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        log.warning("removed %s, left by a write of %s that did not finish", tmp, path)
        removed.append(tmp)
    return removed


def write_file_atomically(path: str | Path, write: Callable[[Path], T]) -> T:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``.

    The one temporary-file routine of gnnrec (:func:`gnnrec.utils.io.atomic_write` and
    :func:`cached_file` use it). The temporary file is ``.<name>.<random>.tmp``, created
    empty with the default file mode (``0o666`` less the umask, or the folder's default
    ACL). If ``write`` raises, the temporary file is removed and ``path`` is untouched.

    Returns:
        What ``write`` returned.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(path)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        value = write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return value


# ------------------------------------------------------------------ checksums


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _files(folder: Path) -> list[str]:
    """Relative POSIX names of the files under ``folder`` other than the manifest."""
    names = (p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir())
    return sorted(n for n in names if n != MANIFEST)


def write_manifest(folder: str | Path) -> dict:
    """Write ``<folder>/manifest.json``: the size and SHA-256 of every other file in it.

    Call it after the last file is written; :func:`manifest_problem` checks it.

    Returns:
        The manifest.
    """
    folder = Path(folder)
    files = {
        name: {"size": (folder / name).stat().st_size, "sha256": file_sha256(folder / name)}
        for name in _files(folder)
    }
    manifest = {"format": MANIFEST_FORMAT, "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def manifest_problem(folder: str | Path) -> str | None:
    """What is wrong with ``folder`` against its ``manifest.json``, ``None`` if nothing.

    Every file the manifest lists must be there with its size and SHA-256, and no other
    file may be there.
    """
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"]
        if manifest["format"] != MANIFEST_FORMAT or not isinstance(files, dict):
            raise ValueError(f"format {manifest['format']!r}, expected {MANIFEST_FORMAT!r}")
        records = {name: (int(r["size"]), str(r["sha256"])) for name, r in files.items()}
    except FileNotFoundError:
        return f"it has no {MANIFEST} (written by an older gnnrec, or changed by hand)"
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        return f"its {MANIFEST} is unreadable ({type(err).__name__}: {err})"
    problems = [
        _file_problem(folder, name, size, sha256) for name, (size, sha256) in records.items()
    ]
    problems += [f"{name} is not in {MANIFEST}" for name in _files(folder) if name not in records]
    return "; ".join(sorted(p for p in problems if p)) or None


def _file_problem(folder: Path, name: str, size: int, sha256: str) -> str | None:
    """What is wrong with one file of a manifest, ``None`` if nothing."""
    file = folder / name
    try:
        if not file.is_file():
            return f"{name} is missing"
        if (actual := file.stat().st_size) != size:
            return f"{name} has {actual} bytes, {MANIFEST} records {size}"
        if (actual_sha := file_sha256(file)) != sha256:
            return f"{name} has SHA-256 {actual_sha[:16]}..., {MANIFEST} records {sha256[:16]}..."
    except OSError as err:  # removed or replaced while being read
        return f"{name} is unreadable ({type(err).__name__}: {err})"
    return None


def _checked(load: Callable[[Path], T | None]) -> Callable[[Path], T | None]:
    """``load`` of a folder entry, called only when the entry matches its manifest."""

    def checked(path: Path) -> T | None:
        problem = manifest_problem(path)
        if problem is not None:
            warnings.warn(f"cache entry {path} is damaged: {problem}; rebuilding it", stacklevel=5)
            return None
        return load(path)

    return checked


# ------------------------------------------------------------------ build once


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
            It runs under the lock.
        load: Reads an existing ``path``; returns ``None`` to have it rebuilt. Checking
            the file's content (a checksum the caller recorded) is up to it.
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
            returns the value; :func:`write_manifest` then records its files and the
            folder is renamed to ``path``. It runs under the lock.
        load: Reads an existing ``path`` that matches its manifest; returns ``None`` to
            have it rebuilt. A folder that does not match its manifest is rebuilt with
            a warning and ``load`` is not called.
        lock: The lock file; default ``<path>.lock``.
        timeout: Seconds to wait for the lock (``-1``: forever).

    Returns:
        The value, ``path`` and whether this call built it.
    """
    load = _checked(load)

    def store(path: Path) -> T:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temporary_name(path)
        os.mkdir(tmp, 0o777)
        try:
            value = build(tmp)
            write_manifest(tmp)
            if path.exists():  # rejected by load: move it aside, then replace it
                old = _temporary_name(path)
                os.rename(path, old)
                shutil.rmtree(old, ignore_errors=True)
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
        remove_leftover_temporaries(path)
        value = _load_if_changed(path, load, seen)
        if value is not None:  # another process built it while this one waited
            return Cached(value, path, False)
        return Cached(store(path), path, True)
