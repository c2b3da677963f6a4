"""Training, fine-tuning and cross-validation of the deep models (Andrearczyk et al., 2021)."""

from hnprog.training.config import SETTINGS, TrainingConfig
from hnprog.training.cv import CVResult, cross_validate
from hnprog.training.finetune import finetune, freeze_encoder, load_start_model
from hnprog.training.trainer import (
    TrainingResult,
    build_model,
    compile_model,
    train_model,
    train_on_cohort,
)

__all__ = [
    "CVResult",
    "SETTINGS",
    "TrainingConfig",
    "TrainingResult",
    "build_model",
    "compile_model",
    "cross_validate",
    "finetune",
    "freeze_encoder",
    "load_start_model",
    "train_model",
    "train_on_cohort",
]
