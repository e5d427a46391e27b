"""Texts to embed: item descriptions from a template, user profiles from training history.

Only the ``train`` table of a split may build a profile, so held-out items never reach
a user's text (``tests/test_leakage.py`` checks it on real data).
"""

from __future__ import annotations

import ast
import string

import numpy as np
import pandas as pd

from gnnrec.data.schema import DataError, check_timestamps

__all__ = ["item_texts", "template_fields", "user_profiles"]


def template_fields(template: str) -> list[str]:
    """Column names a template refers to, in order (``"{title}. By {brand}"`` -> both)."""
    fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    bad = [f for f in fields if not f.isidentifier()]
    if bad:
        raise ValueError(
            f"text template {template!r} has field(s) {bad}; use plain column names like {{title}}"
        )
    return fields


def _clean(value: object) -> str:
    """One cell as text: missing -> "", list-like strings ``"['A', 'B']"`` -> ``"A, B"``."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, list | tuple | np.ndarray):
        return ", ".join(str(v).strip() for v in value if str(v).strip())
    text = str(value).strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
        if isinstance(parsed, list | tuple):
            return ", ".join(str(v).strip() for v in parsed if str(v).strip())
    return text


def _segments(template: str) -> list[tuple[str, str | None]]:
    """Split a template into (literal prefix, field) pieces; the last field may be None."""
    return [(literal, name) for literal, name, _, _ in string.Formatter().parse(template)]


def item_texts(items: pd.DataFrame, template: str) -> list[str]:
    """One text per item row from ``template``, dropping missing fields cleanly.

    A field's piece of the template runs from the end of the previous field to the
    field itself (``". By {brand}"``); when the field is empty for an item, that whole
    piece is left out, so ``"{title}. By {brand}."`` gives ``"Heat."`` for an item
    without a brand, not ``"Heat. By ."``. Text after the last field is kept only if
    some field of the item was filled. List-like cells (``"['Movies', 'Drama']"``) are
    joined with commas.

    Args:
        items: The items table (one row per item, in item index order).
        template: Python format string over column names, e.g.
            ``"{title}. By {brand}. Category: {category}"``.

    Returns:
        ``len(items)`` strings.

    Raises:
        DataError: A field names a column the items table lacks.
    """
    fields = template_fields(template)
    missing = [f for f in fields if f not in items.columns]
    if missing:
        raise DataError(
            f"text template {template!r} names column(s) {missing} that the items table lacks; "
            f"available columns: {list(items.columns)}. Set data.text.template."
        )
    pieces = _segments(template)
    columns = {f: [_clean(v) for v in items[f].tolist()] for f in dict.fromkeys(fields)}
    out = []
    for row in range(len(items)):
        parts: list[str] = []
        any_filled = False
        for literal, name in pieces:
            if name is None:
                if any_filled:
                    parts.append(literal)
                continue
            value = columns[name][row]
            if value:
                parts.append((literal if any_filled else literal.lstrip(" .,:;-")) + value)
                any_filled = True
        out.append("".join(parts).strip())
    return out


def user_profiles(
    train: pd.DataFrame,
    titles: list[str] | np.ndarray,
    num_users: int,
    max_items: int = 20,
    separator: str = "; ",
) -> list[str]:
    """A text per user from their most recent *training* items' titles, across domains.

    Items are in time order (the rule of :mod:`gnnrec.data.schema`): by ``timestamp``
    when the table has one, equal timestamps by row order; without a ``timestamp``
    column the row order is the time order. The last ``max_items`` are kept, oldest
    first. Users with no training interaction get ``""``.

    Args:
        train: Training interactions (``user_idx``, ``item_idx``, optional
            ``timestamp``): the ``train`` table of a split, never the raw data.
        titles: ``[num_items]`` text of each item (a title column or :func:`item_texts`).
        num_users: Number of users.
        max_items: Most recent items kept per user.
        separator: Joins the titles.

    Returns:
        ``num_users`` strings.

    Raises:
        DataError: The ``timestamp`` column has empty values.
    """
    if max_items <= 0:
        raise ValueError(f"data.text.profile_items must be positive, got {max_items}")
    rows = train[["user_idx", "item_idx"]].copy()
    rows["_order"] = np.arange(len(rows))
    keys = ["user_idx", "_order"]
    if "timestamp" in train.columns:
        check_timestamps(train["timestamp"], "training interactions")
        rows["timestamp"] = train["timestamp"].to_numpy(dtype=np.float64)
        keys = ["user_idx", "timestamp", "_order"]
    rows = rows.sort_values(keys, kind="stable")
    recent = rows.groupby("user_idx", sort=False).tail(max_items)
    titles = np.asarray(titles, dtype=object)
    out = [""] * num_users
    for user, items in recent.groupby("user_idx", sort=False)["item_idx"]:
        out[int(user)] = separator.join(t for t in titles[items.to_numpy()] if t)
    return out
