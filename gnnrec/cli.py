"""``gnnrec-train``: the Hydra command line around :func:`gnnrec.run.run`."""

from __future__ import annotations

import logging
import math

import hydra
from omegaconf import DictConfig

from gnnrec.config import CONFIG_DIR, register_resolvers
from gnnrec.report import metrics_table

__all__ = ["main"]

log = logging.getLogger(__name__)

register_resolvers()


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Train and evaluate; return ``cfg.optimized_metric`` for sweepers."""
    from gnnrec.run import run

    metrics = run(cfg)
    metrics_table(metrics, title=f"{cfg.data.name}: {cfg.model._target_.rsplit('.', 1)[-1]}")
    key = cfg.get("optimized_metric")
    if not key:
        return None
    if key not in metrics:
        raise KeyError(
            f"optimized_metric={key!r} is not in metrics.json; keys: {sorted(metrics)[:10]}..."
        )
    value = metrics[key]
    return None if math.isnan(value) else value


if __name__ == "__main__":
    main()
