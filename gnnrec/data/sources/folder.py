"""The domain-folder format: one interactions file and one item file per domain.

Rules (also in ``docs/data.md``):

* Per domain ``d`` the folder holds ``d.inter.csv`` and ``d.item.csv`` (or the same as
  ``.parquet``). CSV files are comma separated with a header row; every column is read as
  text, so ids keep leading zeros.
* ``d.inter.csv``: ``user_id``, ``item_id`` (both required, never empty), optional
  ``rating`` and ``timestamp`` (numbers), optional ``split`` (``train``/``val``/``test``:
  a fixed split used as given). A ``timestamp`` column must be complete; without one the
  file's row order is the time order (:mod:`gnnrec.data.schema`).
* ``d.item.csv``: ``item_id`` (required, unique) plus any text columns (``title``,
  ``brand``, ...). It is the domain's catalogue: every row is an item and a ranking
  candidate, including items that no one has interacted with. Every ``item_id`` of
  ``d.inter.csv`` needs a row (or ``data.preprocess.on_missing_item=drop``).
* User ids are shared across domains (the same ``user_id`` in two domains is one
  person); item ids are per domain (the same ``item_id`` in two domains are two items).
"""

from __future__ import annotations

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
    check_not_empty,
    concat,
    read_csv,
    read_numeric,
    read_parquet,
    text_columns,
)

__all__ = ["FolderSource", "FILE_FORMATS"]

FILE_FORMATS = ("auto", "csv", "parquet")


class FolderSource(Source):
    """One pair of files per domain in a folder (rules in the module docstring).

    Example: ``shared/data/amazon-books-cds-movies``.

    Args:
        path: The folder.
        domains: Domains to read (one name is one domain, not its letters); ``None``
            reads every ``*.inter.csv`` / ``*.inter.parquet`` in the folder.
        file_format: ``"csv"``, ``"parquet"`` or ``"auto"`` (whichever exists per file;
            csv when both do).
        config_key: Config path of these options, named in error messages
            (``"data"`` for ``data=folder``, where the user sets ``data.path``).
    """

    def __init__(
        self,
        path: str | Path,
        domains: str | Sequence[str] | None = None,
        file_format: str = "auto",
        config_key: str = DEFAULT_CONFIG_KEY,
    ) -> None:
        self.config_key = str(config_key)
        if file_format not in FILE_FORMATS:
            raise ValueError(
                f"{self.key('file_format')} must be one of {FILE_FORMATS}, got {file_format!r}"
            )
        self.path = Path(path).expanduser().resolve()
        if isinstance(domains, str):
            domains = [domains]
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
                f"check {self.key('path')}"
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
            f"from {self.key('domains')}"
        )

    def _pairs(self) -> list[tuple[str, Path, Path]]:
        self.require_folder()
        return [(d, self._file(d, "inter"), self._file(d, "item")) for d in self._domains()]

    def files(self) -> list[Path]:
        return [p for _, inter, item in self._pairs() for p in (inter, item)]

    def _read(self, path: Path) -> pd.DataFrame:
        df = read_parquet(path) if path.suffix == ".parquet" else read_csv(path)
        check_not_empty(df, path, f"fill it or remove its domain from {self.key('domains')}")
        return df

    def _read_interactions(self, domain: str, path: Path) -> pd.DataFrame:
        df = self._read(path)
        hint = "A <domain>.inter file needs user_id,item_id[,rating][,timestamp]."
        check_columns(df, ("user_id", "item_id"), path, hint)
        check_no_null_ids(df, ("user_id", "item_id"), path)
        out = pd.DataFrame(
            {"user": as_str(df["user_id"]), "item": as_str(df["item_id"]), "domain": domain}
        )
        read_numeric(out, df, path)
        if "split" in df.columns:
            out["split"] = as_str(df["split"])
        return out

    def _read_items(self, domain: str, path: Path) -> pd.DataFrame:
        df = self._read(path)
        check_columns(df, ("item_id",), path, "A <domain>.item file needs item_id.")
        check_no_null_ids(df, ("item_id",), path)
        df = df.rename(columns={"item_id": "item"})
        df["item"] = as_str(df["item"])
        dup = df["item"].duplicated().to_numpy()
        if dup.any():
            raise DataError(
                f"{path}: item_id {df['item'][dup].iloc[0]!r} has more than one row; each "
                "item needs exactly one"
            )
        df.insert(1, "domain", domain)
        return text_columns(df, ("item", "domain"))

    def load(self) -> RawTables:
        inters, items = [], []
        pairs = self._pairs()
        for domain, inter_path, item_path in pairs:
            inters.append(self._read_interactions(domain, inter_path))
            items.append(self._read_items(domain, item_path))
        _same_time_columns(inters, [inter_path for _, inter_path, _ in pairs])
        tables = RawTables(
            interactions=concat(inters),
            items=concat(items),
            source=str(self.path),
        )
        return validate_tables(tables, check_items=False)


def _same_time_columns(frames: list[pd.DataFrame], paths: list[Path]) -> None:
    """Raise unless every interactions file has a ``timestamp`` column or none has."""
    has = [p for f, p in zip(frames, paths, strict=True) if "timestamp" in f.columns]
    lacks = [p for f, p in zip(frames, paths, strict=True) if "timestamp" not in f.columns]
    if has and lacks:
        raise DataError(
            f"{lacks[0]} has no 'timestamp' column but {has[0]} has one; give every "
            "<domain>.inter file a timestamp column or none (then the row order is the "
            "time order)"
        )
