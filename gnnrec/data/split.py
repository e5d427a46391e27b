"""Leak-free train / validation / test split for cross-domain top-K recommendation.

Protocol (also in ``docs/protocol.md``):

* ``target_domain`` is the domain evaluated; every other domain is a source domain.
* **Cold-start users**: a seeded fraction ``cold_fraction`` of the users who have
  interactions in the target domain *and* in at least one source domain. All their
  target interactions are held out; half of these users (seeded) form the validation
  cold group, the other half the test cold group. Their source interactions stay in
  training.
* **Warm users**: every other user with at least ``min_interactions`` target
  interactions. Their target interactions are put in time order (the rule of
  :mod:`gnnrec.data.schema`): by ``timestamp``, ties broken by a seeded random key; a
  ``timestamp`` column with empty values is a :class:`DataError`; without a
  ``timestamp`` column the row order of the interactions table is the time order. The
  last goes to test, the second to last to validation, the rest to training.
* Every remaining interaction (source domains, target users with too few
  interactions) is training data.
* With ``cold_fraction > 0`` on data of two or more domains, a split without any cold
  user (no user has both target and source history, e.g. after a strict k-core) warns,
  saying why: the ``cold`` group of every metric would otherwise be silently empty.
* **Zero-shot domain** (``zero_shot=True``): no interaction of the target domain is
  used in training. Its users who have source-domain history are split in half
  (seeded) into validation and test users, group ``zero_shot``; all their target
  interactions are held out. Target users without source history cannot be ranked
  from anything and are left out.
* Datasets with a ``split`` column (for example the LightGCN Gowalla files) are used
  as given when ``fixed`` is ``"auto"`` or ``True``; all their users are warm.

Training rows are the only rows that may reach the graph, the training positives or
popularity counts; the split is computed on tables before any graph exists.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from gnnrec.data.schema import DataError, InteractionData, check_timestamps
from gnnrec.keys import COLD, USER_GROUPS, WARM, ZERO_SHOT

__all__ = ["Split", "check_split_options", "split_interactions", "GROUPS"]

GROUPS = USER_GROUPS


@dataclass
class Split:
    """The result of :func:`split_interactions`.

    Attributes:
        train: Training interactions of every domain (columns of
            ``InteractionData.interactions``).
        val: Held-out target-domain rows ``user_idx, item_idx, group``.
        test: Held-out target-domain rows ``user_idx, item_idx, group``.
        target_domain: Name of the evaluated domain.
        target_domain_idx: Its index in ``InteractionData.domains``.
        expected_groups: The user groups the split's settings call for, whether or not
            they got users: ``("warm", "cold")`` with ``cold_fraction > 0`` on data of
            two or more domains, ``("zero_shot",)`` for a zero-shot domain, else
            ``("warm",)``. An expected group without users is flagged at run time.
    """

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    target_domain: str
    target_domain_idx: int
    expected_groups: tuple[str, ...] = ()

    def users_in_group(self, split: str, group: str) -> np.ndarray:
        """Sorted unique user ids of ``group`` in ``split`` (``"val"`` or ``"test"``)."""
        rows = getattr(self, split)
        return np.unique(rows.loc[rows["group"] == group, "user_idx"].to_numpy())

    def summary(self) -> dict[str, int]:
        """Row and user counts per split and group, for logs and docs."""
        out = {"train/rows": len(self.train)}
        for name in ("val", "test"):
            rows = getattr(self, name)
            out[f"{name}/rows"] = len(rows)
            for group in GROUPS:
                out[f"{name}/{group}/users"] = len(self.users_in_group(name, group))
        return out


def _held_out(rows: pd.DataFrame, group: str) -> pd.DataFrame:
    out = rows[["user_idx", "item_idx"]].copy()
    out["group"] = group
    return out.reset_index(drop=True)


def _fixed_split(inter: pd.DataFrame, target: int, name: str) -> Split:
    train = inter[inter["split"] == "train"].drop(columns="split").reset_index(drop=True)
    in_target = inter["domain_idx"] == target
    val = _held_out(inter[in_target & (inter["split"] == "val")], "warm")
    test = _held_out(inter[in_target & (inter["split"] == "test")], "warm")
    if len(test) == 0:
        raise DataError("the data's 'split' column has no 'test' rows; cannot use it as given")
    return Split(train, val, test, name, target, (WARM,))


def split_interactions(
    data: InteractionData,
    target_domain: str | None = None,
    *,
    cold_fraction: float = 0.2,
    min_interactions: int = 3,
    fixed: bool | Literal["auto"] = "auto",
    zero_shot: bool = False,
    seed: int = 0,
) -> Split:
    """Split ``data`` by the protocol in the module docstring.

    Args:
        data: Preprocessed interactions.
        target_domain: Domain to evaluate. ``None`` is allowed for single-domain data.
        cold_fraction: Fraction of overlapping users made cold-start users (0 disables).
        min_interactions: Minimum target interactions for a warm user.
        fixed: ``"auto"`` uses a ``split`` column when the data has one; ``True``
            requires it; ``False`` ignores it.
        zero_shot: Hold out the whole target domain (``data.zero_shot_domain``).
        seed: Seed for the cold-user draw and tie breaking.

    Returns:
        The :class:`Split`.

    Raises:
        DataError: An unknown target domain, an incomplete ``timestamp`` column, or no
            test user.
    """
    check_split_options(cold_fraction, min_interactions, fixed)
    if target_domain is None:
        if len(data.domains) != 1:
            raise DataError(
                f"data.target_domain is not set and the data has {len(data.domains)} domains "
                f"{data.domains}; choose one."
            )
        target_domain = data.domains[0]
    target = data.domain_index(target_domain)
    inter = data.interactions
    has_split = "split" in inter.columns
    if fixed is True and not has_split:
        raise DataError("data.split.fixed=true but the data has no 'split' column")
    if has_split and fixed in (True, "auto"):
        return _fixed_split(inter, target, target_domain)
    if has_split:
        inter = inter.drop(columns="split")

    if zero_shot:
        return _zero_shot_split(inter, target, target_domain, seed)

    rng = np.random.default_rng(seed)
    in_target = (inter["domain_idx"] == target).to_numpy()
    target_users = np.unique(inter.loc[in_target, "user_idx"].to_numpy())
    source_users = np.unique(inter.loc[~in_target, "user_idx"].to_numpy())
    overlap = np.intersect1d(target_users, source_users)

    n_cold = int(round(cold_fraction * len(overlap)))
    if cold_fraction > 0 and len(data.domains) > 1 and n_cold == 0:
        _warn_no_cold_users(cold_fraction, len(overlap), target_domain, data.domains)
    cold = np.sort(rng.choice(overlap, size=n_cold, replace=False)) if n_cold else overlap[:0]
    cold_perm = rng.permutation(cold)
    cold_val = np.sort(cold_perm[: len(cold) // 2])
    cold_test = np.sort(cold_perm[len(cold) // 2 :])

    tgt = inter[in_target]
    is_cold = np.isin(tgt["user_idx"].to_numpy(), cold)
    warm_rows = tgt[~is_cold]
    # Time order; equal timestamps broken by a seeded random key.
    ts = _time(inter)[in_target][~is_cold]
    tie = rng.random(len(warm_rows))
    users = warm_rows["user_idx"].to_numpy()
    order = np.lexsort((tie, ts, users))
    warm_rows = warm_rows.iloc[order]
    users = users[order]
    counts = np.bincount(users, minlength=data.num_users)
    pos_from_end = _position_from_end(users)
    eligible = counts[users] >= min_interactions
    test_mask = eligible & (pos_from_end == 0)
    val_mask = eligible & (pos_from_end == 1)
    keep_mask = ~(test_mask | val_mask)

    cold_rows = tgt[is_cold]
    cold_users = cold_rows["user_idx"].to_numpy()
    val = pd.concat(
        [
            _held_out(warm_rows[val_mask], "warm"),
            _held_out(cold_rows[np.isin(cold_users, cold_val)], "cold"),
        ],
        ignore_index=True,
    )
    test = pd.concat(
        [
            _held_out(warm_rows[test_mask], "warm"),
            _held_out(cold_rows[np.isin(cold_users, cold_test)], "cold"),
        ],
        ignore_index=True,
    )
    train = pd.concat([inter[~in_target], warm_rows[keep_mask]], ignore_index=False)
    train = train.sort_index().reset_index(drop=True)
    if len(test) == 0:
        raise DataError(
            f"no test users in target domain {target_domain!r}: no user has "
            f">= {min_interactions} interactions there and no user is cold-start"
        )
    if len(val) == 0:
        warnings.warn("the split has no validation rows; early stopping is disabled", stacklevel=2)
    expected = (WARM, COLD) if cold_fraction > 0 and len(data.domains) > 1 else (WARM,)
    return Split(train, val, test, target_domain, target, expected)


def check_split_options(
    cold_fraction: float = 0.2, min_interactions: int = 3, fixed: bool | str = "auto", **_
) -> None:
    """Raise ``ValueError`` naming ``data.split.<key>`` for a setting that cannot work.

    Called with the ``data.split`` settings before any data is loaded; other keys
    (``seed``) are ignored.
    """
    if not 0.0 <= cold_fraction < 1.0:
        raise ValueError(f"data.split.cold_fraction must be in [0, 1), got {cold_fraction}")
    if min_interactions < 3:
        raise ValueError(
            f"data.split.min_interactions must be >= 3 (one train, one val, one test item), "
            f"got {min_interactions}"
        )
    if fixed not in (True, False, "auto"):
        raise ValueError(f"data.split.fixed must be auto, true or false, got {fixed!r}")


def _time(inter: pd.DataFrame) -> np.ndarray:
    """``float64[len(inter)]`` time of every row: its timestamp, else its row position."""
    if "timestamp" not in inter.columns:
        return np.arange(len(inter), dtype=np.float64)  # the row order is the time order
    check_timestamps(inter["timestamp"], "interactions table")
    return inter["timestamp"].to_numpy(dtype=np.float64)


def _warn_no_cold_users(
    cold_fraction: float, num_overlap: int, target: str, domains: list[str]
) -> None:
    sources = [d for d in domains if d != target]
    if num_overlap == 0:
        why = (
            f"no user has interactions in both the target domain {target!r} and a source "
            f"domain {sources}"
        )
    else:
        why = (
            f"only {num_overlap} user(s) have both target and source history, and "
            f"round({cold_fraction} * {num_overlap}) = 0"
        )
    warnings.warn(
        f"data.split.cold_fraction={cold_fraction} gives NO cold-start users: {why}. The "
        "'cold' group will be empty in every metric. Check the data and the preprocessing "
        "filters (data.preprocess.kcore, data.preprocess.rating_threshold) that may have "
        "removed the overlapping users, or set data.split.cold_fraction=0.",
        stacklevel=3,
    )


def _zero_shot_split(inter: pd.DataFrame, target: int, name: str, seed: int) -> Split:
    in_target = (inter["domain_idx"] == target).to_numpy()
    tgt = inter[in_target]
    source_users = np.unique(inter.loc[~in_target, "user_idx"].to_numpy())
    users = np.intersect1d(np.unique(tgt["user_idx"].to_numpy()), source_users)
    if len(users) < 2:
        raise DataError(
            f"zero-shot domain {name!r}: {len(users)} of its users have source-domain "
            "history; at least 2 are needed (one validation, one test user)"
        )
    perm = np.random.default_rng(seed).permutation(users)
    val_users, test_users = perm[: len(perm) // 2], perm[len(perm) // 2 :]
    tgt_users = tgt["user_idx"].to_numpy()
    val = _held_out(tgt[np.isin(tgt_users, val_users)], "zero_shot")
    test = _held_out(tgt[np.isin(tgt_users, test_users)], "zero_shot")
    train = inter[~in_target].reset_index(drop=True)
    return Split(train, val, test, name, target, (ZERO_SHOT,))


def _position_from_end(sorted_users: np.ndarray) -> np.ndarray:
    """For rows grouped by user, 0 for each user's last row, 1 for the one before, ..."""
    n = len(sorted_users)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    boundary = np.r_[sorted_users[1:] != sorted_users[:-1], True]
    ends = np.flatnonzero(boundary)
    group_end = np.repeat(ends, np.diff(np.r_[-1, ends]))
    return group_end - np.arange(n)
