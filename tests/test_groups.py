"""Nothing silently does nothing: real runs flag empty, repeated and tiny user groups, and
user ids that differ only by surrounding whitespace are one user across domains.

Runs of the popularity model (no training) on MovieLens-100K and on small folder datasets.
"""

import json
import logging

import pandas as pd
import pytest

from gnnrec.api import train

COMMON = ["model=pop", "trainer.progress=false", "tracker=none", "eval.sampled_negatives=0"]


def same_as_all(split, group, n):
    return (
        f"{split} group {group!r} is the same {n} users as 'all', with the same held-out items "
        f"and candidates: its metrics repeat {split}/all's (metrics.json records "
        f"{split}/{group}/same_as=all); gnnrec-report tests them once"
    )


def few(split, group, n):
    return (
        f"{split} group {group!r} has {n} user(s), fewer than 30: too few to tell runs apart; "
        "gnnrec-report marks its tests"
    )


def empty(split, group):
    return (
        f"{split} group {group!r} has 0 users, though the split's settings call for it: it "
        f"has no metrics (metrics.json records {split}/{group}/num_users=0). Check data.split "
        "and the data.preprocess filters"
    )


def flagged(caplog, level):
    """The group flags ``gnnrec.run`` logged at ``level``."""
    messages = [r.getMessage() for r in caplog.records if r.name == "gnnrec.run"]
    levels = [r.levelno for r in caplog.records if r.name == "gnnrec.run"]
    return [m for m, lv in zip(messages, levels, strict=True) if lv == level and " group '" in m]


def write_two_domains(folder, books_user, movies_user):
    """40 users a domain, 10 items each; user ``u`` rates items ``u .. u+4`` (mod 10) in time
    order, so every held-out item also has training interactions (no cold item)."""
    folder.mkdir()
    for domain, user in (("books", books_user), ("movies", movies_user)):
        rows = [(user(u), f"{domain[0]}{(u + j) % 10}", j) for u in range(40) for j in range(5)]
        pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).to_csv(
            folder / f"{domain}.inter.csv", index=False
        )
        items = pd.DataFrame({"item_id": [f"{domain[0]}{i}" for i in range(10)]})
        items.assign(title=items["item_id"]).to_csv(folder / f"{domain}.item.csv", index=False)


def folder_overrides(folder, cache_dir):
    return [
        *COMMON,
        "data=folder",
        f"data.path={folder}",
        "data.target_domain=movies",
        f"paths.cache_dir={cache_dir}",
    ]


def test_ml100k_flags_warm_as_a_repeat_of_all_and_the_two_cold_item_users(
    cache_dir, tmp_path, data_root, caplog
):
    caplog.set_level(logging.INFO, logger="gnnrec.run")
    out = tmp_path / "run"
    metrics = train([*COMMON, "data=ml100k", f"paths.cache_dir={cache_dir}"], output_dir=out)
    assert flagged(caplog, logging.WARNING) == [
        same_as_all("test", "warm", 943),
        few("test", "cold_item", 2),
        few("test", "cold_item_only", 2),
    ]
    assert flagged(caplog, logging.INFO) == [
        same_as_all("val", "warm", 943),
        few("val", "cold_item", 1),
        few("val", "cold_item_only", 1),
    ]
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == metrics
    assert (saved["test/warm/same_as"], saved["val/warm/same_as"]) == ("all", "all")
    assert saved["test/cold_item/num_users"] == 2 and saved["val/cold_item/num_users"] == 1
    # single-domain data calls for no cold-start user: no cold group is recorded
    assert not any(k.startswith(("test/cold/", "val/cold/")) for k in saved)
    assert saved["test/warm/ndcg@20"] == saved["test/all/ndcg@20"]


def test_two_domains_without_a_shared_user_record_an_empty_cold_group(cache_dir, tmp_path, caplog):
    folder = tmp_path / "disjoint"
    write_two_domains(folder, lambda u: f"b{u:02d}", lambda u: f"m{u:02d}")
    caplog.set_level(logging.INFO, logger="gnnrec.run")
    with pytest.warns(UserWarning, match=r"cold_fraction=0.2 gives NO cold-start users"):
        metrics = train(folder_overrides(folder, cache_dir), output_dir=tmp_path / "run")
    assert flagged(caplog, logging.WARNING) == [
        same_as_all("test", "warm", 40),
        empty("test", "cold"),
    ]
    assert flagged(caplog, logging.INFO) == [
        same_as_all("val", "warm", 40),
        empty("val", "cold"),
    ]
    assert (metrics["test/cold/num_users"], metrics["val/cold/num_users"]) == (0, 0)
    assert metrics["test/warm/same_as"] == "all" and metrics["test/warm/num_users"] == 40


def test_user_ids_differing_by_whitespace_across_domains_are_one_user(cache_dir, tmp_path):
    folder = tmp_path / "spaced"
    write_two_domains(folder, lambda u: f"u{u:02d}", lambda u: f" u{u:02d}")
    assert (folder / "movies.inter.csv").read_text().splitlines()[1] == " u00,m0,0"
    with pytest.warns(UserWarning) as caught:
        metrics = train(folder_overrides(folder, cache_dir), output_dir=tmp_path / "run")
    assert (
        f"{folder.resolve()}: stripped surrounding whitespace from 40 user id(s), e.g. ' u00' -> "
        "'u00'; 40 of them now name the same user as another id (ids that differ only by "
        "surrounding whitespace are one user, across domains)"
    ) in [str(w.message) for w in caught]
    # 40 shared users: round(0.2 * 40) = 8 cold-start users (4 in the test split), 32 warm
    assert (metrics["test/cold/num_users"], metrics["test/warm/num_users"]) == (4, 32)
    rows = pd.read_parquet(tmp_path / "run" / "per_user.parquet")
    main = rows[rows["task"] == "main"]
    assert len(main) == 36 and set(main["user_id"]) <= {f"u{u:02d}" for u in range(40)}
