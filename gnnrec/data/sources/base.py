"""The :class:`Source` contract and the readers and checks every format shares.

A source reads one on-disk format into canonical :class:`~gnnrec.data.schema.RawTables`.
It offers :meth:`~Source.files` (the exact files it reads: their contents are part of
the processed-data cache key), :meth:`~Source.describe` (its parameters, also part of
the key) and :meth:`~Source.load`. ``load`` validates the tables with
:func:`~gnnrec.data.schema.validate_tables` except for the "every interaction has an
item row" check, which :func:`~gnnrec.data.preprocess.preprocess` does (it can also
drop such rows).

Ids are always read as strings, so leading zeros (Amazon ASINs like ``0001473123``)
survive. A ``timestamp`` column must be complete (see the time-order rule in
:mod:`gnnrec.data.schema`); :func:`read_numeric` checks it per file, naming the file.

Error messages name the option the user sets: every source takes ``config_key``, the
config path of its options (``data.source`` for most datasets, ``data`` for
``data=folder``, whose YAML maps ``data.path`` into ``data.source.path``).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from gnnrec.data.schema import DataError, RawTables, check_timestamps

__all__ = [
    "Source",
    "DEFAULT_CONFIG_KEY",
    "as_str",
    "check_columns",
    "check_no_null_ids",
    "check_not_empty",
    "concat",
    "read_csv",
    "read_numeric",
    "read_parquet",
    "text_columns",
    "to_numeric",
]

DEFAULT_CONFIG_KEY = "data.source"


class Source(abc.ABC):
    """A dataset on disk that can be read into :class:`RawTables`.

    Subclasses set ``self.path`` (the dataset folder) and ``self.config_key`` in their
    constructor and implement the three methods below.
    """

    path: Path
    config_key: str = DEFAULT_CONFIG_KEY

    @abc.abstractmethod
    def files(self) -> list[Path]:
        """The exact input files :meth:`load` reads; raises :class:`DataError` if absent."""

    @abc.abstractmethod
    def load(self) -> RawTables:
        """Read and validate the canonical tables."""

    @abc.abstractmethod
    def describe(self) -> dict:
        """The source's parameters as a JSON-serialisable dict (part of cache keys)."""

    def key(self, option: str) -> str:
        """The config key the user sets for ``option`` (``"data.source.path"``)."""
        return f"{self.config_key}.{option}" if self.config_key else option

    def require_folder(self) -> None:
        """Raise :class:`DataError` naming ``path``'s config key if the folder is absent."""
        if not self.path.is_dir():
            hint = f"set {self.key('path')}"
            if self.config_key == DEFAULT_CONFIG_KEY:
                hint += " (or paths.data_dir / the GNNREC_DATA_DIR environment variable)"
            raise DataError(
                f"data folder {str(self.path)!r} does not exist; {hint} to the folder "
                "holding the dataset"
            )

    def require_file(self, name: str, what: str) -> Path:
        """``path / name``; raise :class:`DataError` if it is not a file."""
        path = self.path / name
        if not path.is_file():
            raise DataError(
                f"missing file {str(path)!r} ({what}); add it or fix {self.key('path')}"
            )
        return path

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.describe().items())
        return f"{type(self).__name__}({args})"


# --------------------------------------------------------------------- shared checks


def check_columns(df: pd.DataFrame, columns: Sequence[str], path: Path, hint: str) -> None:
    """Raise naming the file and the first required column it lacks."""
    for col in columns:
        if col not in df.columns:
            raise DataError(
                f"{path}: missing column {col!r}; found columns {list(df.columns)}. {hint}"
            )


def check_not_empty(df: pd.DataFrame, path: Path, hint: str) -> None:
    """Raise if the file has no data rows; ``hint`` says what to do."""
    if len(df) == 0:
        raise DataError(f"{path}: the file has no rows; {hint}")


def check_no_null_ids(df: pd.DataFrame, columns: Sequence[str], path: Path) -> None:
    """Raise naming the column and first data row (from 1) of an empty id."""
    for col in columns:
        nulls = df[col].isna().to_numpy()
        if nulls.any():
            raise DataError(
                f"{path}: column {col!r} has {int(nulls.sum())} empty value(s), first in data "
                f"row {int(np.flatnonzero(nulls)[0]) + 1}; every row needs an id"
            )


def to_numeric(df: pd.DataFrame, col: str, path: Path) -> None:
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


def read_numeric(out: pd.DataFrame, df: pd.DataFrame, path: Path) -> None:
    """Copy ``rating`` and ``timestamp`` from the file's ``df`` into ``out`` as float64.

    A ``timestamp`` column with empty values raises (:func:`check_timestamps`).
    """
    for col in ("rating", "timestamp"):
        if col in df.columns:
            out[col] = df[col].to_numpy()
            to_numeric(out, col, path)
    if "timestamp" in out.columns:
        check_timestamps(out["timestamp"], str(path))


def as_str(series: pd.Series) -> pd.Series:
    """Ids as strings; keeps missing values missing."""
    if pd.api.types.is_string_dtype(series) and not pd.api.types.is_object_dtype(series):
        return series
    return series.astype("str")


def text_columns(df: pd.DataFrame, skip: Sequence[str]) -> pd.DataFrame:
    """Non-id columns as strings (missing values stay missing)."""
    for col in df.columns:
        if col not in skip:
            df[col] = as_str(df[col])
    return df


def concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate per-file tables, keeping the id columns as strings."""
    out = pd.concat(frames, ignore_index=True)
    for col in ("user", "item", "domain"):
        if col in out.columns:
            out[col] = as_str(out[col])
    return out


# ----------------------------------------------------------------------- readers


def read_csv(path: Path, **kwargs) -> pd.DataFrame:
    """Read a delimited file with every column as a string (empty cells are NaN)."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], **kwargs)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise DataError(f"{path}: cannot be read as a delimited text file: {err}") from err


def read_parquet(path: Path) -> pd.DataFrame:
    """Read a parquet file; any reader error becomes a :class:`DataError` naming it."""
    try:
        return pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several unrelated types for bad files
        raise DataError(f"{path}: cannot be read as parquet: {err}") from err
