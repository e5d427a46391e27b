"""The LightGCN / NGCF split files: ``train.txt`` and ``test.txt``, one domain.

Lines ``user item item ...`` (``shared/data/gowalla-lightgcn``); a line with only a user
has no items. The split is fixed and used as given.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gnnrec.data.schema import DataError, RawTables, validate_tables
from gnnrec.data.sources.base import DEFAULT_CONFIG_KEY, Source, as_str, concat

__all__ = ["LightGCNSource"]


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
    """The LightGCN / NGCF split files (format in the module docstring).

    The result has one domain and a ``split`` column (``"train"``/``"test"``) that the
    split step uses as given. The items table (the items that occur in either file) has
    no text; there are no timestamps. ``has_validation`` is ``False``: the run knows
    before reading the files that an explicit validation ``optimized_metric`` cannot work.

    Args:
        path: The folder.
        domain: Name of the single domain.
        config_key: Config path of these options, named in error messages.
    """

    SPLIT_FILES = (("train", "train.txt"), ("test", "test.txt"))
    has_validation = False  # the split column, used as given, has no val rows

    def __init__(
        self, path: str | Path, domain: str = "gowalla", config_key: str = DEFAULT_CONFIG_KEY
    ) -> None:
        self.config_key = str(config_key)
        self.path = Path(path).expanduser().resolve()
        self.domain = str(domain)

    def describe(self) -> dict:
        return {"path": str(self.path), "domain": self.domain}

    def files(self) -> list[Path]:
        self.require_folder()
        return [self.require_file(name, f"{split} split") for split, name in self.SPLIT_FILES]

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
        inter = concat(frames)
        inter["split"] = inter["split"].astype("str")
        if len(inter) == 0:
            raise DataError(f"{self.path}: train.txt and test.txt hold no interactions")
        items = pd.DataFrame({"item": inter["item"].unique(), "domain": self.domain})
        items["item"] = as_str(items["item"])
        tables = RawTables(interactions=inter, items=items, source=str(self.path))
        return validate_tables(tables, check_items=False)
