"""The deep + clinical risk of predicted patients, from the Cox models the presets record.

A preset trained with clinical covariates (``hnprog train/cv/finetune --clinical``) records a
Cox model on its own image risk and the covariates, fitted on its training patients
(``outputs.risk.clinical``, :func:`hnprog.radiomics.clinical.fit_deep_clinical_model`).
``hnprog predict --clinical FILE`` applies it: ``risk_clinical`` in ``risk.csv`` and
``predictions.csv``, ``risk.clinical`` in ``report.json``. A fold ensemble averages its
members' deep + clinical log-hazards, each from its own image risk (the members' scales
differ). The image risk, its group and the survival probabilities stay those of the images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from hnprog.errors import InputError
from hnprog.presets.format import risk_clinical_model

__all__ = ["CLINICAL_RISK_MEANING", "check_clinical", "predict_clinical"]

CLINICAL_RISK_MEANING = ("Cox log-hazard of the image risk combined with the clinical "
                         "covariates (higher is worse); a missing covariate takes the training "
                         "median")


def _members(predictor: Any) -> list[Any]:
    inner = getattr(predictor, "predictor", predictor)  # test-time mirroring wraps one
    return list(getattr(inner, "members", None) or [inner])


def check_clinical(predictor: Any, clinical: pd.DataFrame | None,
                   ids: Sequence[str]) -> list[dict[str, Any]] | None:
    """Check, before any forward pass, that a clinical table can be used with a predictor.

    Args:
        predictor: Preset or FoldEnsemble.
        clinical: DataFrame or None. :func:`hnprog.data.read_clinical`'s table.
        ids: sequence of str. The patients to predict.

    Returns:
        list of the members' clinical models, or None without a table.

    Raises:
        InputError: if a member records no clinical model (naming it), or patients are
            missing from the table (naming the first ones).
    """
    if clinical is None:
        return None
    members = _members(predictor)
    models = [risk_clinical_model(getattr(m, "metadata", None), getattr(m, "name", "preset"))
              for m in members]
    lacking = [getattr(m, "name", "model") for m, model in zip(members, models) if model is None]
    if lacking:
        raise InputError(
            f"--clinical: {', '.join(lacking)} record{'s' if len(lacking) == 1 else ''} no "
            "clinical Cox model (trained without clinical covariates); retrain with hnprog "
            "train/cv/finetune --clinical, or predict without --clinical")
    missing = [str(p) for p in ids if str(p) not in clinical.index]
    if missing:
        raise InputError(f"--clinical: the clinical table lacks {len(missing)} of the patients "
                         f"to predict: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    return models


def predict_clinical(predictor: Any, member_risks: Sequence[float] | np.ndarray,
                     clinical: pd.DataFrame, patient_id: str) -> dict[str, Any]:
    """One patient's deep + clinical log-hazard, as ``report.json`` records it.

    Args:
        predictor: Preset or FoldEnsemble whose members record a clinical model.
        member_risks: array-like ``(n_members,)``. The patient's image log-hazard from each
            member.
        clinical: DataFrame. The clinical table, holding the patient.
        patient_id: str. The patient.

    Returns:
        dict. ``log_hazard`` (mean over the members), ``fold_sd`` (their spread; None for
        one model), ``covariates`` (the values used, None where missing) and ``meaning``.

    Raises:
        InputError: as :func:`check_clinical`.
    """
    from hnprog.data.clinical import clinical_covariates
    from hnprog.radiomics.clinical import deep_clinical_risk

    models = check_clinical(predictor, clinical, [patient_id])
    risks = np.asarray(member_risks, dtype=float).reshape(-1)
    if len(risks) != len(models):
        raise InputError(f"one risk per model is needed. Received: {len(risks)} risks for "
                         f"{len(models)} models")
    row = clinical.loc[[patient_id]]
    values = np.array([deep_clinical_risk(model, [risk], row)[0]
                       for model, risk in zip(models, risks)])
    raw = clinical_covariates(row, models[0]["covariates"],
                              fill={c: np.nan for c in models[0]["covariates"]}).iloc[0]
    return {"log_hazard": float(values.mean()),
            "fold_sd": float(values.std()) if len(values) > 1 else None,
            "covariates": {k: None if not np.isfinite(v) else float(v) for k, v in raw.items()},
            "meaning": CLINICAL_RISK_MEANING}
