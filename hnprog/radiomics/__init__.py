"""The handcrafted radiomics baseline of Andrearczyk et al. (2021).

- :mod:`hnprog.radiomics.extract`: the paper's 274 PyRadiomics features inside the GTVt, for
  one patient or a cohort (parallel, cached, with a failures file);
- :mod:`hnprog.radiomics.baseline`: :class:`RadiomicsCoxPipeline`, the feature selection and
  Cox model, as a scikit-survival-style estimator;
- :mod:`hnprog.radiomics.cv`: cross-validation with the paper's splits and a Table-1 report.
"""

from hnprog.radiomics.baseline import RadiomicsCoxPipeline
from hnprog.radiomics.cv import RadiomicsCVResult, run_radiomics_cv
from hnprog.radiomics.extract import (
    DEFAULT_PARAMS,
    extract_cohort_features,
    extract_features,
    feature_names,
    read_features,
)

__all__ = [
    "DEFAULT_PARAMS",
    "RadiomicsCVResult",
    "RadiomicsCoxPipeline",
    "extract_cohort_features",
    "extract_features",
    "feature_names",
    "read_features",
    "run_radiomics_cv",
]
