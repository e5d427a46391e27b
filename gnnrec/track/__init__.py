"""Experiment tracking."""

from gnnrec.track.offline import OfflineRun, read_offline_run
from gnnrec.track.trackers import NullTracker, WandbTracker

__all__ = ["NullTracker", "OfflineRun", "WandbTracker", "read_offline_run"]
