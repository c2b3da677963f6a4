"""Deprecated: :mod:`hnprog.radiomics.extract` was split into three modules.

- :mod:`hnprog.radiomics.params`: ``load_params``, ``feature_names``, ``DEFAULT_PARAMS``;
- :mod:`hnprog.radiomics.features`: one patient, ``crop_and_resample``, ``extract_features``;
- :mod:`hnprog.radiomics.cohort`: ``extract_cohort_features``, ``read_features``,
  ``check_finite_features``.

This module re-exports their names for one release and warns when imported.
"""

from __future__ import annotations

import warnings

from hnprog.radiomics.cohort import (
    ID_COLUMN,
    check_finite_features,
    extract_cohort_features,
    extract_patient,
    read_features,
)
from hnprog.radiomics.features import PatientRecord, crop_and_resample, extract_features
from hnprog.radiomics.params import DEFAULT_PARAMS, feature_names, load_params

__all__ = [
    "DEFAULT_PARAMS",
    "ID_COLUMN",
    "PatientRecord",
    "check_finite_features",
    "crop_and_resample",
    "extract_cohort_features",
    "extract_features",
    "extract_patient",
    "feature_names",
    "load_params",
    "read_features",
]

warnings.warn(
    "hnprog.radiomics.extract is deprecated and will be removed in the next release; import "
    "from hnprog.radiomics (or hnprog.radiomics.params, hnprog.radiomics.features, "
    "hnprog.radiomics.cohort) instead.",
    DeprecationWarning,
    stacklevel=2,
)
