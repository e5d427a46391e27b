"""RecBole atomic files: ``<dataset>.inter`` plus optional ``.item .user .kg .link``.

Each file is tab separated with a header of ``name:type`` fields (types ``token``,
``token_seq``, ``float``, ``float_seq``). Example:
``shared/data/ml-100k-kg/ml-100k_recbole`` with ``dataset="ml-100k"``.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from gnnrec.data.schema import DataError, RawTables, validate_tables
from gnnrec.data.sources.base import (
    DEFAULT_CONFIG_KEY,
    Source,
    as_str,
    check_columns,
    check_no_null_ids,
    read_csv,
    read_numeric,
    text_columns,
    to_numeric,
)

__all__ = ["AtomicSource", "ATOMIC_TYPES"]

ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")


def _read_atomic(path: Path) -> pd.DataFrame:
    """Read a RecBole atomic file: tab separated, header ``name:type``, types stripped.

    ``float`` columns become float64; every other type stays a string (``token_seq`` and
    ``float_seq`` keep the raw space-separated text).
    """
    with path.open(encoding="utf-8") as handle:
        header = handle.readline().rstrip("\r\n")
    if not header:
        raise DataError(f"{path}: the file is empty; expected a 'name:type' header line")
    names, types = [], []
    for field in header.split("\t"):
        name, _, kind = field.partition(":")
        kind = kind or "token"
        if kind not in ATOMIC_TYPES:
            raise DataError(
                f"{path}: header field {field!r} has type {kind!r}; allowed types: {ATOMIC_TYPES}"
            )
        names.append(name)
        types.append(kind)
    df = read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, header=None, skiprows=1, names=names)
    for name, kind in zip(names, types, strict=True):
        if kind == "float":
            to_numeric(df, name, path)
    return df


class AtomicSource(Source):
    """RecBole atomic files ``<dataset>.inter/.item/.user/.kg/.link`` in one folder.

    Only ``.inter`` is required. ``user_id``/``item_id`` become ``user``/``item``;
    ``rating`` and ``timestamp`` are kept when present (a ``timestamp`` column must be
    complete). ``.item`` gives the items table, the catalogue (without it, the items are
    those of ``.inter`` and carry no text), ``.user`` the users table, ``.kg`` the
    triples (``head_id, relation_id, tail_id``) and ``.link`` the item -> entity links
    (``item_id, entity_id``).

    Args:
        path: The folder.
        dataset: File name stem, e.g. ``"ml-100k"``.
        domain: Name of the single domain; defaults to ``dataset``.
        config_key: Config path of these options, named in error messages.
    """

    OPTIONAL = ("item", "user", "kg", "link")

    def __init__(
        self,
        path: str | Path,
        dataset: str,
        domain: str | None = None,
        config_key: str = DEFAULT_CONFIG_KEY,
    ) -> None:
        self.config_key = str(config_key)
        self.path = Path(path).expanduser().resolve()
        self.dataset = str(dataset)
        self.domain = str(domain) if domain is not None else self.dataset

    def describe(self) -> dict:
        return {"path": str(self.path), "dataset": self.dataset, "domain": self.domain}

    def _path(self, ext: str) -> Path:
        return self.path / f"{self.dataset}.{ext}"

    def files(self) -> list[Path]:
        self.require_folder()
        inter = self.require_file(
            self._path("inter").name, f"RecBole interactions; check {self.key('dataset')}"
        )
        return [inter] + [self._path(ext) for ext in self.OPTIONAL if self._path(ext).is_file()]

    def _read(self, ext: str, required: Sequence[str]) -> pd.DataFrame | None:
        path = self._path(ext)
        if ext != "inter" and not path.is_file():
            return None
        df = _read_atomic(path)
        check_columns(df, required, path, f"Check the header of the .{ext} file.")
        check_no_null_ids(df, required, path)
        return df

    def load(self) -> RawTables:
        self.files()
        inter = self._read("inter", ("user_id", "item_id"))
        if len(inter) == 0:
            raise DataError(f"{self._path('inter')}: the file has no rows")
        interactions = pd.DataFrame(
            {
                "user": as_str(inter["user_id"]),
                "item": as_str(inter["item_id"]),
                "domain": self.domain,
            }
        )
        read_numeric(interactions, inter, self._path("inter"))
        tables = RawTables(
            interactions=interactions,
            items=self._items(interactions),
            users=self._users(),
            kg=self._kg(),
            item_entity=self._links(),
            source=str(self._path("inter")),
        )
        return validate_tables(tables, check_items=False)

    def _items(self, interactions: pd.DataFrame) -> pd.DataFrame:
        df = self._read("item", ("item_id",))
        if df is None:
            return pd.DataFrame(
                {"item": as_str(interactions["item"].drop_duplicates()), "domain": self.domain}
            ).reset_index(drop=True)
        df = df.rename(columns={"item_id": "item"})
        df.insert(1, "domain", self.domain)
        return text_columns(df, ("item", "domain"))

    def _users(self) -> pd.DataFrame | None:
        df = self._read("user", ("user_id",))
        if df is None:
            return None
        df = df.rename(columns={"user_id": "user"})
        df["user"] = as_str(df["user"])
        return df

    def _kg(self) -> pd.DataFrame | None:
        df = self._read("kg", ("head_id", "relation_id", "tail_id"))
        if df is None:
            return None
        return pd.DataFrame(
            {
                "head": as_str(df["head_id"]),
                "relation": as_str(df["relation_id"]),
                "tail": as_str(df["tail_id"]),
            }
        )

    def _links(self) -> pd.DataFrame | None:
        df = self._read("link", ("item_id", "entity_id"))
        if df is None:
            return None
        return pd.DataFrame(
            {
                "item": as_str(df["item_id"]),
                "domain": self.domain,
                "entity": as_str(df["entity_id"]),
            }
        )
