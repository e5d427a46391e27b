"""Training: batches of pairs and negatives, compatibility checks, learning-rate schedules,
the trainer loop."""

from gnnrec.train.checks import check_training
from gnnrec.train.identity import identity_differences, run_identity
from gnnrec.train.sampler import InBatchSampler, NegativeSampler
from gnnrec.train.schedule import CosineSchedule, PlateauSchedule, Schedule, WarmupCosineLR
from gnnrec.train.trainer import FitResult, Trainer

__all__ = [
    "CosineSchedule",
    "FitResult",
    "InBatchSampler",
    "NegativeSampler",
    "PlateauSchedule",
    "Schedule",
    "Trainer",
    "WarmupCosineLR",
    "check_training",
    "identity_differences",
    "run_identity",
]
