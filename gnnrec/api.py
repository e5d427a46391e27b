"""Python API for notebooks and scripts: compose a config from overrides, run it in process.

    from gnnrec.api import train
    metrics = train(["experiment=cdr_amazon_movies", "model=lightgcn", "seed=1"])
    metrics["test/cold/ndcg@20"]

:func:`train` goes through the same :func:`gnnrec.run.run` as ``gnnrec-train`` and
leaves the same run folder behind (``metrics.json``, ``per_user.parquet``,
``history.json``, ``.hydra/config.yaml`` and ``.hydra/overrides.yaml``), so
``gnnrec-report`` reads runs launched from Python and from the command line alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from gnnrec.config import compose_config
from gnnrec.utils.io import atomic_write

__all__ = ["compose", "train"]


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """The config ``gnnrec-train <overrides>`` would run (``conf/train.yaml``)."""
    if isinstance(overrides, str):
        raise TypeError(
            f"overrides must be a list of strings, got the string {overrides!r}; "
            f"write [{overrides!r}]"
        )
    return compose_config(list(overrides))


def _default_run_dir(cfg: DictConfig) -> Path:
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
    return Path(cfg.paths.log_dir) / str(cfg.task_name) / "runs" / stamp


def train(
    overrides: Sequence[str] = (),
    output_dir: str | Path | None = None,
) -> dict[str, float]:
    """Train and evaluate one configuration in this process; return its metrics.

    Args:
        overrides: Hydra override strings, as on the command line
            (``["model=mf", "seed=2", "trainer.max_epochs=5"]``).
        output_dir: The run folder; by default a new time-stamped folder under
            ``<paths.log_dir>/<task_name>/runs/``, as ``gnnrec-train`` makes.

    Returns:
        The ``metrics.json`` contents: ``"<split>/<group>/<metric>@<k>"`` keys plus
        ``best_epoch``, ``epochs`` and ``time/*``.
    """
    from gnnrec.run import run

    overrides = list(overrides)
    cfg = compose(overrides)
    out = Path(output_dir) if output_dir is not None else _default_run_dir(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    hydra_dir = out / ".hydra"
    hydra_dir.mkdir(parents=True, exist_ok=True)
    for name, node in (("config.yaml", cfg), ("overrides.yaml", OmegaConf.create(overrides))):
        text = OmegaConf.to_yaml(node)
        atomic_write(hydra_dir / name, lambda tmp, text=text: tmp.write_text(text))
    return run(cfg, output_dir=out)
