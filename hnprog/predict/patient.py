"""Prediction for one patient: read and check, preprocess, forward pass, outputs on the CT grid.

:func:`predict_patient` is three steps in a row, which :func:`hnprog.predict.predict_cohort`
runs as a pipeline across patients:

1. :func:`load_patient`: the one patient loader (:func:`hnprog.data.loading.load_case`: files,
   HU/SUV, box, overlap and label checks) and the one preprocessing pipeline
   (:func:`hnprog.transforms.preprocess_case`, with the parameters recorded in the preset);
2. :func:`forward`: the model's forward pass (a :class:`~hnprog.presets.Preset` or a
   :class:`~hnprog.presets.FoldEnsemble`);
3. :func:`write_outputs`: the probability map put back onto the original CT grid
   (:func:`hnprog.transforms.invert_to_reference`), the mask, the overlay and the reports
   (:mod:`hnprog.predict.outputs`), so the contour opens over the patient's scan in 3D Slicer
   or ITK-SNAP.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import SimpleITK as sitk

from hnprog import __version__
from hnprog.data.cohort import Patient
from hnprog.data.loading import load_case
from hnprog.errors import InputError
from hnprog.geometry import BoundingBox, Grid
from hnprog.io import input_fingerprint, write_image
from hnprog.plotting import DEFAULT_SUV_WINDOW, check_suv_window
from hnprog.presets.ensemble import FOLD_SPREAD, MEMBER_RISKS
from hnprog.presets.tta import MirrorTTA
if TYPE_CHECKING:
    import pandas as pd

from hnprog.predict.outputs import (
    MASK_FILE,
    OVERLAY_FILE,
    PROBABILITY_FILE,
    RISK_FILE,
    RISK_MAP_FILE,
    PatientPrediction,
    write_report,
    write_risk_csv,
)
from hnprog.transforms import CT, MASK, PET, PreprocessConfig, invert_to_reference, preprocess_case

__all__ = [
    "LoadedPatient",
    "PredictionJob",
    "forward",
    "inference_record",
    "job_fingerprint",
    "load_patient",
    "load_predictor",
    "models_used",
    "predict_patient",
    "preprocess_config_from_spec",
    "risk_threshold",
    "write_outputs",
]


def load_predictor(models: str | os.PathLike | Sequence[str | os.PathLike], *,
                   tta: bool = False, **options: Any) -> Any:
    """Load one model or an ensemble of folds for prediction.

    Args:
        models: a preset name, ``hf://`` URI or folder, or a list of them (averaged as a
            :class:`~hnprog.presets.FoldEnsemble`).
        tta: bool. Average each prediction with the one on the left-right mirrored image
            (:class:`~hnprog.presets.tta.MirrorTTA`; twice the forward time). Defaults to
            False.
        **options: passed to :func:`hnprog.from_preset`: ``runtime`` (``"keras"``,
            ``"openvino"``, ``"onnx"``, ``"auto"``), ``precision`` (``"fp32"``, ``"bf16"``),
            ``cache_dir``, ``endpoint``, ``local_files_only``.

    Returns:
        Preset, ExportedPreset, FoldEnsemble or MirrorTTA, with ``.predict`` and
        ``.preprocessing``.
    """
    from hnprog.presets import from_preset

    if not isinstance(models, (str, os.PathLike)) and len(models) == 1:
        models = models[0]
    predictor = from_preset(models if isinstance(models, (str, os.PathLike)) else list(models),
                            **options)
    return MirrorTTA(predictor) if tta else predictor


def preprocess_config_from_spec(spec: dict[str, Any] | None) -> PreprocessConfig:
    """The :class:`~hnprog.transforms.PreprocessConfig` recorded with a model
    (:meth:`PreprocessConfig.from_recorded`).

    Raises:
        InputError: if the model records no preprocessing or another channel order.
    """
    return PreprocessConfig.from_recorded(spec)


def models_used(predictor: Any) -> list[str]:
    """The names of the predictor's models (its folds for an ensemble), as reports list them."""
    members = getattr(predictor, "members", None) or [predictor]
    return [str(getattr(m, "source", "") or getattr(m, "name", "model")) for m in members]


def risk_threshold(predictor: Any) -> float | None:
    """The log-hazard above which a patient is high risk: the models' recorded thresholds,
    averaged over the folds; None when no model records one."""
    metadata = getattr(predictor, "metadata", None)
    records = metadata if isinstance(metadata, list) else [metadata or {}]
    values = [r.get("outputs", {}).get("risk", {}).get("threshold") for r in records]
    values = [float(v) for v in values if v is not None]
    return float(np.mean(values)) if values else None


