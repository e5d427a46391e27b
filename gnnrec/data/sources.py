"""Readers that turn each on-disk dataset format into canonical :class:`RawTables`.

One class per format, each built from plain typed arguments so Hydra can instantiate
it (``_target_: gnnrec.data.sources.FolderSource``):

* :class:`FolderSource`: one ``<domain>.inter.csv`` / ``<domain>.item.csv`` pair (or
  ``.parquet``) per domain.
* :class:`SequenceFoodKitchenSource`: the LLMCDSR food-kitchen sequence files.
* :class:`LightGCNSource`: the LightGCN ``train.txt`` / ``test.txt`` split.
* :class:`AtomicSource`: RecBole atomic files (``.inter``, ``.item``, ``.user``,
  ``.kg``, ``.link``).

Every source offers :meth:`~Source.files` (the exact files it reads, used for cache
keys), :meth:`~Source.describe` (its parameters) and :meth:`~Source.load`. ``load``
validates the tables with :func:`~gnnrec.data.schema.validate_tables` except for the
"every interaction has an item row" check, which
:func:`~gnnrec.data.preprocess.preprocess` does (it can also drop such rows).

Ids are always read as strings, so leading zeros (Amazon ASINs like ``0001473123``)
survive.
"""

from __future__ import annotations

import abc
import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from gnnrec.data.schema import DataError, RawTables, validate_tables

__all__ = [
    "Source",
    "FolderSource",
    "SequenceFoodKitchenSource",
    "LightGCNSource",
    "AtomicSource",
]

FILE_FORMATS = ("auto", "csv", "parquet")
ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")


class Source(abc.ABC):
    """A dataset on disk that can be read into :class:`RawTables`."""

    @abc.abstractmethod
    def files(self) -> list[Path]:
        """The exact input files :meth:`load` reads; raises :class:`DataError` if absent."""

    @abc.abstractmethod
    def load(self) -> RawTables:
        """Read and validate the canonical tables."""

    @abc.abstractmethod
    def describe(self) -> dict:
        """The source's parameters as a JSON-serialisable dict (part of cache keys)."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.describe().items())
        return f"{type(self).__name__}({args})"


# --------------------------------------------------------------------------- helpers


def _require_folder(path: Path) -> None:
    if not path.is_dir():
        raise DataError(
            f"data folder {str(path)!r} does not exist; set data.source.path (or the "
            "GNNREC_DATA_DIR environment variable) to the folder holding the dataset"
        )


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DataError(f"missing file {str(path)!r} ({what}); add it or fix data.source.path")
    return path


def _check_columns(df: pd.DataFrame, columns: Sequence[str], path: Path, hint: str) -> None:
    for col in columns:
        if col not in df.columns:
            raise DataError(
                f"{path}: missing column {col!r}; found columns {list(df.columns)}. {hint}"
            )


def _check_not_empty(df: pd.DataFrame, path: Path) -> None:
    if len(df) == 0:
        raise DataError(
            f"{path}: the file has no rows; fill it or remove its domain from data.source.domains"
        )


def _check_no_null_ids(df: pd.DataFrame, columns: Sequence[str], path: Path) -> None:
    for col in columns:
        nulls = df[col].isna().to_numpy()
        if nulls.any():
            raise DataError(
                f"{path}: column {col!r} has {int(nulls.sum())} empty value(s), first in data "
                f"row {int(np.flatnonzero(nulls)[0]) + 1}; every row needs an id"
            )


def _to_numeric(df: pd.DataFrame, col: str, path: Path) -> None:
    """Convert ``df[col]`` to float64 in place; raise naming a non-numeric example."""
    if pd.api.types.is_numeric_dtype(df[col]) and not pd.api.types.is_bool_dtype(df[col]):
        df[col] = df[col].astype(np.float64)
        return
    values = pd.to_numeric(df[col], errors="coerce")
    bad = (values.isna() & df[col].notna()).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: column {col!r} must be numeric; found non-numeric value "
            f"{df[col].iloc[row]!r} in data row {row + 1}. Fix the file or remove the column."
        )
    df[col] = values.astype(np.float64)


def _as_str(series: pd.Series) -> pd.Series:
    """Ids as strings; keeps missing values missing."""
    if pd.api.types.is_string_dtype(series) and not pd.api.types.is_object_dtype(series):
        return series
    return series.astype("str")


def _read_csv(path: Path, **kwargs) -> pd.DataFrame:
    """Read a delimited file with every column as a string (empty cells are NaN)."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], **kwargs)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise DataError(f"{path}: cannot be read as a delimited text file: {err}") from err


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several unrelated types for bad files
        raise DataError(f"{path}: cannot be read as parquet: {err}") from err


