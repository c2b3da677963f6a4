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
covariates, scored on the test patients. :func:`fit_deep_clinical_model` fits that model as a
JSON record, which ``train``/``cv``/``finetune --clinical`` store in the preset
(``outputs.risk.clinical``), and :func:`deep_clinical_risk` applies it, the same code in the
cross-validation and in ``hnprog predict --clinical``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from hnprog.data.clinical import DEFAULT_COVARIATES, clinical_covariates, covariate_medians
from hnprog.errors import InputError
from hnprog.radiomics.cv import run_radiomics_cv
from hnprog.reporting import CVResult

__all__ = ["CLINICAL_ALPHAS", "CLINICAL_MODEL", "DEEP_CLINICAL_MODEL", "clinical_model_params",
           "deep_clinical_risk", "deep_clinical_rows", "fit_deep_clinical_model",
           "run_clinical_cv"]

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


def fit_deep_clinical_model(
    deep_risk: pd.Series,
    clinical: pd.DataFrame,
    endpoints: pd.DataFrame,
    *,
    covariates: Sequence[str] = DEFAULT_COVARIATES,
) -> dict[str, Any]:
    """Fit a Cox model on the image risk and the clinical covariates of training patients.

    The model is :class:`~hnprog.radiomics.baseline.RadiomicsCoxPipeline` with every term
    kept (:func:`clinical_model_params`) and the training patients doubling as validation
    patients for the ridge penalty; a missing covariate is replaced by its median over these
    patients. Fit it on the model's risks of its **own training patients**, so that nothing
    of the test patients leaks in.

    Args:
        deep_risk: Series. Patient id -> the image model's log-hazard (higher is worse).
        clinical: DataFrame. From :func:`hnprog.data.read_clinical`, holding these patients.
        endpoints: DataFrame. ``event`` (bool) and ``time`` (days) of these patients.
        covariates: sequence of str. Clinical covariates. Defaults to age, T, N, HPV.

    Returns:
        dict. The record of :func:`hnprog.presets.format.checked_clinical_model` (JSON-ready).

    Raises:
        InputError: if the clinical table or the endpoints lack a patient (naming the first),
            or as :func:`~hnprog.data.clinical.clinical_covariates`.
    """
    from hnprog.presets.format import checked_clinical_model
    from hnprog.radiomics.baseline import RadiomicsCoxPipeline
    from hnprog.survival import make_survival_y

    ids = [str(p) for p in deep_risk.index]
    for table, what in ((clinical, "the clinical table"), (endpoints, "the endpoints")):
        missing = [p for p in ids if p not in table.index]
        if missing:
            raise InputError(f"{what} lacks {len(missing)} of the training patients, first "
                             f"{missing[0]}")
    rows = clinical.loc[ids]
    fill = covariate_medians(rows, covariates)
    X = clinical_covariates(rows, covariates, fill=fill).assign(
        deep_risk=deep_risk.to_numpy(float))
    ends = endpoints.loc[ids]
    y = make_survival_y(event=ends["event"].to_numpy(), time=ends["time"].to_numpy())
    model = RadiomicsCoxPipeline(**clinical_model_params(X.shape[1]),
                                 validation_fraction=None, drop_constant=True)
    model.fit(X, y)
    position = {name: i for i, name in enumerate(model.feature_names_in_)}
    terms = [{"name": name, "mean": float(model.mean_[position[name]]),
              "scale": float(model.scale_[position[name]]), "coef": float(coef)}
             for name, coef in zip(model.selected_features_, model.coef_)]
    return checked_clinical_model({
        "covariates": list(covariates), "fill": fill, "terms": terms,
        "alpha": float(model.alpha_), "n_patients": len(ids),
        "n_events": int(np.sum(y["event"])),
    })


def deep_clinical_risk(model: Mapping[str, Any], deep_risk: np.ndarray | Sequence[float],
                       clinical: pd.DataFrame) -> np.ndarray:
    """The deep + clinical log-hazard of patients, from a fitted record.

    Args:
        model: dict. From :func:`fit_deep_clinical_model` (or a preset's
            ``outputs.risk.clinical``).
        deep_risk: array-like ``(n_patients,)``. The image model's log-hazard, in the order
            of ``clinical``'s rows.
        clinical: DataFrame. The patients' clinical rows (:func:`hnprog.data.read_clinical`);
            a missing covariate is replaced by the training median.

    Returns:
        numpy.ndarray ``(n_patients,)``, float64: the Cox linear predictor, higher is worse.

    Raises:
        InputError: if the record is invalid or the lengths differ.
    """
    from hnprog.presets.format import checked_clinical_model

    model = checked_clinical_model(model)
    risk = np.asarray(deep_risk, dtype=float).reshape(-1)
    if len(risk) != len(clinical):
        raise InputError(f"one image risk per clinical row is needed. Received: {len(risk)} "
                         f"risks for {len(clinical)} rows")
    design = clinical_covariates(clinical, model["covariates"], fill=model["fill"])
    design = design.assign(deep_risk=risk)
    out = np.zeros(len(risk))
    for term in model["terms"]:
        out += term["coef"] * (design[term["name"]].to_numpy(float) - term["mean"]) \
            / term["scale"]
    return out


def deep_clinical_rows(
    predictions: pd.DataFrame,
    train_risks: Mapping[int, pd.Series],
    clinical: pd.DataFrame,
    endpoints: pd.DataFrame,
    *,
    covariates: Sequence[str] = DEFAULT_COVARIATES,
    models: Mapping[int, Mapping[str, Any]] | None = None,
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
        models: mapping fold -> record, optional. Models already fitted with
            :func:`fit_deep_clinical_model` on ``train_risks`` (the ones stored in the fold
            presets); fitted here when absent.

    Returns:
        tuple ``(per_fold, test_predictions)`` in the layout of
        :data:`hnprog.reporting.CV_FOLD_COLUMNS` / ``CV_PREDICTION_COLUMNS``, model
        ``"deep multi-task + clinical"``.
    """
    from hnprog.metrics import concordance_index

    rows, parts = [], []
    for fold, risks in sorted(train_risks.items()):
        model = (models or {}).get(fold) or fit_deep_clinical_model(
            risks, clinical, endpoints, covariates=covariates)
        test = predictions[predictions["fold"] == fold]
        ids = test["patient_id"].astype(str)
        missing = [p for p in ids if p not in clinical.index]
        if missing:
            raise InputError(f"the clinical table lacks {len(missing)} test patients, first "
                             f"{missing[0]}")
        risk = deep_clinical_risk(model, test["risk"].to_numpy(float), clinical.loc[ids])
        rows.append({"model": DEEP_CLINICAL_MODEL, "fold": fold,
                     "c_index": concordance_index(event=test["event"].to_numpy(bool),
                                                  time=test["time"].to_numpy(float), risk=risk),
                     "dice": np.nan})
        parts.append(test.assign(model=DEEP_CLINICAL_MODEL, risk=risk, dice=np.nan))
    return pd.DataFrame(rows), pd.concat(parts, ignore_index=True)
