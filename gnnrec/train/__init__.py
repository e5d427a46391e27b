"""Training: batches of pairs and negatives, compatibility checks, the trainer loop."""

from gnnrec.train.checks import check_training
from gnnrec.train.identity import identity_differences, run_identity
from gnnrec.train.sampler import InBatchSampler, NegativeSampler
from gnnrec.train.trainer import FitResult, Trainer

__all__ = [
    "FitResult",
    "InBatchSampler",
    "NegativeSampler",
    "Trainer",
    "check_training",
    "identity_differences",
    "run_identity",
]
