"""The clinical Cox model, cross-validated like the radiomics baseline, and deep + clinical.

:func:`run_clinical_cv` fits a Cox model on clinical covariates (by default age, T stage, N
stage and HPV status, an unknown status its own level:
:func:`hnprog.data.clinical.clinical_covariates`) under the same fold protocol as the
standard radiomics baseline (:func:`hnprog.radiomics.cv.run_radiomics_cv`, the same splits for
the same seed and patients): standardised on the training patients, fitted on them, the ridge
penalty chosen on the validation patients among :data:`CLINICAL_ALPHAS`, scored on the test
patients. It is :class:`~hnprog.radiomics.baseline.RadiomicsCoxPipeline` with every covariate
kept and no correlation filter.

:func:`deep_clinical_rows` combines a cross-validation's deep risk with the clinical
covariates: per fold, a Cox model on the training patients' own deep risks and their
covariates, scored on the test patients.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from hnprog.data.clinical import DEFAULT_COVARIATES, clinical_covariates
from hnprog.errors import InputError
from hnprog.radiomics.cv import run_radiomics_cv
from hnprog.reporting import CVResult

__all__ = ["CLINICAL_ALPHAS", "CLINICAL_MODEL", "DEEP_CLINICAL_MODEL", "clinical_model_params",
           "deep_clinical_rows", "run_clinical_cv"]

CLINICAL_MODEL = "clinical"
DEEP_CLINICAL_MODEL = "deep multi-task + clinical"
#: The ridge penalties the validation patients choose from.
CLINICAL_ALPHAS = (0.0, 0.1, 1.0, 10.0)


def clinical_model_params(n_covariates: int) -> dict[str, Any]:
    """The :class:`~hnprog.radiomics.baseline.RadiomicsCoxPipeline` settings of a clinical
    Cox model: keep all covariates, no correlation filter, penalty chosen on validation."""
    return {"n_features": n_covariates, "thresholds": (1.0,), "alphas": CLINICAL_ALPHAS}


def run_clinical_cv(
    clinical: pd.DataFrame,
    endpoints: pd.DataFrame,
    out_dir: str | os.PathLike | None = None,
    *,
    covariates: Sequence[str] = DEFAULT_COVARIATES,
    n_folds: int = 5,
    val_fraction: float = 0.2,
    seed: int = 0,
    groups: Mapping[str, Any] | pd.Series | None = None,
    split: str = "stratified",
) -> CVResult:
    """Cross-validate a clinical-only Cox model (and optionally write the report).

    Only patients in both tables are used. The report has the files of
    :func:`hnprog.radiomics.cv.run_radiomics_cv` (``results.{csv,md,json}``,
    ``predictions.csv``, ``kaplan_meier.png``), the model named ``"clinical"``.

    Args:
        clinical: DataFrame. From :func:`hnprog.data.read_clinical`.
        endpoints: DataFrame. From :func:`hnprog.data.cohort.read_endpoints`.
        out_dir: str or PathLike, optional. Folder of the report. Defaults to None.
        covariates: sequence of str. See :func:`~hnprog.data.clinical.clinical_covariates`.
            Defaults to age, T stage, N stage, HPV.
        n_folds, val_fraction, seed, groups, split: the fold protocol (``split="centre"``:
            leave-one-centre-out over ``groups``), as
            :func:`~hnprog.radiomics.cv.run_radiomics_cv`.

    Returns:
        CVResult. ``extra["covariates"]`` lists the covariates; ``extra["coefficients"]``
        maps each fold to its log-hazard ratios per standard deviation.

    Raises:
        InputError: as :func:`~hnprog.radiomics.cv.run_radiomics_cv`, or on an unknown
            covariate.
    """
    design = clinical_covariates(clinical, covariates)
    result = run_radiomics_cv(
        design, endpoints, out_dir, n_folds=n_folds, val_fraction=val_fraction, seed=seed,
        groups=groups, split=split, drop_constant=True,
        model_params=clinical_model_params(len(covariates)),
        model_name=CLINICAL_MODEL,
        title="Clinical Cox model (" + ", ".join(covariates) + "): test C-index per fold",
    )
    result.extra["covariates"] = list(covariates)
    return result


def deep_clinical_rows(
    predictions: pd.DataFrame,
    train_risks: Mapping[int, pd.Series],
    clinical: pd.DataFrame,
    endpoints: pd.DataFrame,
    *,
    covariates: Sequence[str] = DEFAULT_COVARIATES,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-fold test C-index of a Cox model on the deep risk plus the clinical covariates.

    Args:
        predictions: DataFrame. The deep model's test predictions (``fold``, ``patient_id``,
            ``risk``, ``event``, ``time``).
        train_risks: mapping fold -> Series (patient id -> the fold model's risk on its own
            training patients).
        clinical: DataFrame. From :func:`hnprog.data.read_clinical`.
        endpoints: DataFrame. Endpoints of the patients (``event``, ``time``).
        covariates: sequence of str. Clinical covariates. Defaults to age, T, N, HPV.

    Returns:
        tuple ``(per_fold, test_predictions)`` in the layout of
        :data:`hnprog.reporting.CV_FOLD_COLUMNS` / ``CV_PREDICTION_COLUMNS``, model
        ``"deep multi-task + clinical"``.
    """
    from hnprog.metrics import concordance_index
    from hnprog.radiomics.baseline import RadiomicsCoxPipeline
    from hnprog.survival import make_survival_y

    design = clinical_covariates(clinical, covariates)
    rows, parts = [], []
    for fold, risks in sorted(train_risks.items()):
        train_ids = [str(p) for p in risks.index]
        missing = [p for p in train_ids if p not in design.index]
        if missing:
            raise InputError(f"the clinical table lacks {len(missing)} patients, first "
                             f"{missing[0]}")
        X = design.loc[train_ids].assign(deep_risk=risks.to_numpy(float))
        ends = endpoints.loc[train_ids]
        y = make_survival_y(event=ends["event"].to_numpy(), time=ends["time"].to_numpy())
        model = RadiomicsCoxPipeline(**clinical_model_params(X.shape[1]),
                                     validation_fraction=None, drop_constant=True)
        model.fit(X, y)
        test = predictions[predictions["fold"] == fold]
        X_test = design.loc[test["patient_id"].astype(str)].assign(
            deep_risk=test["risk"].to_numpy(float))
        risk = model.predict(X_test)
        rows.append({"model": DEEP_CLINICAL_MODEL, "fold": fold,
                     "c_index": concordance_index(event=test["event"].to_numpy(bool),
                                                  time=test["time"].to_numpy(float), risk=risk),
                     "dice": np.nan})
        parts.append(test.assign(model=DEEP_CLINICAL_MODEL, risk=risk, dice=np.nan))
    return pd.DataFrame(rows), pd.concat(parts, ignore_index=True)
