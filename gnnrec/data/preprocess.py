"""From raw tables to contiguous integer ids, with an on-disk cache.

:func:`preprocess` turns :class:`~gnnrec.data.schema.RawTables` into
:class:`~gnnrec.data.schema.InteractionData` in a fixed order of steps:

0. surrounding whitespace is stripped from user and item ids (interactions, items,
   user profiles, item-entity links), so ``" u1"`` in one domain's file and ``"u1"`` in
   another's are one user, and ``"i1 "`` in an interactions file matches item row
   ``"i1"``. A warning says how many ids changed and how many of them now name the same
   user or item as another id; ``meta["stripped_ids"]`` records the counts. An id that is
   only whitespace, and two item rows of a domain whose ids differ only by whitespace,
   are a :class:`~gnnrec.data.schema.DataError`;
1. interactions whose item has no item row: error, or drop with a warning;
2. duplicate ``(user, item)`` pairs within a domain: keep the last (or first) in time
   order (:mod:`gnnrec.data.schema`: by ``timestamp``, ties and data without a
   ``timestamp`` column by row order), with a warning saying how many were dropped;
3. optional rating threshold (keep interactions with ``rating >= threshold``; items stay);
4. optional k-core: repeatedly keep users and items with at least ``k`` interactions,
   counting a user's degree within each domain, until nothing changes; items of the
   catalogue with fewer than ``k`` interactions (none at all included) are removed;
5. contiguous ids: users sorted by raw id, items by ``(domain, raw id)``, domains by
   name. Raw ids that are all plain integers sort numerically (``"2" < "10"``), so
   already-remapped datasets such as the LightGCN files keep their ids; any other ids
   sort as strings.

The items are the whole catalogue of the items table: an item row without interactions
stays an item (a ranking candidate of its domain) unless the k-core removes it, so "no
training interaction" never singles out the held-out items. A step that leaves a domain
without interactions raises :class:`~gnnrec.data.schema.DataError` naming the setting
and the lost domains, instead of quietly turning cross-domain data into fewer domains.

:func:`gnnrec.data.cache.load_dataset` wraps a source and :func:`preprocess` with a
content-addressed, checksummed parquet cache.
"""

from __future__ import annotations

import json
import warnings
from typing import Any, Literal, get_args

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

__all__ = ["check_preprocess_options", "preprocess"]

OnMissingItem = Literal["error", "drop"]
Dedup = Literal["last", "first"]
ON_MISSING_ITEM = get_args(OnMissingItem)
DEDUP = get_args(Dedup)


# ------------------------------------------------------------------------ preprocess


