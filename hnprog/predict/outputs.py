"""The files of one predicted patient and the schema of its ``report.json``.

Every patient folder holds, each written atomically:

| file | content |
| --- | --- |
| ``risk.csv`` | ``patient_id, risk, risk_group, risk_threshold, models, risk_fold_sd`` (the last one empty for a single model), ``risk_clinical`` (the deep + clinical log-hazard, with ``--clinical``), then ``survival_<days>d`` (and ``survival_<days>d_sd`` over the folds of an ensemble) when the presets record a survival baseline |
| ``gtvt_probability.nii.gz`` | float32 GTVt probability on the patient's CT grid |
| ``gtvt_mask.nii.gz`` | uint8 mask, probability >= the mask threshold, on the CT grid |
| ``risk_map.nii.gz`` | float32 risk activation map on the CT grid (only with ``risk_map``) |
| ``overlay.png`` | axial, coronal and sagittal views through the tumour |
| ``report.json`` | written last: its presence means the patient is done |

:func:`report_row` turns a ``report.json`` into one row of a cohort's ``predictions.csv``.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hnprog.geometry import BoundingBox
from hnprog.io import atomic_write, write_json

__all__ = [
    "MASK_FILE",
    "OVERLAY_FILE",
    "PREDICTION_COLUMNS",
    "PROBABILITY_FILE",
    "REPORT_FILE",
    "RISK_FILE",
    "RISK_MAP_FILE",
    "PatientPrediction",
    "report_row",
    "write_hecktor_csv",
    "write_report",
    "write_risk_csv",
]

PROBABILITY_FILE = "gtvt_probability.nii.gz"
MASK_FILE = "gtvt_mask.nii.gz"
OVERLAY_FILE = "overlay.png"
RISK_FILE = "risk.csv"
RISK_MAP_FILE = "risk_map.nii.gz"
REPORT_FILE = "report.json"
HECKTOR_FILE = "hecktor_predictions.csv"

#: Columns of a cohort's ``predictions.csv`` (before the endpoint columns).
PREDICTION_COLUMNS = ("patient_id", "risk", "risk_group", "tumour_volume_ml", "dice",
                      "hd95_mm", "box_source")
RISK_MEANING = "Cox log-hazard; higher means an earlier event is more likely"


@dataclasses.dataclass(frozen=True)
class PatientPrediction:
    """What :func:`hnprog.predict.predict_patient` found for one patient.

    Args:
        patient_id: str. The patient.
        risk: float. Cox log-hazard (higher is worse), the mean over the models; NaN when the
            models have no risk output.
        risk_group: str or None. ``"high"`` or ``"low"`` against the model's recorded
            threshold, None when the model records none.
        box: BoundingBox. The box used (mm).
        box_source: str. ``"given"`` or ``"automatic"``.
        tumour_volume_ml: float or None. Volume of the predicted GTVt mask, mL; None without a
            segmentation output.
        dice: float or None. Dice of the predicted mask with a reference mask, when one was
            given.
        out_dir: pathlib.Path. The folder holding the files.
        survival: SurvivalPrediction or None. Survival probabilities at the requested days
            (:mod:`hnprog.predict.survival`); None without a risk output or a baseline.
            Defaults to None.
        risk_fold_sd: float or None. For a fold ensemble, the standard deviation of the risk
            across the folds (:meth:`hnprog.presets.FoldEnsemble.risk_spread`), an
            uncertainty signal; None for a single model. Defaults to None.
        clinical: dict or None. The deep + clinical risk
            (:func:`hnprog.predict.clinical.predict_clinical`) when predicted with a
            clinical table. Defaults to None.
        hd95_mm: float or None. 95th-percentile Hausdorff distance (mm) between the predicted
            and the reference mask's surfaces (:func:`hnprog.metrics.surface_distances`), when
            a reference mask was given. Defaults to None.
    """

    patient_id: str
    risk: float
    risk_group: str | None
    box: BoundingBox
    box_source: str
    tumour_volume_ml: float | None
    dice: float | None
    out_dir: Path
    survival: Any = None
    risk_fold_sd: float | None = None
    clinical: dict[str, Any] | None = None
    hd95_mm: float | None = None


def write_risk_csv(prediction: PatientPrediction, threshold: float | None,
                   models: Sequence[str]) -> None:
    """Write the patient's ``risk.csv`` (one header row, one patient row)."""
    survival = prediction.survival.columns() if prediction.survival is not None else {}
    clinical = ({} if prediction.clinical is None
                else {"risk_clinical": prediction.clinical["log_hazard"]})
    with atomic_write(prediction.out_dir / RISK_FILE, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["patient_id", "risk", "risk_group", "risk_threshold", "models",
                         "risk_fold_sd", *clinical, *survival])
        writer.writerow([prediction.patient_id, f"{prediction.risk:.6f}",
                         prediction.risk_group or "",
                         "" if threshold is None else f"{threshold:.6f}", ";".join(models),
                         "" if prediction.risk_fold_sd is None
                         else f"{prediction.risk_fold_sd:.6f}",
                         *(f"{v:.6f}" for v in clinical.values()),
                         *("" if v != v else f"{v:.6f}" for v in survival.values())])


