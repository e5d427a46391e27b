"""Config composition outside the command line (tests, notebooks, scripts)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

__all__ = [
    "CONFIG_DIR",
    "ROOT",
    "compose_config",
    "register_resolvers",
    "study_seed",
    "text_cold_search_space",
]

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "conf"


def study_seed(base: int, db_path: str, study_name: str) -> int:
    """``base`` plus the number of trials an Optuna SQLite study already holds.

    Resuming a study with the same sampler seed would redraw its random start-up
    trials; offsetting the seed by the trials done gives new ones and stays
    reproducible. A missing file or study counts as no trials.
    """
    path = Path(db_path)
    if not path.is_file():
        return int(base)
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            (count,) = db.execute(
                "SELECT COUNT(*) FROM trials t JOIN studies s ON t.study_id = s.study_id "
                "WHERE s.study_name = ?",
                (study_name,),
            ).fetchone()
    except sqlite3.Error:
        return int(base)
    return int(base) + int(count)


ALIGN_WEIGHTS = (0.0, 0.1, 0.5)
"""``model.align_weight`` choices of ``hparams_search=lightgcn_text_cold_optuna``."""


def text_cold_search_space(cfg: DictConfig, trial: Any) -> None:
    """The conditional dimension of ``hparams_search=lightgcn_text_cold_optuna``.

    Optuna's ``hydra.sweeper.params`` are independent dimensions, but
    ``model.align_weight > 0`` is refused with ``model.id_embedding=false`` (nothing to
    align), and a refused trial would stop the sweep. So ``model.align_weight`` is drawn
    from :data:`ALIGN_WEIGHTS` here (``hydra.sweeper.custom_search_space``), after the
    other dimensions, only in trials with ID embeddings; the others keep the config's
    value (0.0). A value fixed on the command line is kept.

    Args:
        cfg: The sweep's config.
        trial: The Optuna trial, its other parameters already drawn.
    """
    key = "model.id_embedding"
    fusion = trial.params.get(key, trial.user_attrs.get(key, cfg.model.id_embedding))
    if fusion is not False and "model.align_weight" not in trial.user_attrs:
        trial.suggest_categorical("model.align_weight", list(ALIGN_WEIGHTS))


def register_resolvers() -> None:
    """Register ``${gnnrec_root:}`` (the repository root) and ``${study_seed:...}``."""
    OmegaConf.register_new_resolver("gnnrec_root", lambda: str(ROOT), replace=True)
    OmegaConf.register_new_resolver("study_seed", study_seed, replace=True)


def compose_config(overrides: Sequence[str] = (), config_name: str = "train") -> DictConfig:
    """Compose the config as ``gnnrec-train`` would, from Hydra override strings.

    ``paths.output_dir`` (set by Hydra at launch) is left unresolved; pass an output
    folder to :func:`gnnrec.run.run` instead.
    """
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides))


register_resolvers()
