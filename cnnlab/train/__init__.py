"""Training: ``fit``/``evaluate``/``predict``, metrics, callbacks, checkpoints, progress display.

>>> from cnnlab import train
>>> train.metrics.accuracy([0, 1, 1], [0, 1, 0])
0.6666666666666666
"""

from . import metrics
from .callbacks import Callback, EarlyStopping, ModelCheckpoint, TrainingContext
from .checkpoint import (
    Checkpoint,
    CheckpointError,
    checkpoint_path,
    load_checkpoint,
    restore,
    restore_model,
    restore_training,
    save_checkpoint,
)
from .loop import History, Terminated, TrainingDiverged, evaluate, fit, predict

__all__ = [
    "Callback", "Checkpoint", "CheckpointError", "EarlyStopping", "History", "ModelCheckpoint",
    "Terminated", "TrainingContext", "TrainingDiverged", "checkpoint_path", "evaluate", "fit",
    "load_checkpoint", "metrics", "predict", "restore", "restore_model", "restore_training",
    "save_checkpoint",
]