def write_report(prediction: PatientPrediction, *, inputs: Mapping[str, str | None],
                 threshold: float | None, mask_threshold: float,
                 preprocessing: Mapping[str, Any], models: Sequence[str],
                 files: Mapping[str, str], versions: Mapping[str, str], seconds: float,
                 stage_seconds: Mapping[str, float],
                 inference: Mapping[str, Any] | None = None,
                 survival_note: str | None = None,
                 input_fingerprint: str | None = None,
                 warnings: Sequence[str] = (),
                 risk_map: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Write ``report.json``, the last file of a patient, and return its content.

    The report holds the inputs, the risk and its meaning, the box and its source, the tumour
    volume (mL), the Dice with a reference, the preprocessing, the models, the files, the
    versions, and the wall time of the call (``seconds``) and of its stages
    (``stage_seconds``: ``read``, ``preprocess``, ``forward``, ``outputs``). For a fold
    ensemble ``risk.fold_sd`` is the spread of the risk across the folds; ``inference``
    records the runtime (``keras``, ``openvino``, ``onnx``), the precision and whether
    test-time mirroring was on; and the
    survival probabilities and curve (``survival``; when there are none, ``survival`` holds
    ``{"available": false, "reason": survival_note}``); and the
    ``input_fingerprint`` of the input files and settings
    (:func:`hnprog.predict.patient.job_fingerprint`), which a resumed run compares; and
    ``warnings``, what a reader of the numbers must know (weights trained on synthetic data,
    :func:`hnprog.predict.patient.model_warnings`; a reference mask on neither image's grid,
    :func:`hnprog.data.checks.check_mask_placement`); with a risk map, ``risk_map``: its file
    and method (``occlusion`` or ``gradcam``).
    """
    survival = (prediction.survival.to_dict() if prediction.survival is not None
                else {"available": False, "reason": survival_note})
    report = {
        "patient_id": prediction.patient_id,
        "inputs": dict(inputs),
        "risk": {"log_hazard": prediction.risk, "group": prediction.risk_group,
                 "threshold": threshold, "meaning": RISK_MEANING,
                 "fold_sd": prediction.risk_fold_sd, "clinical": prediction.clinical},
        "survival": survival,
        "box": {"source": prediction.box_source, "mm": prediction.box.to_dict()},
        "tumour_volume_ml": prediction.tumour_volume_ml,
        "dice_with_reference": prediction.dice,
        "hd95_mm_with_reference": prediction.hd95_mm,
        "mask_threshold": mask_threshold,
        "preprocessing": dict(preprocessing),
        "models": list(models),
        "files": dict(files),
        "versions": dict(versions),
        "seconds": round(seconds, 3),
        "stage_seconds": dict(stage_seconds),
        "inference": dict(inference or {}),
        "input_fingerprint": input_fingerprint,
        "warnings": list(warnings),
    }
    if risk_map is not None:
        report["risk_map"] = dict(risk_map)
    write_json(report, prediction.out_dir / REPORT_FILE)
    return report


def report_row(report: Mapping[str, Any]) -> dict[str, Any]:
    """One ``predictions.csv`` row (:data:`PREDICTION_COLUMNS`, then ``risk_clinical`` with a
    clinical table and the ``survival_<days>d`` columns when the report holds survival probabilities) from a
    ``report.json``."""
    row = {
        "patient_id": report["patient_id"],
        "risk": report["risk"]["log_hazard"],
        "risk_group": report["risk"]["group"],
        "tumour_volume_ml": report["tumour_volume_ml"],
        "dice": report["dice_with_reference"],
        "hd95_mm": report.get("hd95_mm_with_reference"),  # absent from older reports
        "box_source": report["box"]["source"],
    }
    clinical = report["risk"].get("clinical")
    if clinical is not None:
        row["risk_clinical"] = clinical["log_hazard"]
    survival = report.get("survival") or {}
    for i, days in enumerate(survival.get("times_days") or []):
        name = f"survival_{float(days):g}d"
        row[name] = _nan_for_none(survival["probability"][i])
        if survival.get("fold_sd") is not None:
            row[name + "_sd"] = _nan_for_none(survival["fold_sd"][i])
    return row


def _nan_for_none(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def write_hecktor_csv(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Write the HECKTOR challenge's submission file ``PatientID,Prediction`` (atomically).

    ``Prediction`` is the risk (Cox log-hazard): higher means an earlier progression, the
    challenge's anti-concordant convention (:func:`hnprog.evaluation.hecktor_concordance`).

    Args:
        rows: sequence of dicts with ``patient_id`` and ``risk`` (e.g. ``predictions.csv``
            rows); rows without a finite risk are left out.
        path: str or Path. The CSV file.

    Returns:
        pathlib.Path. ``path``.
    """
    path = Path(path)
    with atomic_write(path, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["PatientID", "Prediction"])
        for row in rows:
            risk = float(row["risk"])
            if risk == risk and abs(risk) != float("inf"):
                writer.writerow([row["patient_id"], f"{risk:.6f}"])
    return path