@dataclasses.dataclass(frozen=True)
class PredictionJob:
    """One patient to predict: its files (``patient.mask`` is the reference mask, if any),
    the output folder and the box (None: the automatic box from the PET)."""

    patient: Patient
    out_dir: Path
    box: BoundingBox | None = None

    @property
    def patient_id(self) -> str:
        return self.patient.patient_id


def job_fingerprint(job: PredictionJob, config: PreprocessConfig, models: Sequence[str], *,
                    overlay: bool, threshold: float,
                    suv_window: Sequence[float] = DEFAULT_SUV_WINDOW) -> str:
    """What a patient's outputs depend on, hashed (:func:`hnprog.io.input_fingerprint`): the
    CT, PET and reference mask files (size and modification time), the box and its source,
    the preprocessing, the models, the mask threshold, whether an overlay is drawn and, when
    it is not the default, the overlay's SUV window.

    ``report.json`` records it; a resumed cohort run redoes a patient whose fingerprint
    changed (replaced images, ``--auto-box`` instead of given boxes, other settings).
    """
    patient = job.patient
    settings = {"box": None if job.box is None else job.box.to_dict(),
                "preprocessing": config.to_dict(), "models": list(models),
                "overlay": bool(overlay), "mask_threshold": float(threshold)}
    window = tuple(float(v) for v in suv_window)
    if overlay and window != DEFAULT_SUV_WINDOW:  # absent by default: older reports resume
        settings["overlay_suv_window"] = list(window)
    return input_fingerprint((patient.ct, patient.pet, patient.mask), settings)


@dataclasses.dataclass
class LoadedPatient:
    """A patient read, checked, boxed and preprocessed, ready for the forward pass."""

    job: PredictionJob
    config: PreprocessConfig
    ct_image: sitk.Image
    pet_image: sitk.Image
    reference: sitk.Image | None  # the reference mask on its own grid
    image: np.ndarray  # (1, D, H, W, 2) float32, the network input
    grid: Grid
    box: BoundingBox
    box_source: str
    start: float
    stages: StageTimer
    notes: tuple[str, ...] = ()  # the patient's own warnings, recorded in report.json


class StageTimer:
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


def load_patient(job: PredictionJob, config: PreprocessConfig) -> LoadedPatient:
    """Step 1: read and check the patient, find the box and preprocess (no model needed).

    Raises:
        PatientError: on any problem with the patient's files, values or geometry.
    """
    start = time.perf_counter()
    stages = StageTimer()
    notes: list[str] = []  # what load_case warned of, for report.json
    case = load_case(job.patient, job.box, notes=notes)
    stages.end("read")
    prepared = preprocess_case(case.replace(images={CT: case.images[CT], PET: case.images[PET]}),
                               config)
    stages.end("preprocess")
    return LoadedPatient(job, config, case.images[CT], case.images[PET], case.images.get(MASK),
                         prepared.image[None], prepared.grid, case.box,
                         "given" if job.box is not None else "automatic", start, stages,
                         tuple(notes))


def risk_map_method(risk_map: bool | str | None) -> str | None:
    """The risk-map method a ``risk_map`` argument asks for: None (no map), True (the
    default, ``"occlusion"``) or a method of :data:`hnprog.models.risk_map.RISK_MAP_METHODS`.

    Raises:
        InputError: on another value.
    """
    from hnprog.models.risk_map import RISK_MAP_METHODS

    if risk_map is None or risk_map is False:
        return None
    if risk_map is True:
        return RISK_MAP_METHODS[0]
    if risk_map not in RISK_MAP_METHODS:
        raise InputError(f"risk_map must be True, False or one of {RISK_MAP_METHODS}. "
                         f"Received: risk_map={risk_map!r}")
    return str(risk_map)


def forward(loaded: LoadedPatient, predictor: Any, *,
            risk_map: bool | str = False) -> tuple[LoadedPatient, dict[str, Any]]:
    """Step 2: the model's forward pass on one loaded patient.

    With ``risk_map`` (:func:`risk_map_method`) the outputs also hold ``"risk_map"``,
    ``(1, D, H, W)`` on the network grid (:func:`hnprog.risk_activation_map`: occlusion of
    the predictor's own risk, an ensemble's mean; Grad-CAM averaged over the folds), and
    ``"risk_map_method"``.
    """
    loaded.stages.restart()
    outputs = predictor.predict(loaded.image)
    method = risk_map_method(risk_map)
    if method is not None:
        from hnprog.models.risk_map import risk_activation_map

        if method == "occlusion":
            outputs["risk_map"] = risk_activation_map(predictor, loaded.image)
        else:
            members = getattr(predictor, "members", None) or [predictor]
            outputs["risk_map"] = np.mean([risk_activation_map(
                m.model, loaded.image, method=method) for m in members], axis=0)
        outputs["risk_map_method"] = method
    loaded.stages.end("forward")
    return loaded, outputs


