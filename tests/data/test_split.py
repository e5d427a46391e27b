import numpy as np
import pandas as pd
import pytest

from gnnrec.data.schema import DataError, InteractionData
from gnnrec.data.split import split_interactions


def synthetic(num_users=60, items_per_domain=40, seed=0, with_time=True) -> InteractionData:
    """Two domains ("src", "tgt"); every user has 0-8 interactions in each."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(num_users):
        for d in range(2):
            n = int(rng.integers(0, 9))
            items = rng.choice(items_per_domain, size=n, replace=False) + d * items_per_domain
            for t, i in enumerate(items):
                rows.append((u, int(i), d, float(rng.integers(0, 5)) if with_time else 0.0, t))
    inter = pd.DataFrame(rows, columns=["user_idx", "item_idx", "domain_idx", "timestamp", "pos"])
    if not with_time:
        inter = inter.drop(columns="timestamp")
    items = pd.DataFrame(
        {
            "item": [f"i{j}" for j in range(2 * items_per_domain)],
            "domain": ["src"] * items_per_domain + ["tgt"] * items_per_domain,
            "domain_idx": [0] * items_per_domain + [1] * items_per_domain,
        }
    )
    users = pd.DataFrame({"user": [f"u{u}" for u in range(num_users)]})
    return InteractionData(inter.drop(columns="pos"), users, items, ["src", "tgt"])


def pairs(df):
    return set(zip(df["user_idx"].tolist(), df["item_idx"].tolist(), strict=True))


@pytest.mark.parametrize("with_time", [True, False])
def test_split_partitions_target_rows_without_leakage(with_time):
    data = synthetic(with_time=with_time)
    split = split_interactions(data, "tgt", cold_fraction=0.3, seed=1)
    train, val, test = pairs(split.train), pairs(split.val), pairs(split.test)
    assert not train & val and not train & test and not val & test
    assert train | val | test == pairs(data.interactions)
    # Held-out rows are target-domain rows only.
    tgt_items = set(np.flatnonzero(data.item_domain == 1).tolist())
    assert {i for _, i in val | test} <= tgt_items
    # Source rows are all in training.
    src = data.interactions[data.interactions["domain_idx"] == 0]
    assert pairs(src) <= train


def test_cold_users_have_no_target_training_rows_and_keep_source_rows():
    data = synthetic()
    split = split_interactions(data, "tgt", cold_fraction=0.5, seed=3)
    cold_val, cold_test = split.users_in_group("val", "cold"), split.users_in_group("test", "cold")
    assert len(cold_val) and len(cold_test)
    assert not set(cold_val) & set(cold_test)
    cold = np.concatenate([cold_val, cold_test])
    tr = split.train
    assert not ((tr["domain_idx"] == 1) & tr["user_idx"].isin(cold)).any()
    assert tr[tr["user_idx"].isin(cold)]["domain_idx"].eq(0).all()
    # Every cold user had source history; all their target rows are held out.
    inter = data.interactions
    for u in cold:
        assert (inter[(inter.user_idx == u)].domain_idx == 0).any()
    held = pd.concat([split.val, split.test])
    for u in cold:
        n_target = ((inter.user_idx == u) & (inter.domain_idx == 1)).sum()
        assert (held.user_idx == u).sum() == n_target
    # 0.5 of the overlapping users, half of them for validation.
    overlap = set(inter[inter.domain_idx == 0].user_idx) & set(
        inter[inter.domain_idx == 1].user_idx
    )
    assert len(cold) == round(0.5 * len(overlap))
    assert len(cold_val) == len(cold) // 2 and len(cold_test) == len(cold) - len(cold) // 2


def test_warm_leave_one_out_is_time_ordered():
    data = synthetic()
    split = split_interactions(data, "tgt", cold_fraction=0.0, seed=0)
    inter = data.interactions
    tgt = inter[inter.domain_idx == 1]
    for u, rows in tgt.groupby("user_idx"):
        t_val = split.val[split.val.user_idx == u]
        t_test = split.test[split.test.user_idx == u]
        if len(rows) < 3:
            assert len(t_val) == 0 and len(t_test) == 0
            continue
        assert len(t_val) == 1 and len(t_test) == 1
        ts = rows.set_index("item_idx")["timestamp"]
        test_t, val_t = ts[t_test.item_idx.iloc[0]], ts[t_val.item_idx.iloc[0]]
        train_t = ts.drop([t_test.item_idx.iloc[0], t_val.item_idx.iloc[0]])
        assert test_t >= val_t >= train_t.max()
    assert set(split.test.group) == {"warm"}


def test_without_timestamps_the_last_rows_are_held_out():
    """The row order is the time order: every seed holds out each user's last two rows."""
    data = synthetic(with_time=False)
    inter = data.interactions
    tgt = inter[inter.domain_idx == 1]
    eligible = tgt.groupby("user_idx").filter(lambda rows: len(rows) >= 3)
    last = eligible.groupby("user_idx").tail(1)
    second_last = eligible.groupby("user_idx").nth(-2)
    for seed in (0, 1, 2):
        split = split_interactions(data, "tgt", cold_fraction=0.0, seed=seed)
        assert pairs(split.test) == pairs(last)
        assert pairs(split.val) == pairs(second_last)


