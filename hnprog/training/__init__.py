"""Training, fine-tuning and cross-validation of the deep models (Andrearczyk et al., 2021).

The names are imported lazily: ``hnprog.training.config`` (the settings and their defaults,
which the CLI's ``--help`` shows) loads without Keras.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module that defines it
_PUBLIC_API: dict[str, str] = {
    "CVResult": "hnprog.training.cv",
    "FINETUNE_DEFAULTS": "hnprog.training.config",
    "SETTINGS": "hnprog.training.config",
    "TrainingConfig": "hnprog.training.config",
    "TrainingResult": "hnprog.training.trainer",
    "build_model": "hnprog.training.trainer",
    "compile_model": "hnprog.training.trainer",
    "cross_validate": "hnprog.training.cv",
    "finetune": "hnprog.training.finetune",
    "freeze_encoder": "hnprog.training.finetune",
    "load_start_model": "hnprog.training.finetune",
    "train_model": "hnprog.training.trainer",
    "train_on_cohort": "hnprog.training.trainer",
}

__all__ = sorted(_PUBLIC_API)


def __getattr__(name: str) -> Any:
    module_name = _PUBLIC_API.get(name)
    if module_name is None:
        raise AttributeError(f"module 'hnprog.training' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
