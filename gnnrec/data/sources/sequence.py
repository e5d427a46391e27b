"""The LLMCDSR food-kitchen sequence format: two domains, per-user item sequences.

Files (``shared/data/amazon-food-kitchen``): ``train_A.txt``, ``train_B.txt``,
``train_overlap.txt``, ``valid.txt``, ``test.txt`` (lines ``<user>\\t<item>,<item>,...``
in time order), ``items_A.tsv`` and ``items_B.tsv`` (``global_idx_in_sequences``,
``asin``, ``title``), and optionally ``num.txt`` (item counts of A and B).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from gnnrec.data.schema import DataError, RawTables, validate_tables
from gnnrec.data.sources.base import (
    DEFAULT_CONFIG_KEY,
    Source,
    as_str,
    check_columns,
    check_no_null_ids,
    check_not_empty,
    concat,
    read_csv,
)

__all__ = ["SequenceFoodKitchenSource"]


def _read_sequences(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse ``<user>\\t<i1>,<i2>,...`` lines into per-interaction users and item indices."""
    users: list[str] = []
    counts: list[int] = []
    tokens: list[str] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            user, _, seq = line.partition("\t")
            items = [t for t in seq.strip().split(",") if t.strip()] if seq.strip() else []
            users.append(user.strip())
            counts.append(len(items))
            tokens.extend(items)
    try:
        item_idx = np.array(tokens, dtype=np.int64)
    except ValueError:
        bad = next(t for t in tokens if not t.strip().lstrip("-").isdigit())
        raise DataError(
            f"{path}: item {bad!r} is not an integer item index; lines must be "
            "'<user>\\t<item>,<item>,...'"
        ) from None
    return np.repeat(np.array(users, dtype=object), counts), item_idx


def _positions(users: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run of equal consecutive users."""
    n = len(users)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.r_[True, users[1:] != users[:-1]]
    start_idx = np.flatnonzero(starts)
    lengths = np.diff(np.r_[start_idx, n])
    return np.arange(n) - np.repeat(start_idx, lengths)


class SequenceFoodKitchenSource(Source):
    """The LLMCDSR food-kitchen cross-domain sequences (files in the module docstring).

    User ids restart in every file, so the raw user id is ``"<file stem>:<id>"``. Item
    index ``i < num_A`` is domain A; the raw item id is its ASIN. The item tables are the
    catalogue (every row is an item). There are no timestamps: ``timestamp`` is the
    position in the user's sequence, so time-ordered steps follow sequence order.

    Args:
        path: The folder.
        domain_names: Names of domains A and B.
        config_key: Config path of these options, named in error messages.
    """

    SEQUENCE_FILES = ("train_A.txt", "train_B.txt", "train_overlap.txt", "valid.txt", "test.txt")
    ITEM_FILES = ("items_A.tsv", "items_B.tsv")
    ITEM_COLUMNS = ("global_idx_in_sequences", "asin", "title")

    def __init__(
        self,
        path: str | Path,
        domain_names: Sequence[str] = ("food", "kitchen"),
        config_key: str = DEFAULT_CONFIG_KEY,
    ) -> None:
        self.config_key = str(config_key)
        self.path = Path(path).expanduser().resolve()
        self.domain_names = tuple(str(d) for d in domain_names)
        if len(self.domain_names) != 2 or len(set(self.domain_names)) != 2:
            raise ValueError(
                f"{self.key('domain_names')} must be two different names (domain A, domain B), "
                f"got {list(self.domain_names)}"
            )

    def describe(self) -> dict:
        return {"path": str(self.path), "domain_names": list(self.domain_names)}

    def files(self) -> list[Path]:
        self.require_folder()
        out = [self.require_file(name, "sequence file") for name in self.SEQUENCE_FILES]
        out += [self.require_file(name, "item table") for name in self.ITEM_FILES]
        if (self.path / "num.txt").is_file():
            out.append(self.path / "num.txt")
        return out

    def _read_items(self, path: Path, domain: str) -> pd.DataFrame:
        df = read_csv(path, sep="\t", quoting=csv.QUOTE_NONE)
        check_not_empty(df, path, "an item table needs a row per item")
        check_columns(df, self.ITEM_COLUMNS, path, "Item tables need these tab-separated columns.")
        check_no_null_ids(df, ("global_idx_in_sequences", "asin"), path)
        index = pd.to_numeric(df["global_idx_in_sequences"], errors="coerce")
        if index.isna().any():
            bad = df.loc[index.isna(), "global_idx_in_sequences"].iloc[0]
            raise DataError(
                f"{path}: column 'global_idx_in_sequences' must be an integer; found {bad!r}"
            )
        return pd.DataFrame(
            {
                "global": index.to_numpy(dtype=np.int64),
                "item": as_str(df["asin"]).to_numpy(),
                "domain": domain,
                "title": as_str(df["title"]).to_numpy(),
            }
        )

    def _num_a(self, items_a: pd.DataFrame) -> int:
        num = self.path / "num.txt"
        if not num.is_file():
            return len(items_a)
        first = num.read_text(encoding="utf-8").split()
        if not first or not first[0].isdigit():
            raise DataError(f"{num}: the first line must be the item count of domain A")
        return int(first[0])

    def load(self) -> RawTables:
        self.files()
        name_a, name_b = self.domain_names
        items_a = self._read_items(self.path / "items_A.tsv", name_a)
        items_b = self._read_items(self.path / "items_B.tsv", name_b)
        num_a = self._num_a(items_a)
        for frame, path, in_a in ((items_a, "items_A.tsv", True), (items_b, "items_B.tsv", False)):
            wrong = (frame["global"] < num_a) != in_a
            if wrong.any():
                raise DataError(
                    f"{self.path / path}: global index {int(frame.loc[wrong, 'global'].iloc[0])} "
                    f"is on the wrong side of num_A={num_a}; items_A.tsv must hold indices "
                    "< num_A and items_B.tsv the others"
                )
        catalog = pd.concat([items_a, items_b], ignore_index=True)
        lookup = pd.Series(catalog["item"].to_numpy(), index=catalog["global"].to_numpy())
        frames = [self._read_interactions(name, num_a, lookup) for name in self.SEQUENCE_FILES]
        tables = RawTables(
            interactions=concat(frames),
            items=catalog.drop(columns="global").reset_index(drop=True),
            source=str(self.path),
        )
        return validate_tables(tables, check_items=False)

    def _read_interactions(self, name: str, num_a: int, lookup: pd.Series) -> pd.DataFrame:
        path = self.path / name
        users, index = _read_sequences(path)
        raw_item = lookup.reindex(index).to_numpy(dtype=object)
        unknown = pd.isna(raw_item)
        # Indices absent from the item tables get a placeholder id; preprocess then
        # reports (or drops) them as interactions without an item row.
        raw_item[unknown] = [f"index:{i}" for i in index[unknown]]
        name_a, name_b = self.domain_names
        stem = Path(name).stem
        return pd.DataFrame(
            {
                "user": (f"{stem}:" + pd.Series(users, dtype=object)).astype("str"),
                "item": pd.Series(raw_item, dtype=object).astype("str"),
                "domain": np.where(index < num_a, name_a, name_b),
                "timestamp": _positions(users).astype(np.float64),
            }
        )
