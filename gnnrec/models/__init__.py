"""Recommendation models. Each returns ``(user_emb, item_emb)`` from ``forward()``."""

from gnnrec.models.lightgcn import LightGCN
from gnnrec.models.loss import BPRLoss
from gnnrec.models.mf import MF
from gnnrec.models.pop import Popularity, item_counts

__all__ = ["BPRLoss", "LightGCN", "MF", "Popularity", "item_counts"]
