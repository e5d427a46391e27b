"""Content fingerprints of preprocessed data and of a split.

Per-user results carry them (``per_user.parquet``), so a paired test can tell whether
two runs evaluated the same people on the same held-out items: runs over different
data, preprocessing or splits renumber users and hold out other items.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from gnnrec.data.schema import InteractionData
from gnnrec.data.split import Split

__all__ = ["data_fingerprint", "split_fingerprint"]


def _update(digest, frame: pd.DataFrame, columns: list[str]) -> None:
    for col in columns:
        if col not in frame.columns:
            continue
        values = frame[col]
        digest.update(f"{col}:{len(values)}\0".encode())
        if pd.api.types.is_numeric_dtype(values):
            digest.update(np.ascontiguousarray(values.to_numpy(np.float64)).tobytes())
        else:
            digest.update("\0".join(values.astype(str).tolist()).encode("utf-8"))


def data_fingerprint(data: InteractionData) -> str:
    """SHA-256 (hex, 16 characters) of the raw ids and every preprocessed interaction."""
    digest = hashlib.sha256(b"gnnrec-data-v1\0")
    digest.update("\0".join(data.domains).encode())
    _update(digest, data.users, ["user"])
    _update(digest, data.items, ["item", "domain"])
    _update(digest, data.interactions, ["user_idx", "item_idx", "domain_idx", "timestamp"])
    return digest.hexdigest()[:16]


def split_fingerprint(data: InteractionData, split: Split) -> str:
    """SHA-256 (hex, 16 characters) of the data and the split's held-out rows.

    Two runs with the same value evaluated the same users on the same validation and test
    items, so their per-user results pair. The training rows are not part of it: an
    ablation that trains on fewer of them (``data.source_edges=false``) is still evaluated
    on the same held-out rows and must pair with the full model.
    """
    digest = hashlib.sha256(b"gnnrec-split-v2\0")
    digest.update(data_fingerprint(data).encode())
    digest.update(f"target:{split.target_domain}\0".encode())
    for name in ("val", "test"):
        digest.update(f"{name}\0".encode())
        _update(digest, getattr(split, name), ["user_idx", "item_idx", "group"])
    return digest.hexdigest()[:16]
