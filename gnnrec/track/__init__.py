"""Experiment tracking."""

from gnnrec.track.trackers import NullTracker, WandbTracker

__all__ = ["NullTracker", "WandbTracker"]
