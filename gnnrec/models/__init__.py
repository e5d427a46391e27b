"""Recommendation models. Each returns ``(user_emb, item_emb)`` from ``forward()``."""

from gnnrec.models.bitgcf import BiTGCF
from gnnrec.models.emcdr import EMCDR
from gnnrec.models.lightgcn import LightGCN
from gnnrec.models.lightgcn_text import LightGCNText, mean_item_embedding
from gnnrec.models.loss import BPRLoss, SoftmaxLoss
from gnnrec.models.mf import MF
from gnnrec.models.pop import Popularity, item_counts
from gnnrec.models.rgcn import RGCN
from gnnrec.models.text_zeroshot import TextZeroShot

__all__ = [
    "BiTGCF",
    "EMCDR",
    "LightGCNText",
    "SoftmaxLoss",
    "TextZeroShot",
    "mean_item_embedding",
    "BPRLoss",
    "LightGCN",
    "MF",
    "Popularity",
    "RGCN",
    "item_counts",
]
