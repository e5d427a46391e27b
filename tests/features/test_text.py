import numpy as np
import pandas as pd
import pytest

from gnnrec.data.schema import DataError
from gnnrec.features.text import item_texts, template_fields, user_profiles

TEMPLATE = "{title}. By {brand}. Category: {category}"


def test_template_fields_in_order():
    assert template_fields(TEMPLATE) == ["title", "brand", "category"]
    with pytest.raises(ValueError, match="plain column names"):
        template_fields("{title[0]}")


def test_item_texts_drop_missing_fields_cleanly():
    items = pd.DataFrame(
        {
            "title": ["Heat", "Up", None, None],
            "brand": ["Michael Mann", None, "Pixar", None],
            "category": ["['Movies', 'Drama']", "", np.nan, None],
        }
    )
    assert item_texts(items, TEMPLATE) == [
        "Heat. By Michael Mann. Category: Movies, Drama",
        "Up",
        "By Pixar",
        "",
    ]


def test_item_texts_keep_trailing_literal_only_after_a_filled_field():
    items = pd.DataFrame({"title": ["A", ""]})
    assert item_texts(items, "Movie: {title}.") == ["Movie: A.", ""]


def test_item_texts_name_the_missing_column():
    with pytest.raises(DataError, match=r"\['brand'\].*data.text.template"):
        item_texts(pd.DataFrame({"title": ["x"]}), "{title} {brand}")


def test_user_profiles_take_the_most_recent_training_items_oldest_first():
    train = pd.DataFrame(
        {
            "user_idx": [0, 0, 0, 1, 0],
            "item_idx": [0, 1, 2, 3, 4],
            "timestamp": [50, 10, 30, 5, 40],
        }
    )
    titles = ["a", "b", "c", "d", ""]
    # user 0 by time: b(10) c(30) [empty](40) a(50); last 3 = c, "", a; empty titles dropped.
    assert user_profiles(train, titles, num_users=3, max_items=3) == ["c; a", "d", ""]


def test_user_profiles_without_timestamps_use_row_order():
    train = pd.DataFrame({"user_idx": [1, 1, 1], "item_idx": [2, 0, 1]})
    assert user_profiles(train, ["x", "y", "z"], num_users=2, max_items=2) == ["", "x; y"]
    with pytest.raises(ValueError, match="profile_items"):
        user_profiles(train, ["x", "y", "z"], num_users=2, max_items=0)


def test_user_profiles_reject_empty_timestamps():
    train = pd.DataFrame(
        {"user_idx": [0, 0, 0], "item_idx": [0, 1, 2], "timestamp": [10.0, np.nan, 30.0]}
    )
    with pytest.raises(
        DataError, match=r"training interactions: column 'timestamp' is empty in 1 of 3 rows"
    ):
        user_profiles(train, ["x", "y", "z"], num_users=1, max_items=2)


def test_user_profiles_break_equal_timestamps_by_row_order():
    train = pd.DataFrame(
        {"user_idx": [0, 0, 0, 0], "item_idx": [3, 1, 2, 0], "timestamp": [5.0, 7.0, 7.0, 7.0]}
    )
    titles = ["a", "b", "c", "d"]
    assert user_profiles(train, titles, num_users=1, max_items=2) == ["c; a"]
