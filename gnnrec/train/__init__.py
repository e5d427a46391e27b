"""Training: triple sampling and the trainer loop."""

from gnnrec.train.sampler import BPRSampler
from gnnrec.train.trainer import FitResult, Trainer

__all__ = ["BPRSampler", "FitResult", "Trainer"]
