"""Experiment tracking: trackers and example recommendations."""

from gnnrec.track.examples import example_recommendations, item_titles
from gnnrec.track.trackers import (
    FAST_SETTINGS,
    NullTracker,
    WandbTracker,
    flatten_config,
    hydra_sweep,
    read_overrides,
)

__all__ = [
    "FAST_SETTINGS",
    "NullTracker",
    "WandbTracker",
    "example_recommendations",
    "flatten_config",
    "hydra_sweep",
    "item_titles",
    "read_overrides",
]
