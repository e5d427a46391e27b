"""Tests of :mod:`gnnrec.data.preprocess`: cleaning and contiguous ids.

The processed-data cache is tested in ``tests/data/test_processed_cache.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gnnrec.data import (
    DataError,
    FolderSource,
    InteractionData,
    RawTables,
    load_dataset,
    preprocess,
)


def make_tables(rows: list[tuple], items: list[tuple] | None = None, **extra) -> RawTables:
    """Tables from ``(user, item, domain[, timestamp])`` rows; items default to all used."""
    cols = ["user", "item", "domain", "timestamp"][: len(rows[0])]
    inter = pd.DataFrame(rows, columns=cols)
    if items is None:
        items = sorted({(r[1], r[2]) for r in rows})
    item_frame = pd.DataFrame(items, columns=["item", "domain"])
    item_frame["title"] = "t-" + item_frame["item"]
    return RawTables(interactions=inter, items=item_frame, source="toy", **extra)


# ------------------------------------------------------------------ missing items


def test_missing_item_error_names_item_and_key():
    tables = make_tables([("u1", "a", "x"), ("u1", "zz", "x")], items=[("a", "x")])
    with pytest.raises(DataError, match=r"toy: 1 interaction.*'zz' in domain 'x'.*on_missing_item"):
        preprocess(tables)


def test_missing_item_drop_warns():
    tables = make_tables(
        [("u1", "a", "x"), ("u1", "zz", "x"), ("u2", "a", "y")], items=[("a", "x"), ("a", "y")]
    )
    with pytest.warns(UserWarning, match=r"dropped 1 interaction.*'zz'"):
        data = preprocess(tables, on_missing_item="drop")
    assert len(data.interactions) == 2
    assert data.meta["dropped"]["missing_item"] == 1


def test_unknown_options():
    tables = make_tables([("u1", "a", "x")])
    with pytest.raises(ValueError, match=r"data\.preprocess\.on_missing_item.*'error', 'drop'"):
        preprocess(tables, on_missing_item="ignore")
    with pytest.raises(ValueError, match=r"data\.preprocess\.dedup"):
        preprocess(tables, dedup="mean")
    with pytest.raises(ValueError, match=r"data\.preprocess\.kcore"):
        preprocess(tables, kcore=-1)


# ---------------------------------------------------------------------- dedup


DUPES = [
    ("u1", "a", "x", 30.0),
    ("u1", "a", "x", 10.0),
    ("u1", "b", "x", 20.0),
    ("u1", "a", "y", 5.0),  # same raw item in another domain: not a duplicate
    ("u1", "b", "x", 20.0),  # tie on timestamp: row order decides
]


@pytest.mark.parametrize(("dedup", "kept_rows"), [("last", [0, 3, 4]), ("first", [1, 2, 3])])
def test_dedup_keeps_latest_or_first(dedup, kept_rows):
    tables = make_tables(DUPES)
    tables.interactions["rating"] = np.arange(5, dtype=float)  # marks the source row
    with pytest.warns(UserWarning, match="dropped 2 duplicate"):
        data = preprocess(tables, dedup=dedup)
    assert sorted(data.interactions["rating"].astype(int)) == kept_rows
    assert data.meta["dropped"]["duplicates"] == 2


def test_folder_duplicates_warned_and_latest_kept(tmp_path):
    (tmp_path / "books.inter.csv").write_text(
        "user_id,item_id,rating,timestamp\nu1,01,2,100\nu1,01,5,300\nu1,01,4,200\nu2,01,1,1\n"
    )
    (tmp_path / "books.item.csv").write_text("item_id,title\n01,A book\n")
    with pytest.warns(UserWarning, match="dropped 2 duplicate"):
        data = load_dataset(FolderSource(tmp_path))
    rows = data.interactions.merge(data.users, left_on="user_idx", right_index=True)
    assert rows.loc[rows["user"] == "u1", ["rating", "timestamp"]].values.tolist() == [[5.0, 300.0]]


# -------------------------------------------------------- rating and k-core filters


def test_rating_threshold_drops_interactions_not_items():
    tables = make_tables([("u1", "a", "x"), ("u1", "b", "x"), ("u2", "a", "x")])
    tables.interactions["rating"] = [5.0, 2.0, 4.0]
    data = preprocess(tables, rating_threshold=4)
    assert data.interactions["rating"].tolist() == [5.0, 4.0]
    # "b" lost its only interaction but is still an item of the catalogue.
    assert data.items["item"].tolist() == ["a", "b"]
    assert data.meta["dropped"]["rating"] == 1
    assert data.meta["domains"]["x"]["items_without_interactions"] == 1


def test_rating_threshold_needs_rating():
    with pytest.raises(DataError, match="no 'rating' column"):
        preprocess(make_tables([("u1", "a", "x")]), rating_threshold=3)


def test_everything_filtered_is_an_error():
    tables = make_tables([("u1", "a", "x")])
    with pytest.raises(DataError, match=r"kcore=2 leaves no interactions at all in domain\(s\)"):
        preprocess(tables, kcore=2)


KCORE_ROWS = [
    ("u1", "i1", "x"),
    ("u1", "i2", "x"),
    ("u2", "i1", "x"),
    ("u2", "i2", "x"),
    ("u3", "i1", "x"),
    ("u3", "i3", "x"),
    ("u1", "j1", "y"),
    ("u1", "j2", "y"),
    ("u2", "j1", "y"),
    ("u2", "j2", "y"),
    ("u3", "j1", "y"),
]


def test_kcore_counts_user_degree_per_domain_and_removes_items_below_k():
    # u3 has 3 interactions in all but 2 in x and 1 in y: round 1 drops u3-j1 (user
    # degree in y) and u3-i3 (item degree 1); round 2 drops u3-i1 (u3 now has 1 in x).
    items = sorted({(r[1], r[2]) for r in KCORE_ROWS}) + [("i9", "x")]  # i9: no interaction
    data = preprocess(make_tables(KCORE_ROWS, items=items), kcore=2)
    assert data.users["user"].tolist() == ["u1", "u2"]
    assert data.items[["item", "domain"]].values.tolist() == [
        ["i1", "x"],
        ["i2", "x"],
        ["j1", "y"],
        ["j2", "y"],
    ]
    assert data.interactions[["user_idx", "item_idx"]].values.tolist() == [
        [0, 0],
        [0, 1],
        [0, 2],
        [0, 3],
        [1, 0],
        [1, 1],
        [1, 2],
        [1, 3],
    ]
    assert data.meta["dropped"]["kcore"] == 3
    assert data.meta["dropped"]["kcore_items"] == 2  # i3 (degree 1) and i9 (degree 0)
    assert data.meta["num_items"] == data.num_items == 4


@pytest.mark.parametrize(
    ("options", "setting"),
    [
        ({"kcore": 3}, r"data\.preprocess\.kcore=3"),
        ({"rating_threshold": 4.5}, r"data\.preprocess\.rating_threshold=4\.5"),
    ],
)
def test_a_filter_that_empties_a_domain_names_setting_and_domain(options, setting):
    rows = [(u, i, "x") for u in ("u1", "u2", "u3") for i in ("i1", "i2", "i3")]
    rows += [("u1", "j1", "y"), ("u2", "j1", "y")]
    tables = make_tables(rows)
    tables.interactions["rating"] = [5.0] * 9 + [4.0, 3.0]
    with pytest.raises(
        DataError, match=setting + r" leaves no interactions in domain\(s\) \['y'\]"
    ):
        preprocess(tables, **options)


def test_dropping_missing_items_that_empties_a_domain_is_an_error():
    tables = make_tables([("u1", "a", "x"), ("u1", "zz", "y")], items=[("a", "x"), ("b", "y")])
    with (
        pytest.raises(DataError, match=r"on_missing_item=drop leaves.*\['y'\]"),
        pytest.warns(UserWarning, match="dropped 1 interaction"),
    ):
        preprocess(tables, on_missing_item="drop")


# ------------------------------------------------------------ whitespace around ids


def test_user_ids_differing_only_by_whitespace_are_one_user_across_domains():
    rows = [("u1", "a", "books"), ("u2", "b", "books"), (" u1", "m", "movies")]
    rows += [("u2\t", "m", "movies"), (" u3 ", "n", "movies"), ("u4 ", "n", "movies")]
    profiles = pd.DataFrame({"user": [" u1 ", "u3"], "age": ["30", "41"]})
    with pytest.warns(UserWarning) as caught:
        data = preprocess(make_tables(rows, users=profiles))
    assert [str(w.message) for w in caught] == [
        "toy: stripped surrounding whitespace from 5 user id(s), e.g. ' u1' -> 'u1'; 4 of "
        "them now name the same user as another id (ids that differ only by surrounding "
        "whitespace are one user, across domains)"
    ]
    assert data.users["user"].tolist() == ["u1", "u2", "u3", "u4"]
    assert data.users.loc[[0, 2], "age"].tolist() == ["30", "41"]  # profiles joined
    assert pd.isna(data.users.loc[1, "age"])
    assert data.meta["stripped_ids"] == {"users": 5, "items": 0}
    inter = data.interactions
    assert inter.groupby("user_idx")["domain_idx"].nunique().tolist() == [2, 2, 1, 1]


def test_item_ids_with_surrounding_whitespace_match_their_item_rows_per_domain():
    tables = make_tables(
        [("u1", "a ", "x"), ("u2", "b", "x"), ("u2", "a", "y")],
        items=[("a", "x"), (" b", "x"), ("a", "y")],
    )
    with pytest.warns(UserWarning) as caught:
        data = preprocess(tables)
    assert [str(w.message) for w in caught] == [
        "toy: stripped surrounding whitespace from 2 item id(s), e.g. 'a ' -> 'a'; 2 of them "
        "now name the same item as another id (ids that differ only by surrounding "
        "whitespace are one item, per domain)"
    ]
    assert data.items[["item", "domain", "title"]].values.tolist() == [
        ["a", "x", "t-a"],
        ["b", "x", "t- b"],
        ["a", "y", "t-a"],
    ]
    assert data.interactions[["user_idx", "item_idx"]].values.tolist() == [[0, 0], [1, 1], [1, 2]]
    assert data.meta["stripped_ids"] == {"users": 0, "items": 2}


def test_ids_without_surrounding_whitespace_are_left_alone():
    tables = make_tables([("u 1", "a b", "x")])
    data = preprocess(tables)
    assert (data.users["user"].tolist(), data.items["item"].tolist()) == (["u 1"], ["a b"])
    assert data.meta["stripped_ids"] == {"users": 0, "items": 0}


def test_a_blank_id_and_item_rows_equal_once_stripped_are_errors():
    with pytest.raises(DataError) as err:
        preprocess(make_tables([("u1", "a", "x"), ("  ", "a", "x")]))
    assert str(err.value) == "toy: user id '  ' is only whitespace; every row needs an id"
    tables = make_tables([("u1", "a", "x")], items=[("a", "x"), ("a ", "x")])
    with pytest.warns(UserWarning, match="from 1 item id"), pytest.raises(DataError) as err:
        preprocess(tables)
    assert str(err.value) == (
        "toy: item rows 'a' and 'a ' of domain 'x' differ only by surrounding whitespace, "
        "which is stripped from ids; keep one row"
    )


# ------------------------------------------------------------------- contiguous ids


def test_contiguous_ids_and_order():
    rows = [
        ("u10", "b", "y", 3.0),
        ("u2", "a", "y", 1.0),
        ("u10", "c", "x", 1.0),
        ("u10", "a", "x", 1.0),
        ("u2", "b", "y", 0.0),
    ]
    data = preprocess(make_tables(rows))
    assert isinstance(data, InteractionData)
    assert data.domains == ["x", "y"]
    assert data.users["user"].tolist() == ["u10", "u2"]  # non-numeric ids sort as strings
    assert data.items[["item", "domain", "domain_idx"]].values.tolist() == [
        ["a", "x", 0],
        ["c", "x", 0],
        ["a", "y", 1],
        ["b", "y", 1],
    ]
    assert data.items["title"].tolist() == ["t-a", "t-c", "t-a", "t-b"]
    inter = data.interactions
    assert inter.columns.tolist() == ["user_idx", "item_idx", "domain_idx", "timestamp"]
    assert all(inter[c].dtype == np.int64 for c in ("user_idx", "item_idx", "domain_idx"))
    # By user, then timestamp, then original row order (rows 2 and 3 tie at t=1).
    assert inter.values.tolist() == [
        [0, 1, 0, 1.0],
        [0, 0, 0, 1.0],
        [0, 3, 1, 3.0],
        [1, 3, 1, 0.0],
        [1, 2, 1, 1.0],
    ]
    assert data.meta["domains"] == {
        "x": {"interactions": 2, "users": 1, "items": 2, "items_without_interactions": 0},
        "y": {"interactions": 3, "users": 2, "items": 2, "items_without_interactions": 0},
    }
    np.testing.assert_array_equal(data.item_domain, [0, 0, 1, 1])


def test_integer_ids_sort_numerically():
    data = preprocess(make_tables([("10", "2", "x"), ("9", "10", "x"), ("09", "2", "x")]))
    assert data.users["user"].tolist() == ["09", "9", "10"]  # equal values: string order
    assert data.items["item"].tolist() == ["2", "10"]


def test_users_kg_and_links_follow_the_ids():
    users = pd.DataFrame({"user": ["u2", "u9"], "age": ["30", "40"]})
    kg = pd.DataFrame({"head": ["e1"], "relation": ["r"], "tail": ["e2"]})
    links = pd.DataFrame({"item": ["b", "gone"], "domain": ["x", "x"], "entity": ["e1", "e3"]})
    tables = make_tables(
        [("u2", "a", "x"), ("u1", "b", "x")],
        items=[("a", "x"), ("b", "x"), ("gone", "x")],
        users=users,
        kg=kg,
        item_entity=links,
    )
    data = preprocess(tables)
    assert data.users["user"].tolist() == ["u1", "u2"]
    assert data.users["age"].isna().tolist() == [True, False]
    assert data.users["age"].iloc[1] == "30"
    assert data.items["item"].tolist() == ["a", "b", "gone"]  # "gone": no interactions
    assert data.item_entity.to_dict("list") == {"item_idx": [1, 2], "entity": ["e1", "e3"]}
    pd.testing.assert_frame_equal(data.kg, kg)


def test_item_rows_without_interactions_stay_in_the_catalogue():
    rows = [("u1", "b", "x"), ("u2", "d", "x"), ("u1", "k", "y")]
    items = [("a", "x"), ("b", "x"), ("c", "x"), ("d", "x"), ("k", "y"), ("m", "y")]
    data = preprocess(make_tables(rows, items=items))
    assert data.items[["item", "domain", "domain_idx", "title"]].values.tolist() == [
        ["a", "x", 0, "t-a"],
        ["b", "x", 0, "t-b"],
        ["c", "x", 0, "t-c"],
        ["d", "x", 0, "t-d"],
        ["k", "y", 1, "t-k"],
        ["m", "y", 1, "t-m"],
    ]
    assert data.interactions[["user_idx", "item_idx", "domain_idx"]].values.tolist() == [
        [0, 1, 0],
        [0, 4, 1],
        [1, 3, 0],
    ]
    assert data.meta["num_items"] == data.num_items == 6
    assert data.meta["domains"]["x"] == {
        "interactions": 2,
        "users": 2,
        "items": 4,
        "items_without_interactions": 2,
    }
    assert data.meta["domains"]["y"]["items_without_interactions"] == 1


def test_split_column_is_kept():
    tables = make_tables([("0", "1", "x"), ("0", "2", "x")])
    tables.interactions["split"] = ["train", "test"]
    data = preprocess(tables)
    assert data.interactions["split"].tolist() == ["train", "test"]


# ---------------------------------------------------------------------- real data


def test_real_amazon_kcore5_losing_domains_is_an_error(data_root):
    tables = FolderSource(data_root / "amazon-books-cds-movies").load()
    with pytest.raises(
        DataError,
        match=r"data\.preprocess\.kcore=5 leaves no interactions in domain\(s\) "
        r"\['books', 'cds'\] \(of \['books', 'cds', 'movies'\]\)",
    ):
        preprocess(tables, kcore=5)


def test_real_amazon_kcore(data_root):
    tables = FolderSource(data_root / "amazon-books-cds-movies").load()
    data = preprocess(tables, kcore=3)
    inter = data.interactions
    user_deg = inter.groupby(["user_idx", "domain_idx"]).size()
    item_deg = inter.groupby("item_idx").size()
    assert user_deg.min() >= 3 and item_deg.min() >= 3
    assert len(item_deg) == data.num_items and inter["user_idx"].nunique() == data.num_users
