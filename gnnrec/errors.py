"""Errors of gnnrec's own validation: the message names the key, file or value at fault.

The command line prints them as one line (no traceback); ``HYDRA_FULL_ERROR=1`` or the
Python API shows the traceback.
"""

from __future__ import annotations

__all__ = ["ConfigError", "GnnrecError"]


class GnnrecError(Exception):
    """Base of the errors a user fixes in their config or data."""


class ConfigError(GnnrecError, ValueError):
    """A config value that cannot work; the message names the key the user sets."""
