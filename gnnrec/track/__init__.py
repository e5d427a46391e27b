"""Experiment tracking: trackers, example recommendations and offline-run reading."""

from gnnrec.track.examples import example_recommendations, item_titles
from gnnrec.track.offline import OfflineArtifact, OfflineRun, read_offline_run
from gnnrec.track.trackers import (
    NullTracker,
    WandbTracker,
    flatten_config,
    hydra_sweep,
    read_overrides,
)

__all__ = [
    "NullTracker",
    "OfflineArtifact",
    "OfflineRun",
    "WandbTracker",
    "example_recommendations",
    "flatten_config",
    "hydra_sweep",
    "item_titles",
    "read_offline_run",
    "read_overrides",
]
