"""The processed-data cache: :func:`load_dataset` through parquet files on disk.

``<cache_dir>/processed/<key>/`` holds one parquet file per table, ``meta.json`` and
``manifest.json`` (the size and SHA-256 of each of the others). The key
(:func:`cache_key`) covers the code that builds the tables (:func:`code_files`), the
source and its files, and the preprocess options.

An entry is built once by :func:`gnnrec.utils.cache.cached_dir`: in a temporary folder
beside it, renamed into place when complete, under a lock on
``<cache_dir>/locks/processed-<key>.lock``. Every load checks the manifest first; an
entry with a changed, missing or extra file, or one that cannot be read, is rebuilt
with a warning naming the entry and what is wrong. The lock holder removes the
temporary folders of a killed build of its key before building.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from gnnrec.data.preprocess import preprocess as run_preprocess
from gnnrec.data.schema import DataError, InteractionData
from gnnrec.data.sources import Source
from gnnrec.utils.cache import cached_dir, file_sha256

__all__ = ["TABLES", "cache_key", "code_files", "load_dataset", "read_processed", "write_processed"]

TABLES = ("interactions", "users", "items", "kg", "item_entity")

log = logging.getLogger(__name__)


def _preprocess_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """Complete ``options`` with defaults; unknown keys raise naming the key."""
    options = dict(options or {})
    params = inspect.signature(run_preprocess).parameters
    allowed = [name for name, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown key(s) data.preprocess.{unknown[0]} ({unknown}); allowed keys: {allowed}"
        )
    return {name: options.get(name, params[name].default) for name in allowed}


def code_files(source: Source) -> list[Path]:
    """The source files of the code that produces the processed tables for ``source``.

    This module (it writes and reads the tables), :mod:`gnnrec.data.preprocess`,
    :mod:`gnnrec.data.schema` and the file of every class in the source's class
    hierarchy (its format file, ``sources/base.py``, and a subclass's own file). Their
    text is part of :func:`cache_key`, so editing any of them gives new keys. Classes
    without a source file (defined in an interactive session) are skipped.
    """
    modules = [
        sys.modules[__name__],
        sys.modules[run_preprocess.__module__],
        sys.modules[DataError.__module__],
    ]
    classes = [c for c in type(source).__mro__ if issubclass(c, Source)]
    files = [Path(inspect.getfile(m)) for m in modules]
    for cls in classes:
        try:
            files.append(Path(inspect.getfile(cls)))
        except (TypeError, OSError):
            continue
    return list(dict.fromkeys(f.resolve() for f in files))


def cache_key(source: Source, options: dict[str, Any] | None = None) -> str:
    """The sha256 cache key of ``source`` preprocessed with ``options``.

    It covers the text of the code that produces the tables (:func:`code_files`), the
    source class, ``source.describe()``, the content of every file in ``source.files()``
    and the completed preprocess options. No version number needs bumping by hand.
    """
    payload = {
        "code": [[p.name, file_sha256(p)] for p in code_files(source)],
        "source": f"{type(source).__module__}.{type(source).__qualname__}",
        "describe": source.describe(),
        "files": [[p.name, file_sha256(p)] for p in source.files()],
        "preprocess": _preprocess_options(options),
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_dataset(
    source: Source,
    *,
    preprocess: dict[str, Any] | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
) -> InteractionData:
    """Load ``source`` and preprocess it, through the cache when ``cache_dir`` is set.

    The result is stored under ``<cache_dir>/processed/<key>/`` (see :func:`cache_key`)
    as parquet files plus ``meta.json`` and ``manifest.json``, by
    :func:`gnnrec.utils.cache.cached_dir`: built in a temporary folder and renamed into
    place (a failed build leaves nothing), under a lock on
    ``<cache_dir>/locks/processed-<key>.lock`` so that concurrent jobs of a sweep build a
    key once. An entry that does not match its manifest or cannot be read is rebuilt,
    with a warning.

    Args:
        source: Where to read the raw tables.
        preprocess: Keyword arguments of :func:`gnnrec.data.preprocess.preprocess`
            (``data.preprocess``).
        cache_dir: Cache root; ``None`` disables caching.
        use_cache: ``False`` neither reads nor writes the cache.

    Returns:
        The preprocessed :class:`InteractionData`.
    """
    options = _preprocess_options(preprocess)
    if cache_dir is None or not use_cache:
        return run_preprocess(source.load(), **options)
    root = Path(cache_dir).expanduser()
    key = cache_key(source, options)

    def build(folder: Path) -> InteractionData:
        data = run_preprocess(source.load(), **options)
        write_processed(data, folder)
        return data

    entry = cached_dir(
        root / "processed" / key,
        build,
        _read_entry,
        lock=root / "locks" / f"processed-{key}.lock",
    )
    if entry.computed:
        log.info("preprocessed %r into the cache %s", source, entry.path)
    else:
        log.info("loaded preprocessed data from the cache %s", entry.path)
    return entry.value


def _read_entry(folder: Path) -> InteractionData | None:
    """The entry (its manifest already checked), or ``None`` with a warning if unreadable."""
    try:
        return read_processed(folder)
    except (OSError, ValueError, KeyError, TypeError) as err:  # pyarrow's are ValueErrors
        warnings.warn(
            f"processed-data cache {folder} is unreadable ({type(err).__name__}: {err}); "
            "rebuilding it",
            stacklevel=5,
        )
        return None


def write_processed(data: InteractionData, folder: Path) -> None:
    """Write ``data`` as parquet tables plus ``meta.json`` into ``folder``."""
    present = []
    for name in TABLES:
        table = getattr(data, name)
        if table is not None:
            table.to_parquet(folder / f"{name}.parquet", index=False)
            present.append(name)
    meta = {
        "domains": list(data.domains),
        "tables": present,
        "meta": data.meta,
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")


def read_processed(folder: Path) -> InteractionData:
    """Read what :func:`write_processed` wrote (the manifest is checked by the cache)."""
    info = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    tables = {
        name: pd.read_parquet(folder / f"{name}.parquet") if name in info["tables"] else None
        for name in TABLES
    }
    return InteractionData(domains=info["domains"], meta=info["meta"], **tables)
