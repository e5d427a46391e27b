"""Canonical tables every loader produces, and their validation.

Every source format (domain folders, sequence files, LightGCN splits, RecBole atomic
files) is read into one :class:`RawTables`: plain pandas frames with *raw* string ids.
Preprocessing (:mod:`gnnrec.data.preprocess`) then turns them into
:class:`InteractionData` with contiguous integer ids.

Canonical columns:

* ``interactions``: ``user`` (str), ``item`` (str), ``domain`` (str), optional
  ``rating`` (float), optional ``timestamp`` (float; larger is later), optional
  ``split`` (``"train"``/``"val"``/``"test"``, only for datasets with a fixed split).
* ``items``: ``item`` (str), ``domain`` (str), then any text columns (str).
  An item is identified by the pair ``(domain, item)``.
* ``users`` (optional): ``user`` (str), then any profile columns.
* ``kg`` (optional): ``head``, ``relation``, ``tail`` (str); ``item_entity``
  (optional): ``item``, ``domain``, ``entity`` links items to KG entities.

The items table is the catalogue: an item row without any interaction is still an item
(a candidate of its domain), unless a filter about items removes it (``kcore``).

Time order, one rule for every step that needs it (deduplication, the split, user
profiles):

* A ``timestamp`` column orders the interactions; larger is later. It must be complete:
  a column with empty values is a :class:`DataError` naming the file (or table), the
  column and the first empty rows (:func:`check_timestamps`). Fill them or remove the
  column.
* Without a ``timestamp`` column the row order is the time order: a later row (later in
  the file; files of a folder in domain order) is a later interaction. Deduplication
  keeps the last row of a pair (``dedup=last``), the split holds out each user's last
  rows, and profiles take the last rows as the most recent.
* Equal timestamps: deduplication and profiles take the later row as the later
  interaction; the split breaks such ties with its seeded random key (see
  :mod:`gnnrec.data.split`), so that the held-out item among same-time rows does not
  depend on how the file happens to be sorted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from gnnrec.errors import GnnrecError

__all__ = [
    "DataError",
    "RawTables",
    "InteractionData",
    "INTERACTION_COLUMNS",
    "ITEM_COLUMNS",
    "SPLIT_VALUES",
    "validate_tables",
    "check_timestamps",
    "missing_item_mask",
    "missing_item_error",
]

INTERACTION_COLUMNS = ("user", "item", "domain")
ITEM_COLUMNS = ("item", "domain")
KG_COLUMNS = ("head", "relation", "tail")
LINK_COLUMNS = ("item", "domain", "entity")
SPLIT_VALUES = ("train", "val", "test")


class DataError(GnnrecError, ValueError):
    """Bad input data. The message names the file, column or value at fault."""


@dataclass
class RawTables:
    """Canonical tables with raw string ids, as read from a source.

    Args:
        interactions: One row per (user, item) event; see the module docstring.
        items: One row per (domain, item) with its text columns.
        users: Optional user profile table.
        kg: Optional knowledge-graph triples.
        item_entity: Optional item -> KG entity links.
        source: Human-readable origin (a path), used in error messages.
    """

    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame | None = None
    kg: pd.DataFrame | None = None
    item_entity: pd.DataFrame | None = None
    source: str = "<memory>"

    @property
    def domains(self) -> list[str]:
        return sorted(self.interactions["domain"].unique().tolist())


@dataclass
class InteractionData:
    """Preprocessed interactions with contiguous ids ``0..n-1``.

    Attributes:
        interactions: Columns ``user_idx``, ``item_idx``, ``domain_idx`` (int64) plus the
            optional ``rating``, ``timestamp`` and ``split`` columns of the raw table.
        users: Row ``i`` describes user ``i``: column ``user`` (raw id) and profile columns.
        items: Row ``j`` describes item ``j``: ``item`` (raw id), ``domain`` (name),
            ``domain_idx`` and the text columns.
        domains: Domain names; ``domain_idx`` indexes this list.
        kg: Optional triples with raw string ids (``head``, ``relation``, ``tail``).
        item_entity: Optional ``item_idx`` -> ``entity`` links.
    """

    interactions: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame
    domains: list[str]
    kg: pd.DataFrame | None = None
    item_entity: pd.DataFrame | None = None
    meta: dict = field(default_factory=dict)

    @property
    def num_users(self) -> int:
        return len(self.users)

    @property
    def num_items(self) -> int:
        return len(self.items)

    @property
    def item_domain(self) -> np.ndarray:
        """``int64[num_items]``: the domain index of every item."""
        return self.items["domain_idx"].to_numpy(dtype=np.int64)

    def domain_index(self, name: str) -> int:
        """Index of domain ``name``; raises :class:`DataError` listing the known ones."""
        if name not in self.domains:
            raise DataError(
                f"domain {name!r} is not in the data; known domains: {self.domains}. "
                "Set data.target_domain to one of them."
            )
        return self.domains.index(name)


def check_timestamps(values: pd.Series | np.ndarray, where: str, column: str = "timestamp") -> None:
    """Raise :class:`DataError` if a timestamp column has empty values.

    Args:
        values: The column, in row order (numeric; empty values are NaN).
        where: The file or table, as the message's prefix (``"movies.inter.csv"``).
        column: The column's name as the user wrote it.

    Raises:
        DataError: ``"<where>: column 'timestamp' is empty in 3 of 120 rows (data rows
            5, 9, 12); ..."``, data rows counted from 1 after the header.
    """
    empty = np.flatnonzero(pd.isna(np.asarray(values, dtype=np.float64)))
    if len(empty) == 0:
        return
    rows = ", ".join(str(int(r) + 1) for r in empty[:5]) + (", ..." if len(empty) > 5 else "")
    raise DataError(
        f"{where}: column {column!r} is empty in {len(empty)} of {len(values)} rows "
        f"(data rows {rows}); fill them or remove the column (without a timestamp column "
        "the row order is the time order)"
    )


def _require_columns(df: pd.DataFrame, columns: tuple[str, ...], what: str, source: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(
            f"{source}: {what} table is missing column(s) {missing}; "
            f"found columns {list(df.columns)}"
        )


def missing_item_mask(interactions: pd.DataFrame, items: pd.DataFrame) -> np.ndarray:
    """Flag interactions whose ``(domain, item)`` has no row in the items table.

    Args:
        interactions: Table with ``domain`` and ``item`` columns.
        items: Table with ``domain`` and ``item`` columns.

    Returns:
        ``bool[len(interactions)]``, ``True`` where the item row is missing.
    """
    missing = np.zeros(len(interactions), dtype=bool)
    inter_domain = interactions["domain"].astype(str)
    inter_item = interactions["item"].astype(str)
    item_domain = items["domain"].astype(str)
    item_item = items["item"].astype(str)
    for domain in inter_domain.unique():
        rows = (inter_domain == domain).to_numpy()
        known = item_item[(item_domain == domain).to_numpy()]
        found = pc.is_in(pa.array(inter_item[rows]), value_set=pa.array(known))
        missing[rows] = ~found.to_numpy(zero_copy_only=False)
    return missing


def missing_item_error(source: str, interactions: pd.DataFrame, mask: np.ndarray) -> DataError:
    """The :class:`DataError` for the interactions flagged by :func:`missing_item_mask`."""
    first = interactions.loc[mask, ["domain", "item"]].iloc[0]
    return DataError(
        f"{source}: {int(mask.sum())} interaction(s) refer to items with no item row, "
        f"e.g. item {first['item']!r} in domain {first['domain']!r}. Add the rows to the "
        "item table or set data.preprocess.on_missing_item=drop to drop those interactions "
        "(warned)."
    )


def validate_tables(tables: RawTables, *, check_items: bool = True) -> RawTables:
    """Check the canonical contract; raise :class:`DataError` naming what is wrong.

    Checks required columns, non-empty domains, null ids, numeric ``rating`` and
    ``timestamp``, a complete ``timestamp`` column (:func:`check_timestamps`), legal
    ``split`` values, and that every interaction's item has an item row. Returns the
    tables unchanged so it can be chained.

    Args:
        tables: The tables to check.
        check_items: Whether to require an item row for every interaction. Sources pass
            ``False`` and leave that check to :func:`gnnrec.data.preprocess.preprocess`,
            which can also drop such interactions.
    """
    src = tables.source
    inter, items = tables.interactions, tables.items
    _require_columns(inter, INTERACTION_COLUMNS, "interactions", src)
    _require_columns(items, ITEM_COLUMNS, "items", src)
    if len(inter) == 0:
        raise DataError(f"{src}: the interactions table is empty")
    for col in INTERACTION_COLUMNS:
        nulls = int(inter[col].isna().sum())
        if nulls:
            raise DataError(f"{src}: interactions column {col!r} has {nulls} empty value(s)")
    for col in ("rating", "timestamp"):
        if col in inter.columns and not pd.api.types.is_numeric_dtype(inter[col]):
            bad = pd.to_numeric(inter[col], errors="coerce").isna() & inter[col].notna()
            example = inter.loc[bad, col].iloc[0] if bad.any() else None
            raise DataError(
                f"{src}: interactions column {col!r} must be numeric; "
                f"found non-numeric value {example!r}"
            )
    if "timestamp" in inter.columns:
        check_timestamps(inter["timestamp"], f"{src}: interactions table")
    if "split" in inter.columns:
        bad = sorted(set(inter["split"].unique()) - set(SPLIT_VALUES))
        if bad:
            raise DataError(
                f"{src}: interactions column 'split' has value(s) {bad}; allowed: {SPLIT_VALUES}"
            )
    counts = inter.groupby("domain").size()
    empty = [d for d in items["domain"].unique() if d not in counts.index]
    if empty:
        raise DataError(f"{src}: domain(s) {sorted(empty)} have items but no interactions")
    if items.duplicated(["domain", "item"]).any():
        dup = items.loc[items.duplicated(["domain", "item"]), ["domain", "item"]].iloc[0]
        raise DataError(
            f"{src}: items table has duplicate rows for item {dup['item']!r} "
            f"in domain {dup['domain']!r}"
        )
    if check_items:
        missing = missing_item_mask(inter, items)
        if missing.any():
            raise missing_item_error(src, inter, missing)
    if tables.users is not None:
        _require_columns(tables.users, ("user",), "users", src)
    if tables.kg is not None:
        _require_columns(tables.kg, KG_COLUMNS, "kg", src)
    if tables.item_entity is not None:
        _require_columns(tables.item_entity, LINK_COLUMNS, "item_entity", src)
    return tables
