"""``gnnrec-train``: the Hydra command line around :func:`gnnrec.run.run`."""

from __future__ import annotations

import logging
import math
import os
import sys

import hydra
from omegaconf import DictConfig

from gnnrec.config import CONFIG_DIR, register_resolvers
from gnnrec.errors import GnnrecError

__all__ = ["main"]

log = logging.getLogger(__name__)

register_resolvers()


def _multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Train and evaluate; return the ``optimized_metric`` value for sweepers.

    An error of gnnrec's own validation (a bad key, value or data file) is printed as
    one message and exits with status 1, without a traceback (``HYDRA_FULL_ERROR=1``
    shows it); in a multirun it is raised, so the sweeper records the failed job.
    """
    from gnnrec.report import metrics_table
    from gnnrec.run import monitor_key, run

    try:
        metrics = run(cfg)
    except GnnrecError as err:  # DataError and ConfigError
        if _multirun() or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"gnnrec-train: error: {err}", file=sys.stderr)
        sys.exit(1)
    metrics_table(metrics, title=f"{cfg.data.name}: {cfg.model._target_.rsplit('.', 1)[-1]}")
    key = monitor_key(cfg, has_validation=any(k.startswith("val/") for k in metrics))
    if key is None:
        return None
    value = metrics[key]
    return None if math.isnan(value) else value


if __name__ == "__main__":
    main()
