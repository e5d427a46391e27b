"""Experiment tracking: trackers, example recommendations and the run folder's record."""

from gnnrec.track.examples import example_recommendations, item_titles
from gnnrec.track.run_folder import (
    check_recorded_config,
    check_run_folder,
    clear_run_folder,
    config_fingerprint,
)
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
    "check_recorded_config",
    "check_run_folder",
    "clear_run_folder",
    "config_fingerprint",
    "example_recommendations",
    "flatten_config",
    "hydra_sweep",
    "item_titles",
    "read_overrides",
]
