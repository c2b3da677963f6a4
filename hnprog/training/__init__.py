"""Training, fine-tuning and cross-validation of the deep models (Andrearczyk et al., 2021)."""

from hnprog.training.config import SETTINGS, TrainingConfig
from hnprog.training.trainer import TrainingResult, build_model, compile_model, train_model

__all__ = [
    "SETTINGS",
    "TrainingConfig",
    "TrainingResult",
    "build_model",
    "compile_model",
    "train_model",
]
