"""Groups whose metrics are easy to misread are flagged: empty, a repeat, too few users."""

import numpy as np
import pandas as pd

from gnnrec.data.split import Split
from gnnrec.evaluate import GroupFlag, flag_groups, split_tasks

SAME_WARM = (
    "test group 'warm' is the same 3 users as 'all', with the same held-out items and "
    "candidates: its metrics repeat test/all's (metrics.json records test/warm/same_as=all); "
    "gnnrec-report tests them once"
)
EMPTY_COLD = (
    "test group 'cold' has 0 users, though the split's settings call for it: it has no "
    "metrics (metrics.json records test/cold/num_users=0). Check data.split and the "
    "data.preprocess filters"
)


def frame(rows, columns):
    return pd.DataFrame(rows, columns=columns)


def single_domain_split(expected):
    """Three warm users of one domain; every held-out item has a training interaction."""
    train = frame(
        [(0, 0, 0), (0, 1, 0), (1, 1, 0), (1, 2, 0), (2, 2, 0), (2, 0, 0)],
        ["user_idx", "item_idx", "domain_idx"],
    )
    test = frame(
        [(0, 2, "warm"), (1, 0, "warm"), (2, 1, "warm")], ["user_idx", "item_idx", "group"]
    )
    split = Split(train, test.iloc[:0], test, "d", 0, expected)
    return split_tasks(split, np.zeros(4, dtype=np.int64))


def test_a_group_holding_every_user_repeats_all():
    tasks = single_domain_split(("warm",))["test"]
    assert list(tasks) == ["main"]  # no cold item
    flags = flag_groups(tasks, "test", few_users=2)
    assert flags == [GroupFlag("test", "warm", 3, "all", 2)]
    assert flags[0].message() == SAME_WARM
    assert flags[0].records() == {"test/warm/same_as": "all"}


def test_an_expected_group_without_users_is_flagged_and_recorded_as_zero():
    tasks = single_domain_split(("warm", "cold"))["test"]
    flags = flag_groups(tasks, "test", ("warm", "cold"), few_users=2)
    assert [(f.group, f.num_users, f.same_as) for f in flags] == [
        ("warm", 3, "all"),
        ("cold", 0, None),
    ]
    assert flags[1].message() == EMPTY_COLD
    assert flags[1].records() == {"test/cold/num_users": 0}
    # an empty group the settings do not call for (zero_shot here) is not flagged
    assert [f.group for f in flag_groups(tasks, "test", few_users=2)] == ["warm"]


def test_groups_with_fewer_users_than_the_threshold_are_flagged():
    # items 0-1 source, 2-6 target; items 4 and 6 have no training interaction (cold)
    train = frame(
        [(0, 0, 0), (0, 2, 1), (1, 1, 0), (1, 3, 1), (2, 0, 0), (3, 5, 1)],
        ["user_idx", "item_idx", "domain_idx"],
    )
    val = frame([(0, 4, "warm")], ["user_idx", "item_idx", "group"])
    test = frame(
        [(0, 6, "warm"), (1, 5, "warm"), (2, 6, "cold"), (2, 4, "cold")],
        ["user_idx", "item_idx", "group"],
    )
    split = Split(train, val, test, "tgt", 1, ("warm", "cold"))
    tasks = split_tasks(split, np.array([0, 0, 1, 1, 1, 1, 1]))
    flags = flag_groups(tasks["test"], "test", split.expected_groups)
    assert [(f.group, f.num_users, f.same_as) for f in flags] == [
        ("warm", 2, None),
        ("cold", 1, None),
        ("all", 3, None),
        ("cold_item", 2, None),
        ("cold_item_only", 2, None),
    ]
    assert flags[3].message() == (
        "test group 'cold_item' has 2 user(s), fewer than 30: too few to tell runs apart; "
        "gnnrec-report marks its tests"
    )
    assert flags[3].records() == {}  # its num_users is recorded with its metrics
    # validation: one warm user, who is all of it, and whose one positive is cold (so the
    # cold_item task ranks the same user, truth and candidates as main); no cold user
    val_flags = flag_groups(tasks["val"], "val", split.expected_groups, few_users=1)
    assert [(f.group, f.num_users, f.same_as) for f in val_flags] == [
        ("warm", 1, "all"),
        ("cold", 0, None),
        ("cold_item", 1, "all"),
    ]


def test_on_a_zero_shot_domain_the_cold_item_tasks_repeat_all():
    # items 0-1 source, 2-4 target; no target item is trained, so every one is cold
    train = frame([(0, 0, 0), (1, 1, 0), (2, 0, 0)], ["user_idx", "item_idx", "domain_idx"])
    val = frame([(0, 2, "zero_shot")], ["user_idx", "item_idx", "group"])
    test = frame(
        [(1, 3, "zero_shot"), (2, 2, "zero_shot"), (2, 4, "zero_shot")],
        ["user_idx", "item_idx", "group"],
    )
    split = Split(train, val, test, "tgt", 1, ("zero_shot",))
    tasks = split_tasks(split, np.array([0, 0, 1, 1, 1]))["test"]
    flags = flag_groups(tasks, "test", split.expected_groups, few_users=1)
    assert [(f.group, f.num_users, f.same_as) for f in flags] == [
        ("zero_shot", 2, "all"),
        ("cold_item", 2, "all"),
        ("cold_item_only", 2, "all"),
    ]
    (both,) = [f for f in flag_groups(tasks, "test", split.expected_groups) if f.group == "all"]
    assert both.message() == (
        "test group 'all' has 2 user(s), fewer than 30: too few to tell runs apart; "
        "gnnrec-report marks its tests"
    )
    zero_shot = flag_groups(tasks, "test", split.expected_groups)[0]
    assert zero_shot.message() == (
        "test group 'zero_shot' is the same 2 users as 'all', with the same held-out items "
        "and candidates: its metrics repeat test/all's (metrics.json records "
        "test/zero_shot/same_as=all); gnnrec-report tests them once; has 2 user(s), fewer "
        "than 30: too few to tell runs apart; gnnrec-report marks its tests"
    )
