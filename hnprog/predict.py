"""Prediction on NIfTI PET/CT pairs: a risk score, a GTVt contour on the patient's own CT grid,
an overlay picture and a report, for one patient or a whole cohort.

The same preprocessing as training (:func:`hnprog.transforms.preprocess_case`, with the
parameters recorded in the preset) puts CT and PET on the network grid; the predicted
probability map is put back onto the original CT grid
(:func:`hnprog.transforms.invert_to_reference`), so the contour opens over the patient's scan
in 3D Slicer or ITK-SNAP.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from hnprog import __version__
from hnprog.data.bbox import auto_bbox
from hnprog.geometry import BoundingBox
from hnprog.data.cohort import Cohort, Patient
from hnprog.data.preprocess import check_intensities, read_mask
from hnprog.errors import HnprogError, InputError
from hnprog.io import atomic_write, read_image, write_image, write_json
from hnprog.transforms import Case, PreprocessConfig, invert_to_reference, preprocess_case

__all__ = [
    "PatientPrediction",
    "load_predictor",
    "predict_cohort",
    "predict_patient",
    "preprocess_config_from_spec",
]

PROBABILITY_FILE = "gtvt_probability.nii.gz"
MASK_FILE = "gtvt_mask.nii.gz"
OVERLAY_FILE = "overlay.png"
RISK_FILE = "risk.csv"
REPORT_FILE = "report.json"


@dataclasses.dataclass(frozen=True)
class PatientPrediction:
    """What :func:`predict_patient` found for one patient.

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
    """

    patient_id: str
    risk: float
    risk_group: str | None
    box: BoundingBox
    box_source: str
    tumour_volume_ml: float | None
    dice: float | None
    out_dir: Path


def load_predictor(models: str | os.PathLike | Sequence[str | os.PathLike], **hub: Any) -> Any:
    """Load one model or an ensemble of folds for prediction.

    Args:
        models: a preset name, ``hf://`` URI or folder, or a list of them (averaged as a
            :class:`~hnprog.models.ensemble.FoldEnsemble`).
        **hub: passed to :func:`hnprog.from_preset` (``cache_dir``, ``endpoint``,
            ``local_files_only``).

    Returns:
        Preset or FoldEnsemble, with ``.predict`` and ``.preprocessing``.
    """
    from hnprog.presets import from_preset

    if not isinstance(models, (str, os.PathLike)) and len(models) == 1:
        models = models[0]
    return from_preset(models if isinstance(models, (str, os.PathLike)) else list(models), **hub)


def preprocess_config_from_spec(spec: dict[str, Any] | None) -> PreprocessConfig:
    """The :class:`~hnprog.transforms.PreprocessConfig` recorded with a model
    (:meth:`PreprocessConfig.from_recorded`).

    Raises:
        InputError: if the model records no preprocessing or another channel order.
    """
    return PreprocessConfig.from_recorded(spec)


def _models_used(predictor: Any) -> list[str]:
    members = getattr(predictor, "members", None) or [predictor]
    return [str(getattr(m, "source", "") or getattr(m, "name", "model")) for m in members]


def _risk_threshold(predictor: Any) -> float | None:
    metadata = getattr(predictor, "metadata", None)
    records = metadata if isinstance(metadata, list) else [metadata or {}]
    values = [r.get("outputs", {}).get("risk", {}).get("threshold") for r in records]
    values = [float(v) for v in values if v is not None]
    return float(np.mean(values)) if values else None


def predict_patient(
    ct: str | os.PathLike,
    pet: str | os.PathLike,
    predictor: Any,
    out_dir: str | os.PathLike,
    *,
    patient_id: str = "patient",
    box: BoundingBox | None = None,
    reference_mask: str | os.PathLike | None = None,
    reference_labels: Sequence[int] = (0, 1),
    overlay: bool = True,
    threshold: float = 0.5,
) -> PatientPrediction:
    """Predict one patient's risk and GTVt from a CT and a PET file.

    Writes into ``out_dir``: ``risk.csv`` (log-hazard, risk group, models), the GTVt
    probability map ``gtvt_probability.nii.gz`` (float32) and mask ``gtvt_mask.nii.gz``
    (uint8, probability >= ``threshold``) on the original CT grid, ``overlay.png`` (axial,
    coronal and sagittal views through the tumour) and ``report.json`` (box and its source,
    tumour volume in mL, preprocessing, models and versions), each atomically;
    ``report.json`` last, so its presence means the patient is done. The report also holds
    the wall time of the call (``seconds``) and of its stages (``stage_seconds``: ``read``
    both files, check them and find the box; ``preprocess``; the model's ``forward`` pass;
    ``outputs``: the probability map back on the CT grid, the mask, the NIfTI files and the
    overlay).

    Args:
        ct: path. CT in HU (NIfTI or any format SimpleITK reads).
        pet: path. PET in SUV, on its own grid.
        predictor: Preset or FoldEnsemble, from :func:`load_predictor`.
        out_dir: path. Output folder, created if needed.
        patient_id: str. Named in outputs and errors. Defaults to ``"patient"``.
        box: BoundingBox, optional. The oropharynx box (mm); None computes it from the PET
            (:func:`hnprog.data.bbox.auto_bbox`). Defaults to None.
        reference_mask: path, optional. A reference GTVt mask (on the CT grid) to report a
            Dice and draw in the overlay. Defaults to None.
        reference_labels: sequence of int. Labels the reference mask may hold; 1 is the
            GTVt. Defaults to ``(0, 1)`` (HECKTOR 2022 masks: ``(0, 1, 2)``).
        overlay: bool. Write ``overlay.png``. Defaults to True.
        threshold: float. Probability threshold of the mask. Defaults to 0.5.

    Returns:
        PatientPrediction.

    Raises:
        PatientError: naming the patient and file, on unreadable inputs, a CT not in HU or
            a PET not in SUV (swapped files, Bq/mL), PET and CT that do not overlap, or a box
            outside the images.
    """
    job = _PatientJob(patient_id, Path(ct), Path(pet), Path(out_dir), box,
                      None if reference_mask is None else Path(reference_mask),
                      tuple(reference_labels))
    loaded = _load_patient(job, preprocess_config_from_spec(predictor.preprocessing))
    outputs = _forward(loaded, predictor)
    return _write_patient(loaded, outputs, predictor, overlay=overlay, threshold=threshold)


@dataclasses.dataclass(frozen=True)
class _PatientJob:
    """What :func:`predict_patient` is asked to do for one patient."""

    patient_id: str
    ct: Path
    pet: Path
    out_dir: Path
    box: BoundingBox | None
    reference_mask: Path | None
    reference_labels: tuple[int, ...]


@dataclasses.dataclass
class _LoadedPatient:
    """A patient read, checked, boxed and preprocessed, ready for the forward pass."""

    job: _PatientJob
    config: PreprocessConfig
    ct_image: sitk.Image
    pet_image: sitk.Image
    case: Any  # PreprocessedCase
    box: BoundingBox
    box_source: str
    start: float
    stages: _StageTimer


def _load_patient(job: _PatientJob, config: PreprocessConfig) -> _LoadedPatient:
    """Read CT and PET, check their values, find the box and preprocess (no model needed)."""
    start = time.perf_counter()
    stages = _StageTimer()

    def read_pet_and_box() -> tuple[sitk.Image, BoundingBox | InputError]:
        image = read_image(job.pet, patient_id=job.patient_id, role="PET")
        if job.box is not None:
            return image, job.box
        try:
            return image, auto_bbox(image, patient_id=job.patient_id)
        except InputError as exc:  # raised below, after the clearer intensity checks
            return image, exc

    # SimpleITK releases the GIL: the CT is read while the PET is read and boxed.
    with ThreadPoolExecutor(max_workers=2) as pool:
        ct_future = pool.submit(read_image, job.ct, patient_id=job.patient_id, role="CT")
        pet_future = pool.submit(read_pet_and_box)
        ct_image, (pet_image, box_or_error) = ct_future.result(), pet_future.result()
    check_intensities(ct_image, pet_image, job.patient_id, job.ct, job.pet)
    if isinstance(box_or_error, InputError):
        raise box_or_error
    stages.end("read")
    case = preprocess_case(
        Case({"ct": ct_image, "pet": pet_image}, box=box_or_error, patient_id=job.patient_id),
        config)
    stages.end("preprocess")
    return _LoadedPatient(job, config, ct_image, pet_image, case, box_or_error,
                          "given" if job.box is not None else "automatic", start, stages)


def _forward(loaded: _LoadedPatient, predictor: Any) -> dict[str, np.ndarray]:
    """The model's forward pass on one loaded patient."""
    loaded.stages.restart()
    outputs = predictor.predict(loaded.case.image[None])
    loaded.stages.end("forward")
    return outputs


