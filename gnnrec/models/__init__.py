"""Recommendation models, each a :class:`Recommender` (see :mod:`gnnrec.models.base`).

Models are imported on first use (``gnnrec.models.RGCN`` loads torch_geometric's
convolutions only when asked for), so a run pays only for the model it trains.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from gnnrec.models.base import Recommender, StepOutputs, TrainingData, build_from_data
from gnnrec.models.loss import BPRLoss, RankingLoss, SoftmaxLoss

if TYPE_CHECKING:
    from gnnrec.models.bitgcf import BiTGCF
    from gnnrec.models.blend import Blend
    from gnnrec.models.ease import EASE
    from gnnrec.models.emcdr import EMCDR
    from gnnrec.models.gfcf import GFCF
    from gnnrec.models.itemknn import ItemKNN
    from gnnrec.models.lightgcn import LightGCN
    from gnnrec.models.lightgcn_text import LightGCNText, mean_item_embedding
    from gnnrec.models.mf import MF
    from gnnrec.models.pop import Popularity
    from gnnrec.models.random import RandomRanking
    from gnnrec.models.rgcn import RGCN
    from gnnrec.models.text_zeroshot import TextZeroShot

_LAZY = {
    "BiTGCF": "bitgcf",
    "Blend": "blend",
    "EASE": "ease",
    "EMCDR": "emcdr",
    "GFCF": "gfcf",
    "ItemKNN": "itemknn",
    "LightGCN": "lightgcn",
    "LightGCNText": "lightgcn_text",
    "mean_item_embedding": "lightgcn_text",
    "MF": "mf",
    "Popularity": "pop",
    "RandomRanking": "random",
    "RGCN": "rgcn",
    "TextZeroShot": "text_zeroshot",
}

__all__ = [
    "EASE",
    "EMCDR",
    "GFCF",
    "MF",
    "RGCN",
    "BPRLoss",
    "BiTGCF",
    "Blend",
    "ItemKNN",
    "LightGCN",
    "LightGCNText",
    "Popularity",
    "RandomRanking",
    "RankingLoss",
    "Recommender",
    "SoftmaxLoss",
    "StepOutputs",
    "TextZeroShot",
    "TrainingData",
    "build_from_data",
    "mean_item_embedding",
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"gnnrec.models.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'gnnrec.models' has no attribute {name!r}")