def preprocess(
    tables: RawTables,
    *,
    rating_threshold: float | None = None,
    kcore: int = 0,
    dedup: Dedup = "last",
    on_missing_item: OnMissingItem = "error",
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
    check_preprocess_options(rating_threshold, kcore, dedup, on_missing_item)
    validate_tables(tables, check_items=False)
    tables, stripped = _strip_ids(tables)
    inter = tables.interactions.reset_index(drop=True)
    domains = sorted(set(inter["domain"].astype(str)) | set(tables.items["domain"].astype(str)))
    dropped: dict[str, int] = {}

    keep = _missing_items(tables, inter, on_missing_item)
    dropped["missing_item"] = int((~keep).sum())
    inter = inter[keep].reset_index(drop=True)
    _check_domains_left(inter["domain"], domains, "on_missing_item", on_missing_item, tables)
    row = np.arange(len(inter), dtype=np.int64)

    codes = _Codes(inter, tables.items, domains)
    keep = _dedup_mask(codes, inter, row, dedup)
    dropped["duplicates"] = int((~keep).sum())
    if dropped["duplicates"]:
        warnings.warn(
            f"{tables.source}: dropped {dropped['duplicates']} duplicate (user, item) "
            f"interaction(s) within a domain, keeping the {dedup} in time order "
            "(set data.preprocess.dedup to 'first' or 'last')",
            stacklevel=2,
        )
    if rating_threshold is not None:
        keep &= _rating_mask(inter, rating_threshold, tables.source)
        dropped["rating"] = int((~keep).sum()) - dropped["duplicates"]
        _check_domains_left(
            inter["domain"][keep], domains, "rating_threshold", rating_threshold, tables
        )
    item_keep = np.ones(codes.num_items, dtype=bool)
    if kcore > 1:
        before = int(keep.sum())
        keep, item_keep = _kcore_mask(codes, keep, kcore)
        dropped["kcore"] = before - int(keep.sum())
        dropped["kcore_items"] = int((~item_keep).sum())
        _check_domains_left(inter["domain"][keep], domains, "kcore", kcore, tables)
    data = _build(tables, inter, codes, keep, item_keep, row, dropped)
    data.meta["stripped_ids"] = stripped
    return data


def _stripped(values: pd.Series) -> pd.Series:
    """``values`` as strings without surrounding whitespace (each distinct id stripped once)."""
    codes, uniques = pd.factorize(values.astype(str))
    clean = pd.Index(uniques).str.strip()
    if (clean == uniques).all():
        return values.astype(str)
    return pd.Series(clean.take(codes), index=values.index, dtype=object)


def _has_whitespace(values: pd.Series) -> bool:
    """Whether an id of ``values`` has surrounding whitespace."""
    uniques = pd.Index(pd.unique(values)).astype(str)
    return bool((uniques.str.strip() != uniques).any())


def _strip_column(frame: pd.DataFrame | None, column: str) -> pd.DataFrame | None:
    if frame is None:
        return None
    return frame.assign(**{column: _stripped(frame[column])})


def _whitespace_changes(raw: pd.DataFrame, kind: str, source: str) -> tuple[int, int, str]:
    """``(changed, merged, example)`` of the distinct ids in ``raw`` (column ``id``).

    ``raw`` holds every distinct id of one kind, with the columns that scope it (an item
    is ``(domain, id)``). ``changed`` counts ids that had surrounding whitespace,
    ``merged`` those of them that now equal another id.
    """
    raw = raw.drop_duplicates()
    clean = raw.assign(id=raw["id"].str.strip())
    changed = (clean["id"] != raw["id"]).to_numpy()
    if not changed.any():
        return 0, 0, ""
    blank = changed & (clean["id"] == "").to_numpy()
    if blank.any():
        raise DataError(
            f"{source}: {kind} id {raw['id'].to_numpy()[blank][0]!r} is only whitespace; "
            "every row needs an id"
        )
    merged = changed & clean.duplicated(keep=False).to_numpy()
    first = int(np.flatnonzero(merged if merged.any() else changed)[0])
    example = f"{raw['id'].iloc[first]!r} -> {clean['id'].iloc[first]!r}"
    return int(changed.sum()), int(merged.sum()), example


def _strip_ids(tables: RawTables) -> tuple[RawTables, dict[str, int]]:
    """Tables whose user and item ids have no surrounding whitespace, and the counts.

    Returns:
        The tables (unchanged objects when no id had whitespace) and
        ``{"users": n, "items": m}``, the distinct ids that changed.

    Raises:
        DataError: An id that is only whitespace, or two item rows of one domain whose
            ids differ only by surrounding whitespace.
    """
    inter, items, src = tables.interactions, tables.items, tables.source
    columns = [inter["user"], inter["item"], items["item"]]
    columns += [
        t[c] for t, c in ((tables.users, "user"), (tables.item_entity, "item")) if t is not None
    ]
    if not any(_has_whitespace(c) for c in columns):
        return tables, {"users": 0, "items": 0}
    user_ids = [inter["user"]] + ([tables.users["user"]] if tables.users is not None else [])
    users = pd.DataFrame({"id": pd.concat(user_ids, ignore_index=True).astype(str)})
    item_rows = [inter[["domain", "item"]], items[["domain", "item"]]]
    if tables.item_entity is not None:
        item_rows.append(tables.item_entity[["domain", "item"]])
    item_ids = pd.concat(item_rows, ignore_index=True).astype(str).rename(columns={"item": "id"})
    counts = {}
    for kind, raw, scope in (("user", users, "across domains"), ("item", item_ids, "per domain")):
        changed, merged, example = _whitespace_changes(raw, kind, src)
        counts[f"{kind}s"] = changed
        if changed:
            warnings.warn(
                f"{src}: stripped surrounding whitespace from {changed} {kind} id(s), e.g. "
                f"{example}; {merged} of them now name the same {kind} as another id (ids "
                f"that differ only by surrounding whitespace are one {kind}, {scope})",
                stacklevel=3,
            )
    clean_items = _strip_column(items, "item")
    dup = clean_items.duplicated(["domain", "item"]).to_numpy()
    if dup.any():
        domain, item = clean_items.loc[dup, ["domain", "item"]].iloc[0]
        rows = items.loc[
            (clean_items["domain"] == domain).to_numpy() & (clean_items["item"] == item).to_numpy(),
            "item",
        ]
        raise DataError(
            f"{src}: item rows {rows.iloc[0]!r} and {rows.iloc[1]!r} of domain {domain!r} "
            "differ only by surrounding whitespace, which is stripped from ids; keep one row"
        )
    out = RawTables(
        interactions=_strip_column(_strip_column(inter, "user"), "item"),
        items=clean_items,
        users=_strip_column(tables.users, "user"),
        kg=tables.kg,
        item_entity=_strip_column(tables.item_entity, "item"),
        source=src,
    )
    return out, counts


def _check_domains_left(
    kept_domains: pd.Series, domains: list[str], option: str, value: Any, tables: RawTables
) -> None:
    """Raise if a preprocessing setting removed every interaction of a domain."""
    lost = sorted(set(domains) - set(kept_domains.astype(str).unique()))
    if not lost:
        return
    value = "null" if value is None else value
    what = "no interactions at all" if len(lost) == len(domains) else "no interactions"
    raise DataError(
        f"{tables.source}: data.preprocess.{option}={value} leaves {what} in domain(s) "
        f"{lost} (of {domains}); the data would silently lose them. Relax "
        f"data.preprocess.{option}, or leave those domains out of the data source."
    )


def check_preprocess_options(
    rating_threshold: float | None = None,
    kcore: int = 0,
    dedup: str = "last",
    on_missing_item: str = "error",
) -> None:
    """Raise ``ValueError`` naming ``data.preprocess.<key>`` for a value that cannot work."""
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
    """Integer codes of the raw ids (not yet the final ids).

    Items are the rows of the items table (the catalogue), domains the sorted domain
    names, users the users of the interactions in first-seen order.
    """

    def __init__(self, inter: pd.DataFrame, items: pd.DataFrame, domains: list[str]) -> None:
        self.user, self.user_values = pd.factorize(inter["user"].astype(str))
        self.domain_values = np.asarray(domains, dtype=object)
        lookup = pd.Index(domains)
        self.domain = lookup.get_indexer(inter["domain"].astype(str))
        catalogue = items.reset_index(drop=True)
        self.item_raw = catalogue["item"].astype(str).to_numpy(dtype=object)
        self.item_domain = lookup.get_indexer(catalogue["domain"].astype(str))
        index = pd.MultiIndex.from_arrays([self.item_domain, self.item_raw])
        self.item = index.get_indexer(
            pd.MultiIndex.from_arrays([self.domain, inter["item"].astype(str).to_numpy()])
        )

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


def _kcore_mask(codes: _Codes, keep: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Iteratively drop rows whose user (within the domain) or item has degree < k.

    Returns:
        The rows kept and the catalogue items kept (degree >= k; so not those without
        any interaction).
    """
    keep = keep.copy()
    user_domain = codes.user.astype(np.int64) * codes.num_domains + codes.domain
    n_user_domain = codes.num_users * codes.num_domains
    while True:
        user_deg = np.bincount(user_domain[keep], minlength=n_user_domain)
        item_deg = np.bincount(codes.item[keep], minlength=codes.num_items)
        new_keep = keep & (user_deg[user_domain] >= k) & (item_deg[codes.item] >= k)
        if new_keep.sum() == keep.sum():
            return new_keep, item_deg >= k
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
    item_keep: np.ndarray,
    row: np.ndarray,
    dropped: dict[str, int],
) -> InteractionData:
    user_c, item_c, dom_c = codes.user[keep], codes.item[keep], codes.domain[keep]
    domains = [str(d) for d in codes.domain_values]

    user_present = np.unique(user_c)
    user_raw = pd.Series(codes.user_values[user_present]).astype(str)
    user_order = _id_order(user_raw)
    user_idx = _remap(user_c, user_present, user_order, codes.num_users)

    item_present = np.flatnonzero(item_keep)
    item_raw = pd.Series(codes.item_raw[item_present]).astype(str)
    item_dom = codes.item_domain[item_present]
    item_order = _item_order(item_raw, item_dom)
    item_idx = _remap(item_c, item_present, item_order, codes.num_items)

    out = pd.DataFrame({"user_idx": user_idx, "item_idx": item_idx, "domain_idx": dom_c})
    out["domain_idx"] = out["domain_idx"].astype(np.int64)
    kept = inter[keep]
    for col in ("rating", "timestamp"):
        if col in kept.columns:
            out[col] = kept[col].to_numpy(dtype=np.float64)
    if "split" in kept.columns:
        out["split"] = kept["split"].astype(str).to_numpy()
    ts = out["timestamp"].to_numpy() if "timestamp" in out.columns else np.zeros(len(out))
    out = out.iloc[np.lexsort((row[keep], ts, user_idx))].reset_index(drop=True)

    users = _users_table(user_raw.to_numpy(dtype=object)[user_order], tables)
    items = _items_table(item_present[item_order], item_dom[item_order], domains, tables)
    item_entity = _item_entity(tables, items)
    kg = None if tables.kg is None else _str_frame(tables.kg.reset_index(drop=True))
    meta = _meta(out, items, domains, dropped, tables.source)
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


def _items_table(
    rows: np.ndarray, domain_idx: np.ndarray, domains: list[str], tables: RawTables
) -> pd.DataFrame:
    """Row ``j`` is item ``j``: raw id, domain name, domain index and text columns.

    Args:
        rows: For each new item id, its row in ``tables.items``.
        domain_idx: For each new item id, its domain index.
        domains: Domain names.
        tables: The raw tables.
    """
    catalogue = _str_frame(tables.items.reset_index(drop=True).iloc[rows].copy())
    text = [c for c in catalogue.columns if c not in ("item", "domain", "domain_idx")]
    items = pd.DataFrame(
        {
            "item": catalogue["item"].astype(str).to_numpy(),
            "domain": pd.Series(np.asarray(domains, dtype=object)[domain_idx]).astype(str),
            "domain_idx": domain_idx.astype(np.int64),
        }
    )
    for col in text:
        items[col] = catalogue[col].reset_index(drop=True)
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


def _meta(
    out: pd.DataFrame, items: pd.DataFrame, domains: list[str], dropped: dict[str, int], source: str
) -> dict:
    per_domain = {}
    for d, name in enumerate(domains):
        rows = out[out["domain_idx"] == d]
        catalogue = int((items["domain_idx"] == d).sum())
        per_domain[name] = {
            "interactions": len(rows),
            "users": int(rows["user_idx"].nunique()),
            "items": catalogue,
            "items_without_interactions": catalogue - int(rows["item_idx"].nunique()),
        }
    meta = {
        "source": source,
        "num_users": int(out["user_idx"].max()) + 1,
        "num_items": len(items),
        "num_interactions": len(out),
        "domains": per_domain,
        "dropped": dropped,
    }
    return json.loads(json.dumps(meta))
