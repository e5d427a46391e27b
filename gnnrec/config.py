"""Config composition outside the command line (tests, notebooks, scripts)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

__all__ = ["CONFIG_DIR", "ROOT", "compose_config", "register_resolvers"]

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "conf"


def register_resolvers() -> None:
    """Register ``${gnnrec_root:}`` (the repository root) with OmegaConf."""
    OmegaConf.register_new_resolver("gnnrec_root", lambda: str(ROOT), replace=True)


def compose_config(overrides: Sequence[str] = (), config_name: str = "train") -> DictConfig:
    """Compose the config as ``gnnrec-train`` would, from Hydra override strings.

    ``paths.output_dir`` (set by Hydra at launch) is left unresolved; pass an output
    folder to :func:`gnnrec.run.run` instead.
    """
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides))


register_resolvers()