def _text_columns(df: pd.DataFrame, skip: Sequence[str]) -> pd.DataFrame:
    """Non-id columns as strings (missing values stay missing)."""
    for col in df.columns:
        if col not in skip:
            df[col] = _as_str(df[col])
    return df


# ---------------------------------------------------------------------- FolderSource


class FolderSource(Source):
    """One pair of files per domain in a folder.

    Per domain ``d`` the folder holds ``d.inter.csv`` (columns ``user_id, item_id`` and
    optionally ``rating``, ``timestamp``) and ``d.item.csv`` (``item_id`` plus any text
    columns), or the same as ``.parquet``. Example:
    ``shared/data/amazon-books-cds-movies``.

    Args:
        path: The folder.
        domains: Domains to read; ``None`` reads every ``*.inter.csv`` /
            ``*.inter.parquet`` in the folder.
        file_format: ``"csv"``, ``"parquet"`` or ``"auto"`` (whichever exists per file;
            csv when both do).
    """

    def __init__(
        self,
        path: str | Path,
        domains: Sequence[str] | None = None,
        file_format: str = "auto",
    ) -> None:
        if file_format not in FILE_FORMATS:
            raise ValueError(
                f"data.source.file_format must be one of {FILE_FORMATS}, got {file_format!r}"
            )
        self.path = Path(path).expanduser().resolve()
        self.domains = None if domains is None else [str(d) for d in domains]
        self.file_format = file_format

    def describe(self) -> dict:
        return {"path": str(self.path), "domains": self.domains, "file_format": self.file_format}

    def _domains(self) -> list[str]:
        if self.domains is not None:
            return list(self.domains)
        suffixes = (".csv", ".parquet") if self.file_format == "auto" else (f".{self.file_format}",)
        found = {
            p.name[: -len(f".inter{s}")]
            for s in suffixes
            for p in self.path.glob(f"*.inter{s}")
            if p.is_file()
        }
        if not found:
            raise DataError(
                f"{self.path}: no *.inter.csv or *.inter.parquet files in the folder; "
                "check data.source.path"
            )
        return sorted(found)

    def _file(self, domain: str, kind: str) -> Path:
        formats = ("csv", "parquet") if self.file_format == "auto" else (self.file_format,)
        candidates = [self.path / f"{domain}.{kind}.{fmt}" for fmt in formats]
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        names = " or ".join(repr(str(c)) for c in candidates)
        raise DataError(
            f"missing file {names} for domain {domain!r}; add it or remove the domain "
            "from data.source.domains"
        )

    def _pairs(self) -> list[tuple[str, Path, Path]]:
        _require_folder(self.path)
        return [(d, self._file(d, "inter"), self._file(d, "item")) for d in self._domains()]

    def files(self) -> list[Path]:
        return [p for _, inter, item in self._pairs() for p in (inter, item)]

    @staticmethod
    def _read(path: Path) -> pd.DataFrame:
        df = _read_parquet(path) if path.suffix == ".parquet" else _read_csv(path)
        _check_not_empty(df, path)
        return df

    def _read_interactions(self, domain: str, path: Path) -> pd.DataFrame:
        df = self._read(path)
        hint = "A <domain>.inter file needs user_id,item_id[,rating][,timestamp]."
        _check_columns(df, ("user_id", "item_id"), path, hint)
        _check_no_null_ids(df, ("user_id", "item_id"), path)
        out = pd.DataFrame(
            {"user": _as_str(df["user_id"]), "item": _as_str(df["item_id"]), "domain": domain}
        )
        for col in ("rating", "timestamp"):
            if col in df.columns:
                out[col] = df[col].to_numpy()
                _to_numeric(out, col, path)
        if "split" in df.columns:
            out["split"] = _as_str(df["split"])
        return out

    def _read_items(self, domain: str, path: Path) -> pd.DataFrame:
        df = self._read(path)
        _check_columns(df, ("item_id",), path, "A <domain>.item file needs item_id.")
        _check_no_null_ids(df, ("item_id",), path)
        df = df.rename(columns={"item_id": "item"})
        df["item"] = _as_str(df["item"])
        df.insert(1, "domain", domain)
        return _text_columns(df, ("item", "domain"))

    def load(self) -> RawTables:
        inters, items = [], []
        for domain, inter_path, item_path in self._pairs():
            inters.append(self._read_interactions(domain, inter_path))
            items.append(self._read_items(domain, item_path))
        tables = RawTables(
            interactions=_concat(inters),
            items=_concat(items),
            source=str(self.path),
        )
        return validate_tables(tables, check_items=False)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    out = pd.concat(frames, ignore_index=True)
    for col in ("user", "item", "domain"):
        if col in out.columns:
            out[col] = _as_str(out[col])
    return out


