"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_root() -> Path:
    """Folder with the real datasets: ``$GNNREC_DATA_DIR`` or ``<repo>/../shared/data``."""
    root = Path(os.environ.get("GNNREC_DATA_DIR", REPO.parent / "shared" / "data"))
    if not root.is_dir():
        pytest.skip(f"real data folder {root} not found; set GNNREC_DATA_DIR")
    return root


@pytest.fixture
def offline_hub(monkeypatch):
    """No Hugging Face network lookups: models come from local folders only."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def wandb_offline_home(tmp_path_factory):
    """W&B stays offline and stages its files (tables, artifacts) in a temporary folder."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        mp.setenv("WANDB_DATA_DIR", str(tmp_path_factory.mktemp("wandb_data")))
        mp.setenv("WANDB_CACHE_DIR", str(tmp_path_factory.mktemp("wandb_cache")))
        yield


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One processed-data and embedding cache for the session's real-data runs."""
    return tmp_path_factory.mktemp("cache")
