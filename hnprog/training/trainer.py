"""Deprecated: the training loop moved to :mod:`hnprog.training.fit` and the cohort runs to
:mod:`hnprog.training.runs`; this module re-exports them for one release."""

from __future__ import annotations

import warnings
from typing import Any

from hnprog.training.fit import (  # noqa: F401
    CHECKPOINT_DIR,
    CONFIG_FILE,
    LEGACY_MODEL_FILE as MODEL_FILE,
    LEGACY_PREPROCESSING_FILE as PREPROCESSING_FILE,
    PRESET_DIR,
    TrainingResult,
    build_model,
    compile_model,
    distribution_scope,
    export_preset,
    precision_policy,
    prepare_run_folder,
    train_model,
)
from hnprog.training.runs import (  # noqa: F401
    check_training_set,
    cohort_datasets,
    predict_dataset,
    train_on_cohort,
)

warnings.warn(
    "hnprog.training.trainer is deprecated and will be removed in the next release; import "
    "from hnprog.training, hnprog.training.fit or hnprog.training.runs",
    DeprecationWarning,
    stacklevel=2,
)


def preprocess_config(config: Any) -> Any:
    """Deprecated: ``config.preprocessing``."""
    return config.preprocessing