def _on_grid_of(mask: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """The mask on the reference's grid, mapped by physical position (nearest neighbour)."""
    if Grid.of(mask) == Grid.of(reference):
        return mask
    return sitk.Resample(mask, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                         sitk.sitkUInt8)


def write_outputs(loaded: LoadedPatient, outputs: dict[str, np.ndarray], predictor: Any, *,
                  overlay: bool = True, threshold: float = 0.5,
                  times: Sequence[float] | None = None,
                  suv_window: Sequence[float] = DEFAULT_SUV_WINDOW,
                  clinical: pd.DataFrame | None = None,
                  ) -> tuple[PatientPrediction, dict]:
    """Step 3: put the outputs back on the CT grid and write the patient's files, report last.

    With a risk output and presets that record a survival baseline, the survival
    probabilities at ``times`` (days; default 1, 2, 3 and 5 years) go into ``risk.csv`` and
    ``report.json`` (:func:`hnprog.predict.survival.predict_survival`). The overlay
    (:func:`hnprog.plotting.plot_overlay`) shows the PET in ``suv_window`` (SUV) and is
    centred on the predicted GTVt, else the reference, else the patient's box. With a
    clinical table, the deep + clinical risk goes into ``risk.csv`` and ``report.json`` too
    (:mod:`hnprog.predict.clinical`).

    Returns:
        tuple of the PatientPrediction and the ``report.json`` content.
    """
    job, ct_image, stages = loaded.job, loaded.ct_image, loaded.stages
    stages.restart()
    patient_id, out_dir = job.patient_id, job.out_dir
    risk = float(outputs["risk"][0, 0]) if "risk" in outputs else float("nan")
    fold_sd = float(outputs[FOLD_SPREAD][0, 0]) if FOLD_SPREAD in outputs else None
    threshold_value = risk_threshold(predictor)
    risk_group = None
    if threshold_value is not None and np.isfinite(risk):
        risk_group = "high" if risk > threshold_value else "low"
    survival = None
    if "risk" in outputs and np.isfinite(risk):
        from hnprog.predict.survival import predict_survival

        # each fold's own risk, for its own survival baseline
        member_risks = ([float(r) for r in outputs[MEMBER_RISKS][0]] if MEMBER_RISKS in outputs
                        else [risk])
        survival = predict_survival(predictor, member_risks, times)
    clinical_risk = None
    if clinical is not None and "risk" in outputs and np.isfinite(risk):
        from hnprog.predict.clinical import predict_clinical

        clinical_risk = predict_clinical(predictor, member_risks, clinical, patient_id)

    files: dict[str, str] = {}
    volume_ml = dice = hd95 = None
    mask_image = reference = risk_image = risk_map_record = None
    # The NIfTI outputs are compressed and written in background threads (SimpleITK releases
    # the GIL) while the overlay is drawn; leaving the block waits for them and re-raises.
    writes = []
    with ThreadPoolExecutor(max_workers=2) as writers:
        if "segmentation" in outputs:
            probability = invert_to_reference(outputs["segmentation"][0, ..., 0], loaded.grid,
                                              ct_image)
            mask_image = sitk.Cast(probability >= threshold, sitk.sitkUInt8)
            writes = [writers.submit(write_image, probability, out_dir / PROBABILITY_FILE),
                      writers.submit(write_image, mask_image, out_dir / MASK_FILE)]
            files.update(probability=PROBABILITY_FILE, mask=MASK_FILE)
            voxels = int(np.count_nonzero(sitk.GetArrayViewFromImage(mask_image)))
            volume_ml = voxels * float(np.prod(ct_image.GetSpacing())) / 1000.0
            if loaded.reference is not None:
                from hnprog.metrics import dice_score, surface_distances

                reference = _on_grid_of(loaded.reference, ct_image)
                predicted_array = sitk.GetArrayViewFromImage(mask_image)
                reference_array = sitk.GetArrayViewFromImage(reference)
                dice = dice_score(predicted_array, reference_array)
                hd95 = surface_distances(predicted_array, reference_array,
                                         spacing=ct_image.GetSpacing())["hd95_mm"]
        if "risk_map" in outputs:
            risk_image = invert_to_reference(outputs["risk_map"][0], loaded.grid, ct_image)
            writes.append(writers.submit(write_image, risk_image, out_dir / RISK_MAP_FILE))
            files["risk_map"] = RISK_MAP_FILE
            risk_map_record = {"file": RISK_MAP_FILE, "method": outputs["risk_map_method"]}
        if overlay:
            from hnprog.plotting import plot_overlay

            digits = 3  # enough digits that a risk and the threshold it is compared with differ
            while (risk_group and digits < 6
                   and f"{risk:+.{digits}f}" == f"{threshold_value:+.{digits}f}"):
                digits += 1
            title = f"{patient_id}   risk (log-hazard) {risk:+.{digits}f}"
            if risk_group:
                side = ">" if risk_group == "high" else "<="
                title += (f"   {risk_group} risk ({side} model threshold "
                          f"{threshold_value:+.{digits}f})")
            if mask_image is not None and not volume_ml:
                title += "\nno GTVt predicted (no voxel reaches the mask threshold)"
            plot_overlay(ct_image, loaded.pet_image, mask_image, out_dir / OVERLAY_FILE,
                         title=title, reference_mask=reference, box=loaded.box,
                         suv_window=suv_window,
                         survival_curve=None if survival is None else survival.to_dict(),
                         risk_map=risk_image, risk_map_method=outputs.get("risk_map_method"))
            files["overlay"] = OVERLAY_FILE
        for write in writes:
            write.result()
    stages.end("outputs")

    prediction = PatientPrediction(patient_id, risk, risk_group, loaded.box, loaded.box_source,
                                   volume_ml, dice, out_dir, survival=survival,
                                   risk_fold_sd=fold_sd, clinical=clinical_risk,
                                   hd95_mm=hd95)
    models = models_used(predictor)
    write_risk_csv(prediction, threshold_value, models)
    files["risk"] = RISK_FILE
    patient = job.patient
    report = write_report(
        prediction,
        inputs={"ct": str(patient.ct), "pet": str(patient.pet),
                "reference_mask": None if patient.mask is None else str(patient.mask)},
        threshold=threshold_value, mask_threshold=threshold,
        preprocessing=loaded.config.to_dict(), models=models, files=files,
        versions=_versions(), seconds=time.perf_counter() - loaded.start,
        stage_seconds=stages.seconds, inference=inference_record(predictor),
        warnings=[*model_warnings(predictor), *loaded.notes], risk_map=risk_map_record,
        survival_note=_survival_reason(predictor, outputs),
        input_fingerprint=job_fingerprint(job, loaded.config, models, overlay=overlay,
                                          threshold=threshold, suv_window=suv_window))
    return prediction, report


SYNTHETIC_WEIGHTS_WARNING = (
    "{models} {verb} trained on hnprog's synthetic PET/CT cohort, to try the tool: "
    "{pronoun} risks and contours mean nothing for real patients. Train or fine-tune on your "
    "own cohort (hnprog train / finetune) before reading them")


def model_warnings(predictor: Any) -> list[str]:
    """What every prediction with this predictor must say: today, that its weights were
    trained on synthetic data (the presets' ``dataset.synthetic`` label). ``report.json``
    records the list (``warnings``) and ``hnprog predict`` prints it on every run."""
    inner = predictor.predictor if isinstance(predictor, MirrorTTA) else predictor
    members = list(getattr(inner, "members", None) or [inner])
    synthetic = [getattr(m, "name", "model") for m in members
                 if ((getattr(m, "metadata", None) or {}).get("dataset") or {}).get("synthetic")]
    if not synthetic:
        return []
    many = len(synthetic) > 1
    shown = ", ".join(synthetic[:3]) + (f" and {len(synthetic) - 3} more" if len(synthetic) > 3
                                        else "")
    return [SYNTHETIC_WEIGHTS_WARNING.format(models=f"the weights of {shown}",
                                             verb="were" if many else "was",
                                             pronoun="their")]


def inference_record(predictor: Any) -> dict[str, Any]:
    """How a predictor computes, as ``report.json`` records it: ``runtime`` (``keras``,
    ``openvino``, ``onnx``), ``precision`` (``fp32``, ``bf16``) and ``tta`` (test-time
    mirroring, bool)."""
    tta = isinstance(predictor, MirrorTTA)
    inner = predictor.predictor if tta else predictor
    first = (getattr(inner, "members", None) or [inner])[0]
    return {"runtime": getattr(first, "runtime", "keras"),
            "precision": getattr(first, "precision", "fp32"), "tta": tta}


def _survival_reason(predictor: Any, outputs: dict[str, np.ndarray]) -> str | None:
    """Why ``report.json`` holds no survival curve (None when it holds one)."""
    from hnprog.predict.survival import baselines

    if "risk" not in outputs:
        return "the model has no risk output"
    if baselines(predictor) is None:
        return ("the model records no survival baseline (a preset written before hnprog "
                "recorded one): risk only")
    return None


def _versions() -> dict[str, str]:
    import keras

    return {"hnprog": __version__, "keras": keras.__version__, "backend": keras.backend.backend(),
            "simpleitk": sitk.Version_VersionString()}


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
    times: Sequence[float] | None = None,
    risk_map: bool | str = False,
    suv_window: Sequence[float] = DEFAULT_SUV_WINDOW,
    clinical: pd.DataFrame | None = None,
    loaded: LoadedPatient | None = None,
) -> PatientPrediction:
    """Predict one patient's risk and GTVt from a CT and a PET file.

    Writes into ``out_dir``: ``risk.csv`` (log-hazard, risk group, models), the GTVt
    probability map ``gtvt_probability.nii.gz`` (float32) and mask ``gtvt_mask.nii.gz``
    (uint8, probability >= ``threshold``) on the original CT grid, ``overlay.png`` (axial,
    coronal and sagittal views through the predicted GTVt, else the reference, else the box:
    :func:`hnprog.plotting.plot_overlay`) and ``report.json`` (box and its source,
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
        reference_mask: path, optional. A reference GTVt mask (any grid: it is mapped onto
            the CT by physical position) to report a Dice and draw in the overlay. Defaults
            to None.
        reference_labels: sequence of int. Labels the reference mask may hold; 1 is the
            GTVt. Defaults to ``(0, 1)`` (HECKTOR 2022 masks: ``(0, 1, 2)``).
        overlay: bool. Write ``overlay.png``. Defaults to True.
        threshold: float. Probability threshold of the mask. Defaults to 0.5.
        times: sequence of float, optional. Days at which to report the survival
            probability (``survival_<days>d`` in ``risk.csv``), when the presets record a
            baseline. Defaults to 365, 730, 1095 and 1825.
        risk_map: bool or str. Also write ``risk_map.nii.gz``: the risk activation map
            (:func:`hnprog.risk_activation_map`) put back on the CT grid, float32, 0 outside
            the network's crop; it is drawn as a third row of the overlay and
            ``report.json`` records its method. True or ``"occlusion"``: occlusion
            sensitivity of the predicted risk (129 forward passes); ``"gradcam"``: Grad-CAM
            over the encoder levels (one pass, coarser). Defaults to False.
        suv_window: tuple of float. The overlay's PET display window (low, high), SUV: the
            ends of its colour bar, the same for every patient. Defaults to (0, 10).
        clinical: DataFrame, optional. A clinical table holding ``patient_id``
            (:func:`hnprog.data.read_clinical`): with presets that record a clinical Cox
            model, ``risk.csv`` gains ``risk_clinical`` (:mod:`hnprog.predict.clinical`).
            Defaults to None.
        loaded: LoadedPatient, optional. The same patient (files, box) already read, checked
            and preprocessed by :func:`load_patient` with the predictor's preprocessing, as
            ``hnprog predict`` does before Keras starts so that bad inputs fail in seconds.
            Defaults to None: the files are read here.

    Returns:
        PatientPrediction.

    Raises:
        PatientError: naming the patient and file, on unreadable inputs, a CT not in HU or
            a PET not in SUV (swapped files, Bq/mL), PET and CT that do not overlap, or a box
            outside the images, or a ``suv_window`` that is not two finite SUVs, the lower
            first (InputError).
    """
    if overlay:
        suv_window = check_suv_window(suv_window)
    patient = Patient(patient_id, Path(ct), Path(pet),
                      None if reference_mask is None else Path(reference_mask),
                      mask_labels=tuple(reference_labels))
    job = PredictionJob(patient, Path(out_dir), box)
    from hnprog.predict.survival import check_times, survival_note

    from hnprog.predict.clinical import check_clinical

    times = check_times(times)
    check_clinical(predictor, clinical, [patient_id])
    survival_note(predictor)
    config = preprocess_config_from_spec(predictor.preprocessing)
    if loaded is None or (loaded.config, loaded.job.patient, loaded.job.box) != (
            config, patient, box):
        loaded = load_patient(job, config)
    else:  # the time spent waiting (for Keras) between loading and now is not the patient's
        loaded = dataclasses.replace(loaded, job=job, start=time.perf_counter() - sum(
            loaded.stages.seconds.values()))
    prediction, _ = write_outputs(*forward(loaded, predictor, risk_map=risk_map), predictor,
                                  overlay=overlay, threshold=threshold, times=times,
                                  suv_window=suv_window, clinical=clinical)
    return prediction
