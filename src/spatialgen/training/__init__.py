"""Training: the LightningModule base, EMA, atomic checkpoints, pre-emption, non-finite guards.

The concrete ViSAGe/ViSAudio LightningModules subclass :class:`SpatialAudioModule`.
"""

from spatialgen.data.resumable import ResumableDataLoader
from spatialgen.training.base import SpatialAudioModule
from spatialgen.training.checkpoint import AtomicCheckpointIO, atomic_torch_save
from spatialgen.training.ema import EMA, ema_state_dict_from_checkpoint
from spatialgen.training.guards import NonFiniteGuard, NonFiniteTrainingError
from spatialgen.training.preemption import PreemptionCheckpoint
from spatialgen.training.writer import PredictionWriter

__all__ = [
    "EMA",
    "AtomicCheckpointIO",
    "NonFiniteGuard",
    "NonFiniteTrainingError",
    "PredictionWriter",
    "PreemptionCheckpoint",
    "ResumableDataLoader",
    "SpatialAudioModule",
    "atomic_torch_save",
    "ema_state_dict_from_checkpoint",
]
