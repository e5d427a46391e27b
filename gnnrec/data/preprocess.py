"""From raw tables to contiguous integer ids, with an on-disk cache.

:func:`preprocess` turns :class:`~gnnrec.data.schema.RawTables` into
:class:`~gnnrec.data.schema.InteractionData` in a fixed order of steps:

1. interactions whose item has no item row: error, or drop with a warning;
2. duplicate ``(user, item)`` pairs within a domain: keep the latest (or first) by
   ``timestamp``, ties by row order, with a warning saying how many were dropped;
3. optional rating threshold (keep ``rating >= threshold``);
4. optional k-core: repeatedly keep users and items with at least ``k`` interactions,
   counting a user's degree within each domain, until nothing changes;
5. contiguous ids: users sorted by raw id, items by ``(domain, raw id)``, domains by
   name. Raw ids that are all plain integers sort numerically (``"2" < "10"``), so
   already-remapped datasets such as the LightGCN files keep their ids; any other ids
   sort as strings.

:func:`load_dataset` wraps a source and :func:`preprocess` with a content-addressed
parquet cache under ``<cache_dir>/processed/<key>/``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gnnrec.data.schema import (
    DataError,
    InteractionData,
    RawTables,
    missing_item_error,
    missing_item_mask,
    validate_tables,
)
from gnnrec.data.sources import Source
from gnnrec.utils.io import file_lock

__all__ = ["preprocess", "load_dataset", "cache_key", "CACHE_FORMAT_VERSION"]

CACHE_FORMAT_VERSION = "gnnrec-processed-v1"
ON_MISSING_ITEM = ("error", "drop")
DEDUP = ("last", "first")
TABLES = ("interactions", "users", "items", "kg", "item_entity")
_HASH_CHUNK = 1 << 20

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------ preprocess


def preprocess(
    tables: RawTables,
    *,
    rating_threshold: float | None = None,
    kcore: int = 0,
    dedup: str = "last",
    on_missing_item: str = "error",
) -> InteractionData:
    """Clean raw tables and give users, items and domains contiguous ids.

    Args:
        tables: Canonical raw tables from a source.
        rating_threshold: Keep interactions with ``rating >= rating_threshold``;
            ``None`` keeps all.
        kcore: Keep users and items with at least ``kcore`` interactions per domain,
            iterated until stable; ``0`` or ``1`` disables it.
        dedup: ``"last"`` keeps the latest of duplicate ``(user, item)`` pairs in a
            domain, ``"first"`` the earliest (by ``timestamp``, ties by row order).
        on_missing_item: ``"error"`` raises on interactions whose item has no item row;
            ``"drop"`` drops them with a warning.

    Returns:
        The :class:`InteractionData`; ``meta`` holds per-domain counts and how many rows
        each step dropped.

    Raises:
        DataError: Bad data, or nothing left after filtering.
        ValueError: An unknown option value.
    """
    _check_options(rating_threshold, kcore, dedup, on_missing_item)
    validate_tables(tables, check_items=False)
    inter = tables.interactions.reset_index(drop=True)
    dropped: dict[str, int] = {}

    keep = _missing_items(tables, inter, on_missing_item)
    dropped["missing_item"] = int((~keep).sum())
    inter = inter[keep].reset_index(drop=True)
    row = np.arange(len(inter), dtype=np.int64)

    codes = _Codes(inter)
    keep = _dedup_mask(codes, inter, row, dedup)
    dropped["duplicates"] = int((~keep).sum())
    if dropped["duplicates"]:
        warnings.warn(
            f"{tables.source}: dropped {dropped['duplicates']} duplicate (user, item) "
            f"interaction(s) within a domain, keeping the {dedup} by timestamp "
            "(set data.preprocess.dedup to 'first' or 'last')",
            stacklevel=2,
        )
    if rating_threshold is not None:
        keep &= _rating_mask(inter, rating_threshold, tables.source)
        dropped["rating"] = int((~keep).sum()) - dropped["duplicates"]
    if kcore > 1:
        before = int(keep.sum())
        keep = _kcore_mask(codes, keep, kcore)
        dropped["kcore"] = before - int(keep.sum())
    if not keep.any():
        raise DataError(
            f"{tables.source}: no interactions are left after preprocessing "
            f"(rating_threshold={rating_threshold}, kcore={kcore}); lower "
            "data.preprocess.rating_threshold or data.preprocess.kcore"
        )
    return _build(tables, inter, codes, keep, row, dropped)


def _check_options(
    rating_threshold: float | None, kcore: int, dedup: str, on_missing_item: str
) -> None:
    if on_missing_item not in ON_MISSING_ITEM:
        raise ValueError(
            f"data.preprocess.on_missing_item must be one of {ON_MISSING_ITEM}, "
            f"got {on_missing_item!r}"
        )
    if dedup not in DEDUP:
        raise ValueError(f"data.preprocess.dedup must be one of {DEDUP}, got {dedup!r}")
    if isinstance(kcore, bool) or not isinstance(kcore, int | np.integer) or kcore < 0:
        raise ValueError(f"data.preprocess.kcore must be an integer >= 0, got {kcore!r}")
    if rating_threshold is not None and not isinstance(rating_threshold, int | float):
        raise ValueError(
            f"data.preprocess.rating_threshold must be a number or null, got {rating_threshold!r}"
        )


def _missing_items(tables: RawTables, inter: pd.DataFrame, on_missing_item: str) -> np.ndarray:
    """``bool`` mask of interactions to keep after the missing-item check."""
    missing = missing_item_mask(inter, tables.items)
    if not missing.any():
        return ~missing
    if on_missing_item == "error":
        raise missing_item_error(tables.source, inter, missing)
    first = inter.loc[missing, ["domain", "item"]].iloc[0]
    warnings.warn(
        f"{tables.source}: dropped {int(missing.sum())} interaction(s) whose item has no "
        f"item row, e.g. item {first['item']!r} in domain {first['domain']!r} "
        "(data.preprocess.on_missing_item=drop)",
        stacklevel=3,
    )
    return ~missing


class _Codes:
    """Integer codes of the raw ids, in first-seen order (not yet the final ids)."""

    def __init__(self, inter: pd.DataFrame) -> None:
        self.user, self.user_values = pd.factorize(inter["user"].astype(str))
        self.domain, self.domain_values = pd.factorize(inter["domain"].astype(str))
        item, self.item_values = pd.factorize(inter["item"].astype(str))
        pair = self.domain.astype(np.int64) * max(len(self.item_values), 1) + item
        self.item, _ = pd.factorize(pair)
        _, first = np.unique(self.item, return_index=True)
        self.item_raw = item[first]
        self.item_domain = self.domain[first]

    @property
    def num_users(self) -> int:
        return len(self.user_values)

    @property
    def num_items(self) -> int:
        return len(self.item_raw)

    @property
    def num_domains(self) -> int:
        return len(self.domain_values)


def _dedup_mask(codes: _Codes, inter: pd.DataFrame, row: np.ndarray, dedup: str) -> np.ndarray:
    """Keep one row per ``(user, item)`` pair; items already carry their domain."""
    if "timestamp" in inter.columns:
        ts = inter["timestamp"].to_numpy(dtype=np.float64)
    else:
        ts = np.zeros(len(inter))
    pair = codes.user.astype(np.int64) * codes.num_items + codes.item
    order = np.lexsort((row, ts, pair))
    sorted_pair = pair[order]
    if dedup == "last":
        chosen = np.r_[sorted_pair[1:] != sorted_pair[:-1], True]
    else:
        chosen = np.r_[True, sorted_pair[1:] != sorted_pair[:-1]]
    keep = np.zeros(len(inter), dtype=bool)
    keep[order[chosen]] = True
    return keep


def _rating_mask(inter: pd.DataFrame, threshold: float, source: str) -> np.ndarray:
    if "rating" not in inter.columns:
        raise DataError(
            f"{source}: data.preprocess.rating_threshold={threshold} is set but the "
            "interactions have no 'rating' column; set it to null"
        )
    return inter["rating"].to_numpy(dtype=np.float64) >= threshold


def _kcore_mask(codes: _Codes, keep: np.ndarray, k: int) -> np.ndarray:
    """Iteratively drop rows whose user (within the domain) or item has degree < k."""
    keep = keep.copy()
    user_domain = codes.user.astype(np.int64) * codes.num_domains + codes.domain
    n_user_domain = codes.num_users * codes.num_domains
    while True:
        user_deg = np.bincount(user_domain[keep], minlength=n_user_domain)
        item_deg = np.bincount(codes.item[keep], minlength=codes.num_items)
        new_keep = keep & (user_deg[user_domain] >= k) & (item_deg[codes.item] >= k)
        if new_keep.sum() == keep.sum():
            return new_keep
        keep = new_keep


def _id_order(values: pd.Series) -> np.ndarray:
    """Sort order of raw ids: numeric when all are plain integers, else as strings."""
    values = values.astype(str)
    if len(values) and values.str.fullmatch(r"\d{1,18}").all():
        return np.lexsort((values.to_numpy(dtype=object), values.astype(np.int64).to_numpy()))
    return np.argsort(values.to_numpy(dtype=object), kind="stable")


def _remap(codes: np.ndarray, present: np.ndarray, order: np.ndarray, n: int) -> np.ndarray:
    """Map old codes to new contiguous ids given the sorted order of ``present`` codes."""
    mapping = np.full(n, -1, dtype=np.int64)
    mapping[present[order]] = np.arange(len(present), dtype=np.int64)
    return mapping[codes]


def _build(
    tables: RawTables,
    inter: pd.DataFrame,
    codes: _Codes,
    keep: np.ndarray,
    row: np.ndarray,
    dropped: dict[str, int],
) -> InteractionData:
    user_c, item_c, dom_c = codes.user[keep], codes.item[keep], codes.domain[keep]

    dom_present = np.unique(dom_c)
    dom_names = pd.Series(codes.domain_values[dom_present]).astype(str)
    dom_order = np.argsort(dom_names.to_numpy(dtype=object), kind="stable")
    domains = dom_names.to_numpy(dtype=object)[dom_order].tolist()
    lost = sorted(set(map(str, codes.domain_values)) - set(domains))
    if lost:
        warnings.warn(
            f"{tables.source}: domain(s) {lost} have no interactions left after preprocessing",
            stacklevel=3,
        )
    dom_map = np.full(codes.num_domains, -1, dtype=np.int64)
    dom_map[dom_present[dom_order]] = np.arange(len(domains))

    user_present = np.unique(user_c)
    user_raw = pd.Series(codes.user_values[user_present]).astype(str)
    user_order = _id_order(user_raw)
    user_idx = _remap(user_c, user_present, user_order, codes.num_users)

    item_present = np.unique(item_c)
    item_raw = pd.Series(codes.item_values[codes.item_raw[item_present]]).astype(str)
    item_dom = dom_map[codes.item_domain[item_present]]
    item_order = _item_order(item_raw, item_dom)
    item_idx = _remap(item_c, item_present, item_order, codes.num_items)

    out = pd.DataFrame({"user_idx": user_idx, "item_idx": item_idx, "domain_idx": dom_map[dom_c]})
    kept = inter[keep]
    for col in ("rating", "timestamp"):
        if col in kept.columns:
            out[col] = kept[col].to_numpy(dtype=np.float64)
    if "split" in kept.columns:
        out["split"] = kept["split"].astype(str).to_numpy()
    ts = out["timestamp"].to_numpy() if "timestamp" in out.columns else np.zeros(len(out))
    out = out.iloc[np.lexsort((row[keep], ts, user_idx))].reset_index(drop=True)

    users = _users_table(user_raw.to_numpy(dtype=object)[user_order], tables)
    items_order = pd.DataFrame(
        {
            "item": item_raw.to_numpy(dtype=object)[item_order],
            "domain_idx": item_dom[item_order],
        }
    )
    items = _items_table(items_order, domains, tables)
    item_entity = _item_entity(tables, items)
    kg = None if tables.kg is None else _str_frame(tables.kg.reset_index(drop=True))
    meta = _meta(out, domains, dropped, tables.source)
    return InteractionData(
        interactions=out,
        users=users,
        items=items,
        domains=domains,
        kg=kg,
        item_entity=item_entity,
        meta=meta,
    )


def _item_order(item_raw: pd.Series, item_dom: np.ndarray) -> np.ndarray:
    """Order of items by (domain index, raw id), raw ids sorted per domain by :func:`_id_order`."""
    rank = np.empty(len(item_raw), dtype=np.int64)
    for d in np.unique(item_dom):
        rows = np.flatnonzero(item_dom == d)
        rank[rows[_id_order(item_raw.iloc[rows].reset_index(drop=True))]] = np.arange(len(rows))
    return np.lexsort((rank, item_dom))


def _str_frame(df: pd.DataFrame) -> pd.DataFrame:
    for col in ("user", "item", "domain", "head", "relation", "tail", "entity"):
        if col in df.columns:
            df[col] = df[col].astype(str)
    return df


def _users_table(raw_users: np.ndarray, tables: RawTables) -> pd.DataFrame:
    """Row ``i`` is user ``i``; profile columns joined from ``tables.users`` (NaN if absent)."""
    users = pd.DataFrame({"user": pd.Series(raw_users, dtype="str")})
    if tables.users is None:
        return users
    profile = _str_frame(tables.users.reset_index(drop=True).copy())
    if profile["user"].duplicated().any():
        dup = profile.loc[profile["user"].duplicated(), "user"].iloc[0]
        raise DataError(f"{tables.source}: users table has more than one row for user {dup!r}")
    return users.merge(profile, on="user", how="left", validate="one_to_one")


def _items_table(order: pd.DataFrame, domains: list[str], tables: RawTables) -> pd.DataFrame:
    """Row ``j`` is item ``j``: raw id, domain name, domain index and text columns."""
    order["item"] = order["item"].astype(str)
    order.insert(1, "domain", pd.Series(np.asarray(domains, dtype=object)[order["domain_idx"]]))
    order["domain"] = order["domain"].astype(str)
    text = _str_frame(tables.items.reset_index(drop=True).copy())
    text = text[[c for c in text.columns if c != "domain_idx"]]
    items = order.merge(text, on=["item", "domain"], how="left", validate="one_to_one")
    items["domain_idx"] = items["domain_idx"].astype(np.int64)
    return items


def _item_entity(tables: RawTables, items: pd.DataFrame) -> pd.DataFrame | None:
    """Links mapped to ``item_idx``; links to items no longer present are dropped."""
    if tables.item_entity is None:
        return None
    links = _str_frame(tables.item_entity.reset_index(drop=True).copy())
    index = pd.MultiIndex.from_frame(items[["domain", "item"]])
    item_idx = index.get_indexer(pd.MultiIndex.from_frame(links[["domain", "item"]]))
    present = item_idx >= 0
    return pd.DataFrame(
        {
            "item_idx": item_idx[present].astype(np.int64),
            "entity": links.loc[present, "entity"].astype(str).to_numpy(),
        }
    )


def _meta(out: pd.DataFrame, domains: list[str], dropped: dict[str, int], source: str) -> dict:
    per_domain = {}
    for d, name in enumerate(domains):
        rows = out[out["domain_idx"] == d]
        per_domain[name] = {
            "interactions": len(rows),
            "users": int(rows["user_idx"].nunique()),
            "items": int(rows["item_idx"].nunique()),
        }
    meta = {
        "source": source,
        "num_users": int(out["user_idx"].max()) + 1,
        "num_items": int(out["item_idx"].max()) + 1,
        "num_interactions": len(out),
        "domains": per_domain,
        "dropped": dropped,
    }
    return json.loads(json.dumps(meta))


# ------------------------------------------------------------------------- the cache


def _preprocess_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """Complete ``options`` with defaults; unknown keys raise naming the key."""
    options = dict(options or {})
    params = inspect.signature(_PREPROCESS).parameters
    allowed = [name for name, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown key(s) data.preprocess.{unknown[0]} ({unknown}); allowed keys: {allowed}"
        )
    return {name: options.get(name, params[name].default) for name in allowed}


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def cache_key(source: Source, options: dict[str, Any] | None = None) -> str:
    """The sha256 cache key of ``source`` preprocessed with ``options``.

    It covers the cache format version, the source class, ``source.describe()``, the
    content of every file in ``source.files()`` and the completed preprocess options.
    """
    payload = {
        "version": CACHE_FORMAT_VERSION,
        "source": f"{type(source).__module__}.{type(source).__qualname__}",
        "describe": source.describe(),
        "files": [[p.name, _file_digest(p)] for p in source.files()],
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
    as parquet files plus ``meta.json``. It is written to a temporary folder next to it
    and renamed into place, so a failed write leaves nothing under the final name. An
    exclusive ``flock`` on ``<cache_dir>/locks/processed-<key>.lock`` is held while a key
    is checked, built and written, so concurrent jobs of a sweep build it once; where
    locks do not work and another process finished the same key first, its copy is used.

    Args:
        source: Where to read the raw tables.
        preprocess: Keyword arguments of :func:`preprocess` (``data.preprocess``).
        cache_dir: Cache root; ``None`` disables caching.
        use_cache: ``False`` neither reads nor writes the cache.

    Returns:
        The preprocessed :class:`InteractionData`.
    """
    options = _preprocess_options(preprocess)
    if cache_dir is None or not use_cache:
        return _PREPROCESS(source.load(), **options)
    root = Path(cache_dir).expanduser()
    processed = root / "processed"
    final = processed / cache_key(source, options)
    if not (final / "meta.json").is_file():
        with file_lock(root / "locks" / f"processed-{final.name}.lock"):
            if not (final / "meta.json").is_file():  # else another job built it meanwhile
                data = _PREPROCESS(source.load(), **options)
                _write_atomic(data, processed, final)
                log.info("preprocessed %r into the cache %s", source, final)
                return data
    log.info("loaded preprocessed data from the cache %s", final)
    return read_processed(final)


def _write_atomic(data: InteractionData, processed: Path, final: Path) -> None:
    processed.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name[:16]}-", dir=processed))
    try:
        write_processed(data, tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "meta.json").is_file():
                raise
            # Another process stored the same key first; keep its copy.
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_processed(data: InteractionData, folder: Path) -> None:
    """Write ``data`` as parquet tables plus ``meta.json`` into ``folder``."""
    present = []
    for name in TABLES:
        table = getattr(data, name)
        if table is not None:
            table.to_parquet(folder / f"{name}.parquet", index=False)
            present.append(name)
    meta = {
        "format": CACHE_FORMAT_VERSION,
        "domains": list(data.domains),
        "tables": present,
        "meta": data.meta,
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")


def read_processed(folder: Path) -> InteractionData:
    """Read what :func:`write_processed` wrote."""
    info = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    tables = {
        name: pd.read_parquet(folder / f"{name}.parquet") if name in info["tables"] else None
        for name in TABLES
    }
    return InteractionData(domains=info["domains"], meta=info["meta"], **tables)


_PREPROCESS = preprocess
