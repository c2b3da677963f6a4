"""The handcrafted radiomics baseline of Andrearczyk et al. (2021).

- :mod:`hnprog.radiomics.params`: the pinned params file of the paper's 274 PyRadiomics
  features (inside the GTVt, on a 2 mm grid) plus six PET measures on the PET's native grid
  (SUVmax, SUVpeak, MTV, TLG), and their names;
- :mod:`hnprog.radiomics.features`: the features of one patient, from the images the patient
  loader returns;
- :mod:`hnprog.radiomics.cohort`: a cohort (parallel, cached, with a failures file) and the
  features table;
- :mod:`hnprog.radiomics.baseline`: :class:`RadiomicsCoxPipeline`, the feature selection and
  Cox model, as a scikit-survival-style estimator;
- :mod:`hnprog.radiomics.cv`: cross-validation with the paper's splits and a Table-1 report.
"""

from __future__ import annotations

import importlib
from typing import Any

# Imported lazily: extraction workers only need ``features``, not scikit-learn.
_NAMES = {
    "RadiomicsCoxPipeline": "hnprog.radiomics.baseline",
    "RadiomicsCVResult": "hnprog.radiomics.cv",
    "run_radiomics_cv": "hnprog.radiomics.cv",
    "DEFAULT_PARAMS": "hnprog.radiomics.params",
    "NATIVE_PET_FEATURES": "hnprog.radiomics.params",
    "feature_names": "hnprog.radiomics.params",
    "load_params": "hnprog.radiomics.params",
    "extract_features": "hnprog.radiomics.features",
    "native_pet_features": "hnprog.radiomics.features",
    "read_case": "hnprog.radiomics.features",
    "extract_cohort_features": "hnprog.radiomics.cohort",
    "extract_patient": "hnprog.radiomics.cohort",
    "read_features": "hnprog.radiomics.cohort",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    module_name = _NAMES.get(name)
    if module_name is None:
        raise AttributeError(f"module 'hnprog.radiomics' has no attribute {name!r}")
    return getattr(importlib.import_module(module_name), name)


def __dir__() -> list[str]:
    return __all__