def _write_patient(loaded: _LoadedPatient, outputs: dict[str, np.ndarray], predictor: Any, *,
                   overlay: bool, threshold: float) -> PatientPrediction:
    """Put the outputs back on the CT grid and write the patient's files, report.json last."""
    job, ct_image, stages = loaded.job, loaded.ct_image, loaded.stages
    stages.restart()
    patient_id, out_dir = job.patient_id, job.out_dir
    risk = float(outputs["risk"][0, 0]) if "risk" in outputs else float("nan")
    threshold_value = _risk_threshold(predictor)
    risk_group = None
    if threshold_value is not None and np.isfinite(risk):
        risk_group = "high" if risk > threshold_value else "low"

    files: dict[str, str] = {}
    volume_ml = dice = None
    mask_image = reference = None
    # The NIfTI outputs are compressed and written in background threads (SimpleITK releases
    # the GIL) while the overlay is drawn; leaving the block waits for them and re-raises.
    writes = []
    with ThreadPoolExecutor(max_workers=2) as writers:
        if "segmentation" in outputs:
            probability = invert_to_reference(
                outputs["segmentation"][0, ..., 0], loaded.case.grid, ct_image)
            mask_image = sitk.Cast(probability >= threshold, sitk.sitkUInt8)
            writes = [writers.submit(write_image, probability, out_dir / PROBABILITY_FILE),
                      writers.submit(write_image, mask_image, out_dir / MASK_FILE)]
            files.update(probability=PROBABILITY_FILE, mask=MASK_FILE)
            voxels = int(np.count_nonzero(sitk.GetArrayViewFromImage(mask_image)))
            volume_ml = voxels * float(np.prod(ct_image.GetSpacing())) / 1000.0
            if job.reference_mask is not None:
                from hnprog.metrics import dice_score

                reference = read_mask(job.reference_mask, patient_id, job.reference_labels)
                if reference.GetSize() != ct_image.GetSize():
                    reference = sitk.Resample(reference, ct_image, sitk.Transform(),
                                              sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
                dice = dice_score(sitk.GetArrayViewFromImage(mask_image),
                                  sitk.GetArrayViewFromImage(reference))
        if overlay:
            from hnprog.plotting import plot_overlay

            title = f"{patient_id}   risk (log-hazard) {risk:+.3f}"
            if risk_group:
                side = ">" if risk_group == "high" else "<="
                title += f"   {risk_group} risk ({side} model threshold {threshold_value:+.3f})"
            if mask_image is not None and not volume_ml:
                title += "\nno GTVt predicted (no voxel reaches the mask threshold)"
            plot_overlay(ct_image, loaded.pet_image, mask_image, out_dir / OVERLAY_FILE,
                         title=title, reference_mask=reference)
            files["overlay"] = OVERLAY_FILE
        for write in writes:
            write.result()
    stages.end("outputs")

    models = _models_used(predictor)
    with atomic_write(out_dir / RISK_FILE, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["patient_id", "risk", "risk_group", "risk_threshold", "models"])
        writer.writerow([patient_id, f"{risk:.6f}", risk_group or "",
                         "" if threshold_value is None else f"{threshold_value:.6f}",
                         ";".join(models)])
    files["risk"] = RISK_FILE
    write_json(
        {
            "patient_id": patient_id,
            "inputs": {"ct": str(job.ct), "pet": str(job.pet),
                       "reference_mask": None if job.reference_mask is None
                       else str(job.reference_mask)},
            "risk": {"log_hazard": risk, "group": risk_group, "threshold": threshold_value,
                     "meaning": "Cox log-hazard; higher means an earlier event is more likely"},
            "box": {"source": loaded.box_source, "mm": loaded.box.to_dict()},
            "tumour_volume_ml": volume_ml,
            "dice_with_reference": dice,
            "mask_threshold": threshold,
            "preprocessing": loaded.config.to_dict(),
            "models": models,
            "files": files,
            "versions": _versions(),
            "seconds": round(time.perf_counter() - loaded.start, 3),
            "stage_seconds": stages.seconds,
        },
        out_dir / REPORT_FILE,
    )
    return PatientPrediction(patient_id, risk, risk_group, loaded.box, loaded.box_source,
                             volume_ml, dice, out_dir)


class _StageTimer:
    """Wall time of consecutive stages, in seconds (``report.json``'s ``stage_seconds``)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def end(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = round(now - self._last, 4)
        self._last = now

    def restart(self) -> None:
        """Start the next stage now (in a cohort run, a patient waits between stages)."""
        self._last = time.perf_counter()


def _versions() -> dict[str, str]:
    import keras

    return {"hnprog": __version__, "keras": keras.__version__, "backend": keras.backend.backend(),
            "simpleitk": sitk.Version_VersionString()}


def predict_cohort(
    cohort: Cohort,
    predictor: Any,
    out_dir: str | os.PathLike,
    *,
    overlay: bool = True,
    resume: bool = True,
    progress: bool = True,
    ids: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Predict every patient of a cohort; resume where a previous run stopped.

    Each patient gets a folder ``out_dir/<ID>/`` as :func:`predict_patient` writes it. A
    patient whose ``report.json`` names the same models is skipped when ``resume`` is True. A
    patient that fails is recorded in ``failures.csv`` with the reason and the others go on.
    At the end ``predictions.csv`` (one row per patient, in cohort order) and
    ``metrics.json`` are written; with endpoints the metrics hold the C-index, with reference
    masks the mean Dice.

    Patients go through a pipeline: while the model runs on one patient, the next is read
    and preprocessed and the previous one's outputs are written, in background threads, so
    at most three patients are in memory. Each ``report.json`` records the patient's stage
    times (``stage_seconds``, waits excluded) and its ``seconds`` from reading to report.

    Args:
        cohort: Cohort. From :func:`hnprog.data.cohort.read_cohort`.
        predictor: Preset or FoldEnsemble, from :func:`load_predictor`.
        out_dir: path. Output folder.
        overlay: bool. Write each patient's overlay picture. Defaults to True.
        resume: bool. Skip patients already done with the same models. Defaults to True.
        progress: bool. Show a progress bar. Defaults to True.
        ids: sequence of str, optional. Patients to predict. Defaults to all.

    Returns:
        tuple of (predictions DataFrame, failures DataFrame, metrics dict). The metrics
        count ``n_predicted`` patients, of which ``n_resumed`` were done by an earlier run.
    """
    import json

    from tqdm.auto import tqdm

    from hnprog.metrics import concordance_index

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    models = _models_used(predictor)
    patients: list[Patient] = cohort.patients if ids is None else [cohort[i] for i in ids]
    rows: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    n_resumed = 0
    jobs: list[_PatientJob] = []
    bar = tqdm(total=len(patients), desc="predict", unit="patient", disable=not progress)
    for patient in patients:
        pid = patient.patient_id
        report_path = out_dir / pid / REPORT_FILE
        if resume and report_path.is_file():
            try:
                report = json.loads(report_path.read_text())
            except (OSError, ValueError):
                report = {}
            if report.get("models") == models:
                rows[pid] = _row_from_report(report)
                n_resumed += 1
                bar.update()
                continue
        jobs.append(_PatientJob(pid, patient.ct, patient.pet, out_dir / pid,
                                cohort.bboxes.get(pid), patient.mask,
                                tuple(patient.mask_labels)))

    def collect(job: _PatientJob, write: Any) -> None:
        try:
            write.result()
            rows[job.patient_id] = _row_from_report(
                json.loads((job.out_dir / REPORT_FILE).read_text()))
        except HnprogError as exc:
            failed[job.patient_id] = getattr(exc, "reason", str(exc))
        bar.update()

    # A pipeline with at most three patients in flight: while the model runs on one, the
    # next is read and preprocessed and the previous one's outputs are written, each in a
    # background thread (SimpleITK, NumPy, Pillow and ISA-L release the GIL).
    config = preprocess_config_from_spec(predictor.preprocessing)
    with ThreadPoolExecutor(max_workers=1) as loader, ThreadPoolExecutor(max_workers=1) as writer:
        next_load = loader.submit(_load_patient, jobs[0], config) if jobs else None
        pending: tuple[_PatientJob, Any] | None = None
        for index, job in enumerate(jobs):
            current = next_load
            if index + 1 < len(jobs):
                next_load = loader.submit(_load_patient, jobs[index + 1], config)
            bar.set_postfix_str(job.patient_id)
            write = None
            try:
                loaded = current.result()
                outputs = _forward(loaded, predictor)
                write = writer.submit(_write_patient, loaded, outputs, predictor,
                                      overlay=overlay, threshold=0.5)
            except HnprogError as exc:
                failed[job.patient_id] = getattr(exc, "reason", str(exc))
                bar.update()
            if pending is not None:
                collect(*pending)
            pending = (job, write) if write is not None else None
        if pending is not None:
            collect(*pending)
    bar.close()
    order = [patient.patient_id for patient in patients]
    rows = [rows[pid] for pid in order if pid in rows]
    failures = [{"patient_id": pid, "error": failed[pid]} for pid in order if pid in failed]
    predictions = pd.DataFrame(
        rows, columns=["patient_id", "risk", "risk_group", "tumour_volume_ml", "dice",
                       "box_source"])
    failure_table = pd.DataFrame(failures, columns=["patient_id", "error"])
    metrics: dict[str, Any] = {"n_patients": len(patients), "n_predicted": len(predictions),
                               "n_resumed": n_resumed, "n_failed": len(failure_table),
                               "models": models}
    if cohort.endpoints is not None and len(predictions):
        known = predictions[predictions["patient_id"].isin(cohort.endpoints.index)]
        if len(known) and known["risk"].notna().all():
            ends = cohort.endpoints.loc[known["patient_id"]]
            predictions = predictions.merge(
                ends.rename_axis("patient_id").reset_index()[["patient_id", "event", "time"]],
                on="patient_id", how="left")
            with np.errstate(all="ignore"):
                metrics["c_index"] = concordance_index(
                    event=ends["event"].to_numpy(), time=ends["time"].to_numpy(),
                    risk=known["risk"].to_numpy())
            metrics["n_events"] = int(ends["event"].sum())
    dices = predictions["dice"].dropna() if len(predictions) else pd.Series(dtype=float)
    if len(dices):
        metrics["dice_mean"] = float(dices.mean())
        metrics["dice_per_patient_n"] = int(len(dices))
    with atomic_write(out_dir / "predictions.csv", newline="") as f:
        predictions.to_csv(f, index=False)
    with atomic_write(out_dir / "failures.csv", newline="") as f:
        failure_table.to_csv(f, index=False)
    write_json(metrics, out_dir / "metrics.json")
    return predictions, failure_table, metrics


def _row_from_report(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "patient_id": report["patient_id"],
        "risk": report["risk"]["log_hazard"],
        "risk_group": report["risk"]["group"],
        "tumour_volume_ml": report["tumour_volume_ml"],
        "dice": report["dice_with_reference"],
        "box_source": report["box"]["source"],
    }
