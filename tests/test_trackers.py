import pytest

from gnnrec.track import NullTracker, WandbTracker


def test_null_tracker_accepts_the_protocol(tmp_path):
    tracker = NullTracker()
    tracker.start({"a": 1}, tmp_path)
    tracker.log({"train/loss": 0.1}, step=0)
    tracker.finish({"test/all/ndcg@20": 0.2})
    assert list(tmp_path.iterdir()) == []


def test_wandb_mode_is_validated():
    with pytest.raises(ValueError, match="tracker.mode"):
        WandbTracker(mode="sometimes")


def test_wandb_disabled_mode_writes_no_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    tracker = WandbTracker(mode="disabled")
    tracker.start({"a": 1}, tmp_path)
    tracker.log({"x": 1.0}, step=0)
    tracker.finish({"y": 2.0})
    assert not list(tmp_path.glob("wandb/offline-run-*"))