# ---------------------------------------------------------- SequenceFoodKitchenSource


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
    """The LLMCDSR food-kitchen cross-domain sequences (``shared/data/amazon-food-kitchen``).

    Files: ``train_A.txt``, ``train_B.txt``, ``train_overlap.txt``, ``valid.txt``,
    ``test.txt`` (lines ``<user>\\t<item>,<item>,...`` in time order), ``items_A.tsv`` and
    ``items_B.tsv`` (``global_idx_in_sequences``, ``asin``, ``title``), and optionally
    ``num.txt`` (item counts of A and B).

    User ids restart in every file, so the raw user id is ``"<file stem>:<id>"``. Item
    index ``i < num_A`` is domain A; the raw item id is its ASIN. There are no
    timestamps: ``timestamp`` is the position in the user's sequence, so time-ordered
    splits follow sequence order.

    Args:
        path: The folder.
        domain_names: Names of domains A and B.
    """

    SEQUENCE_FILES = ("train_A.txt", "train_B.txt", "train_overlap.txt", "valid.txt", "test.txt")
    ITEM_FILES = ("items_A.tsv", "items_B.tsv")
    ITEM_COLUMNS = ("global_idx_in_sequences", "asin", "title")

    def __init__(self, path: str | Path, domain_names: Sequence[str] = ("food", "kitchen")) -> None:
        self.path = Path(path).expanduser().resolve()
        self.domain_names = tuple(str(d) for d in domain_names)
        if len(self.domain_names) != 2 or len(set(self.domain_names)) != 2:
            raise ValueError(
                "data.source.domain_names must be two different names (domain A, domain B), "
                f"got {list(self.domain_names)}"
            )

    def describe(self) -> dict:
        return {"path": str(self.path), "domain_names": list(self.domain_names)}

    def files(self) -> list[Path]:
        _require_folder(self.path)
        out = [_require_file(self.path / name, "sequence file") for name in self.SEQUENCE_FILES]
        out += [_require_file(self.path / name, "item table") for name in self.ITEM_FILES]
        if (self.path / "num.txt").is_file():
            out.append(self.path / "num.txt")
        return out

    def _read_items(self, path: Path, domain: str) -> pd.DataFrame:
        df = _read_csv(path, sep="\t", quoting=csv.QUOTE_NONE)
        _check_not_empty(df, path)
        _check_columns(df, self.ITEM_COLUMNS, path, "Item tables need these tab-separated columns.")
        _check_no_null_ids(df, ("global_idx_in_sequences", "asin"), path)
        index = pd.to_numeric(df["global_idx_in_sequences"], errors="coerce")
        if index.isna().any():
            bad = df.loc[index.isna(), "global_idx_in_sequences"].iloc[0]
            raise DataError(
                f"{path}: column 'global_idx_in_sequences' must be an integer; found {bad!r}"
            )
        return pd.DataFrame(
            {
                "global": index.to_numpy(dtype=np.int64),
                "item": _as_str(df["asin"]).to_numpy(),
                "domain": domain,
                "title": _as_str(df["title"]).to_numpy(),
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
            interactions=_concat(frames),
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


# ---------------------------------------------------------------------- LightGCNSource


def _read_adjacency_lists(path: Path) -> tuple[np.ndarray, list[str]]:
    """Parse ``user item item ...`` lines; a line with only a user has no items."""
    users: list[str] = []
    counts: list[int] = []
    items: list[str] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            parts = line.split()
            if not parts:
                continue
            users.append(parts[0])
            counts.append(len(parts) - 1)
            items.extend(parts[1:])
    return np.repeat(np.array(users, dtype=object), counts), items


class LightGCNSource(Source):
    """The LightGCN / NGCF split files (``shared/data/gowalla-lightgcn``).

    ``train.txt`` and ``test.txt`` hold lines ``user item item ...``. The result has one
    domain and a ``split`` column (``"train"``/``"test"``) that the split step uses as
    given. The items table has no text.

    Args:
        path: The folder.
        domain: Name of the single domain.
    """

    SPLIT_FILES = (("train", "train.txt"), ("test", "test.txt"))

    def __init__(self, path: str | Path, domain: str = "gowalla") -> None:
        self.path = Path(path).expanduser().resolve()
        self.domain = str(domain)

    def describe(self) -> dict:
        return {"path": str(self.path), "domain": self.domain}

    def files(self) -> list[Path]:
        _require_folder(self.path)
        return [
            _require_file(self.path / name, f"{split} split") for split, name in self.SPLIT_FILES
        ]

    def load(self) -> RawTables:
        frames = []
        for (split, _), path in zip(self.SPLIT_FILES, self.files(), strict=True):
            users, items = _read_adjacency_lists(path)
            frames.append(
                pd.DataFrame(
                    {
                        "user": pd.Series(users, dtype="str"),
                        "item": pd.Series(items, dtype="str"),
                        "domain": self.domain,
                        "split": split,
                    }
                )
            )
        inter = _concat(frames)
        inter["split"] = inter["split"].astype("str")
        if len(inter) == 0:
            raise DataError(f"{self.path}: train.txt and test.txt hold no interactions")
        items = pd.DataFrame({"item": inter["item"].unique(), "domain": self.domain})
        items["item"] = _as_str(items["item"])
        tables = RawTables(interactions=inter, items=items, source=str(self.path))
        return validate_tables(tables, check_items=False)


# ------------------------------------------------------------------------ AtomicSource


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
    df = _read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, header=None, skiprows=1, names=names)
    for name, kind in zip(names, types, strict=True):
        if kind == "float":
            _to_numeric(df, name, path)
    return df


class AtomicSource(Source):
    """RecBole atomic files ``<dataset>.inter/.item/.user/.kg/.link`` in one folder.

    Only ``.inter`` is required. ``user_id``/``item_id`` become ``user``/``item``;
    ``rating`` and ``timestamp`` are kept when present. ``.item`` gives the items table
    (without it, items carry no text), ``.user`` the users table, ``.kg`` the triples
    (``head_id, relation_id, tail_id``) and ``.link`` the item -> entity links
    (``item_id, entity_id``). Example: ``shared/data/ml-100k-kg/ml-100k_recbole`` with
    ``dataset="ml-100k"``.

    Args:
        path: The folder.
        dataset: File name stem, e.g. ``"ml-100k"``.
        domain: Name of the single domain; defaults to ``dataset``.
    """

    OPTIONAL = ("item", "user", "kg", "link")

    def __init__(self, path: str | Path, dataset: str, domain: str | None = None) -> None:
        self.path = Path(path).expanduser().resolve()
        self.dataset = str(dataset)
        self.domain = str(domain) if domain is not None else self.dataset

    def describe(self) -> dict:
        return {"path": str(self.path), "dataset": self.dataset, "domain": self.domain}

    def _path(self, ext: str) -> Path:
        return self.path / f"{self.dataset}.{ext}"

    def files(self) -> list[Path]:
        _require_folder(self.path)
        out = [_require_file(self._path("inter"), "RecBole interactions")]
        return out + [self._path(ext) for ext in self.OPTIONAL if self._path(ext).is_file()]

    def _read(self, ext: str, required: Sequence[str]) -> pd.DataFrame | None:
        path = self._path(ext)
        if ext != "inter" and not path.is_file():
            return None
        df = _read_atomic(path)
        _check_columns(df, required, path, f"Check the header of the .{ext} file.")
        _check_no_null_ids(df, required, path)
        return df

    def load(self) -> RawTables:
        self.files()
        inter = self._read("inter", ("user_id", "item_id"))
        if len(inter) == 0:
            raise DataError(f"{self._path('inter')}: the file has no rows")
        interactions = pd.DataFrame(
            {
                "user": _as_str(inter["user_id"]),
                "item": _as_str(inter["item_id"]),
                "domain": self.domain,
            }
        )
        for col in ("rating", "timestamp"):
            if col in inter.columns:
                interactions[col] = inter[col].to_numpy()
                _to_numeric(interactions, col, self._path("inter"))
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
                {"item": _as_str(interactions["item"].drop_duplicates()), "domain": self.domain}
            ).reset_index(drop=True)
        df = df.rename(columns={"item_id": "item"})
        df.insert(1, "domain", self.domain)
        return _text_columns(df, ("item", "domain"))

    def _users(self) -> pd.DataFrame | None:
        df = self._read("user", ("user_id",))
        if df is None:
            return None
        df = df.rename(columns={"user_id": "user"})
        df["user"] = _as_str(df["user"])
        return df

    def _kg(self) -> pd.DataFrame | None:
        df = self._read("kg", ("head_id", "relation_id", "tail_id"))
        if df is None:
            return None
        return pd.DataFrame(
            {
                "head": _as_str(df["head_id"]),
                "relation": _as_str(df["relation_id"]),
                "tail": _as_str(df["tail_id"]),
            }
        )

    def _links(self) -> pd.DataFrame | None:
        df = self._read("link", ("item_id", "entity_id"))
        if df is None:
            return None
        return pd.DataFrame(
            {
                "item": _as_str(df["item_id"]),
                "domain": self.domain,
                "entity": _as_str(df["entity_id"]),
            }
        )