def test_empty_timestamps_are_an_error_naming_column_and_rows():
    data = synthetic()
    ts = data.interactions["timestamp"].copy()
    ts.iloc[[4, 9]] = np.nan
    data.interactions["timestamp"] = ts
    n = len(ts)
    with pytest.raises(
        DataError,
        match=rf"interactions table: column 'timestamp' is empty in 2 of {n} rows "
        r"\(data rows 5, 10\)",
    ):
        split_interactions(data, "tgt")


def test_no_cold_users_on_cross_domain_data_warns_and_says_why():
    data = synthetic()
    inter = data.interactions
    # Source rows only for even users, target rows only for odd users: no overlap.
    keep = ((inter.domain_idx == 0) & (inter.user_idx % 2 == 0)) | (
        (inter.domain_idx == 1) & (inter.user_idx % 2 == 1)
    )
    data.interactions = inter[keep].reset_index(drop=True)
    with pytest.warns(UserWarning, match=r"cold_fraction=0\.2 gives NO cold-start users: no user"):
        split = split_interactions(data, "tgt", cold_fraction=0.2)
    assert len(split.users_in_group("test", "cold")) == 0


def test_too_few_overlapping_users_for_the_cold_fraction_warns():
    data = synthetic()
    inter = data.interactions
    overlap = sorted(
        set(inter[inter.domain_idx == 0].user_idx) & set(inter[inter.domain_idx == 1].user_idx)
    )
    drop = (inter.domain_idx == 0) & inter.user_idx.isin(overlap[2:])
    data.interactions = inter[~drop].reset_index(drop=True)
    with pytest.warns(UserWarning, match=r"only 2 user\(s\).*round\(0\.2 \* 2\) = 0"):
        split_interactions(data, "tgt", cold_fraction=0.2)


def test_single_domain_or_zero_cold_fraction_does_not_warn(recwarn):
    data = synthetic()
    split_interactions(data, "tgt", cold_fraction=0.0)
    inter = data.interactions
    data.interactions = inter[inter.domain_idx == 1].reset_index(drop=True)
    data.domains = ["tgt"]
    data.items = data.items[data.items.domain == "tgt"].reset_index(drop=True)
    data.interactions["domain_idx"] = 0
    data.interactions["item_idx"] -= 40
    data.items["domain_idx"] = 0
    split_interactions(data, "tgt", cold_fraction=0.2)
    assert [str(w.message) for w in recwarn] == []


def test_split_is_seeded():
    data = synthetic()
    a = split_interactions(data, "tgt", seed=5)
    b = split_interactions(data, "tgt", seed=5)
    c = split_interactions(data, "tgt", seed=6)
    pd.testing.assert_frame_equal(a.test, b.test)
    assert not a.test.equals(c.test)


def test_fixed_split_is_used_as_given():
    data = synthetic()
    inter = data.interactions[data.interactions.domain_idx == 1].copy()
    inter["split"] = np.where(np.arange(len(inter)) % 4 == 0, "test", "train")
    data.interactions = inter.reset_index(drop=True)
    split = split_interactions(data, "tgt")
    assert pairs(split.test) == pairs(inter[inter.split == "test"])
    assert pairs(split.train) == pairs(inter[inter.split == "train"])
    assert len(split.val) == 0


def test_unknown_target_domain_names_known_domains():
    with pytest.raises(DataError, match=r"'books'.*\['src', 'tgt'\]"):
        split_interactions(synthetic(), "books")


def test_bad_split_settings():
    with pytest.raises(ValueError, match="cold_fraction"):
        split_interactions(synthetic(), "tgt", cold_fraction=1.5)
    with pytest.raises(ValueError, match="min_interactions"):
        split_interactions(synthetic(), "tgt", min_interactions=2)


def test_zero_shot_split_holds_out_the_whole_target_domain():
    data = synthetic(num_users=80)
    split = split_interactions(data, "tgt", zero_shot=True, seed=4)
    inter = data.interactions
    assert (split.train["domain_idx"] == 0).all()
    assert len(split.train) == int((inter["domain_idx"] == 0).sum())
    src_users = set(inter.loc[inter["domain_idx"] == 0, "user_idx"])
    tgt = inter[inter["domain_idx"] == 1]
    eligible = tgt[tgt["user_idx"].isin(src_users)]
    held = pd.concat([split.val, split.test])
    assert pairs(held) == pairs(eligible)
    assert set(held["group"]) == {"zero_shot"}
    assert not set(split.val["user_idx"]) & set(split.test["user_idx"])
    n_users = eligible["user_idx"].nunique()
    assert split.val["user_idx"].nunique() == n_users // 2
    assert split.test["user_idx"].nunique() == n_users - n_users // 2
    other = split_interactions(data, "tgt", zero_shot=True, seed=5)
    assert set(other.test["user_idx"]) != set(split.test["user_idx"])


def test_zero_shot_split_needs_users_with_source_history():
    data = synthetic(num_users=10)
    inter = data.interactions
    data.interactions = inter[inter["domain_idx"] == 1].reset_index(drop=True)
    with pytest.raises(DataError, match="zero-shot domain 'tgt'"):
        split_interactions(data, "tgt", zero_shot=True)
