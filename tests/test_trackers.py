import numpy as np
import pandas as pd
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from gnnrec.evaluate.evaluator import RankingTask
from gnnrec.track import (
    NullTracker,
    WandbTracker,
    example_recommendations,
    flatten_config,
    hydra_sweep,
    item_titles,
    read_overrides,
)
from gnnrec.track.examples import EXAMPLE_COLUMNS


def test_null_tracker_accepts_the_protocol(tmp_path):
    tracker = NullTracker()
    tracker.start({"a": 1}, tmp_path)
    tracker.log({"train/loss": 0.1}, step=0)
    tracker.finish({"test/all/ndcg@20": 0.2})
    assert list(tmp_path.iterdir()) == []


def test_wandb_mode_is_validated():
    with pytest.raises(ValueError, match="tracker.mode"):
        WandbTracker(mode="sometimes")


def test_null_tracker_ignores_tables_and_files(tmp_path):
    tracker = NullTracker()
    tracker.start({"a": 1}, tmp_path)
    tracker.log_table("examples", pd.DataFrame({"x": [1]}))
    tracker.save(tmp_path / "missing.parquet")
    tracker.finish()
    assert list(tmp_path.iterdir()) == []


def test_flatten_config_resolves_what_it_can():
    cfg = OmegaConf.create(
        {
            "task_name": "exp",
            "tracker": {"group": "${task_name}", "tags": ["a"]},
            "paths": {"output_dir": "${hydra:runtime.output_dir}"},
            "model": {"dims": [1, 2], "opts": {}},
        }
    )
    assert flatten_config(cfg) == {
        "task_name": "exp",
        "tracker.group": "exp",
        "tracker.tags": ["a"],
        "paths.output_dir": "${hydra:runtime.output_dir}",
        "model.dims": [1, 2],
        "model.opts": {},
    }
    assert flatten_config({"a": {"b": {"c": 1}}, "d": None}) == {"a.b.c": 1, "d": None}


def test_overrides_come_from_the_run_folder(tmp_path):
    assert read_overrides(tmp_path) == []
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.yaml").write_text("- model=mf\n- seed=2\n")
    assert read_overrides(tmp_path) == ["model=mf", "seed=2"]
    (tmp_path / ".hydra" / "overrides.yaml").write_text("model: mf\n")
    with pytest.raises(ValueError, match="overrides.yaml"):
        read_overrides(tmp_path)


def test_no_sweep_outside_a_hydra_multirun():
    assert hydra_sweep() == {}


def test_automatic_tags_come_from_config_keys():
    tracker = WandbTracker(
        tags=["mine"],
        tag_keys={"model": "model._target_", "data": "data.name", "zs": "data.zero_shot_domain"},
    )
    flat = {"model._target_": "gnnrec.models.LightGCN", "data.name": "amazon_bcm"}
    assert tracker._auto_tags({**flat, "data.zero_shot_domain": None}) == [
        "model:LightGCN",
        "data:amazon_bcm",
    ]
    with pytest.raises(TypeError, match="tracker.tags"):
        WandbTracker(tags="mine")


def _task() -> RankingTask:
    # Users 0 (warm) and 1 (cold); candidates are items 0..4 of 6 items.
    return RankingTask.from_pairs(
        users_of_truth=[0, 1, 1],
        items_of_truth=[2, 3, 4],
        candidates=[0, 1, 2, 3, 4],
        exclude_users=[0, 0, 1, 1, 1],
        exclude_items=[0, 5, 0, 1, 2],
        groups_by_user={"warm": [0], "cold": [1]},
    )


def test_example_recommendations_rank_unmasked_candidates():
    # 1-d scores: item i scores 10 - i, so item 0 (masked for both users) would win.
    user_emb = torch.ones(2, 1)
    item_emb = torch.tensor([[10.0], [9.0], [8.0], [7.0], [6.0], [100.0]])
    titles = np.array(["A", "B", "C", "D", "E", "F"], dtype=object)
    frame = example_recommendations(
        user_emb, item_emb, _task(), titles, num_users=5, k=3, user_names=["u0", "u1"]
    )
    assert list(frame.columns) == list(EXAMPLE_COLUMNS)
    warm = frame[frame["user_idx"] == 0]
    assert warm["item_idx"].tolist() == [1, 2, 3]  # item 5 is not a candidate, 0 is masked
    assert warm["title"].tolist() == ["B", "C", "D"]
    assert warm["hit"].tolist() == [False, True, False]
    assert warm["score"].tolist() == [9.0, 8.0, 7.0]
    assert set(warm["group"]) == {"warm"} and set(warm["user"]) == {"u0"}
    assert set(warm["truth_titles"]) == {"C"}
    cold = frame[frame["user_idx"] == 1]  # only two unmasked candidates: two rows
    assert cold["item_idx"].tolist() == [3, 4] and cold["hit"].all()
    assert cold["rank"].tolist() == [1, 2] and set(cold["truth_titles"]) == {"D | E"}


def test_example_recommendations_of_a_scorer_equal_those_of_its_scores():
    from gnnrec.nn import Scorer

    class Table(Scorer):
        def __init__(self, scores):
            super().__init__(*scores.shape, dtype=scores.dtype)
            self.scores = scores

        def against(self, items):
            return lambda users: self.scores[users][:, items]

    scores = torch.tensor([[10.0, 9.0, 8.0, 7.0, 6.0, 100.0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])
    titles = np.array(list("ABCDEF"), dtype=object)
    expected = example_recommendations(scores, torch.eye(6), _task(), titles, k=3)
    frame = example_recommendations(Table(scores), None, _task(), titles, k=3)
    pd.testing.assert_frame_equal(frame, expected)
    assert frame[frame["user_idx"] == 0]["item_idx"].tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="titles has 2 entries but there are 6 items"):
        example_recommendations(Table(scores), None, _task(), titles[:2])


def test_example_users_are_drawn_from_every_group_and_seeded():
    emb = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    titles = np.array(list("ABCDEF"), dtype=object)
    one = example_recommendations(emb[:2], emb, _task(), titles, num_users=2, k=2, seed=1)
    assert set(one["group"]) == {"warm", "cold"}
    again = example_recommendations(emb[:2], emb, _task(), titles, num_users=2, k=2, seed=1)
    pd.testing.assert_frame_equal(one, again)
    assert (
        example_recommendations(emb[:2], emb, _task(), titles, num_users=1)["user_idx"].nunique()
        == 1
    )
    with pytest.raises(ValueError, match="titles has 2 entries"):
        example_recommendations(emb[:2], emb, _task(), titles[:2])


def test_item_titles_fall_back_to_item_ids():
    items = pd.DataFrame({"item": ["i0", "i1", "i2"], "title": ["Up", None, " "]})
    assert item_titles(items, "title").tolist() == ["Up", "i1", "i2"]
    assert item_titles(items[["item"]], "title").tolist() == ["i0", "i1", "i2"]
    with pytest.raises(ValueError, match="'item' column"):
        item_titles(items[["title"]], "title")


def test_tracker_none_ignores_settings_an_experiment_sets():
    from gnnrec.config import compose_config

    cfg = compose_config(["experiment=cdr_amazon_movies", "tracker=none", "+tracker.tags=[a]"])
    tracker = instantiate(cfg.tracker)
    assert type(tracker).__name__ == "NullTracker" and tracker.ignored_settings == {"tags": ["a"]}
