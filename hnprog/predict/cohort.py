"""Prediction for a whole cohort, through the cohort runner, resumable.

:func:`predict_cohort` runs :mod:`hnprog.predict.patient`'s three steps as a pipeline on the
cohort runner (:func:`hnprog.data.runner.run_cohort`): while the model runs on one patient,
the next is read and preprocessed and the previous one's outputs are written, in background
threads, so at most three patients are in memory.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hnprog.data.cohort import Cohort
from hnprog.data.runner import FAILURES_FILE, run_cohort
from hnprog.errors import InputError
from hnprog.io import atomic_write, output_folder, write_json
from hnprog.plotting import DEFAULT_SUV_WINDOW, check_suv_window
from hnprog.predict.outputs import PREDICTION_COLUMNS, REPORT_FILE, report_row
from hnprog.predict.patient import (
    PredictionJob,
    forward,
    inference_record,
    job_fingerprint,
    load_predictor,
    load_patient,
    models_used,
    preprocess_config_from_spec,
    risk_map_method,
    write_outputs,
)

__all__ = ["PREDICTIONS_FILE", "predict_cohort"]

PREDICTIONS_FILE = "predictions.csv"
METRICS_FILE = "metrics.json"
EVALUATION_DIR = "evaluation"


def predict_cohort(
    cohort: Cohort,
    predictor: Any,
    out_dir: str | os.PathLike,
    *,
    overlay: bool = True,
    resume: bool = True,
    progress: bool = True,
    ids: Sequence[str] | None = None,
    executor: concurrent.futures.Executor | None = None,
    times: Sequence[float] | None = None,
    risk_map: bool | str = False,
    suv_window: Sequence[float] = DEFAULT_SUV_WINDOW,
    clinical: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Predict every patient of a cohort; resume where a previous run stopped.

    Each patient gets a folder ``out_dir/<ID>/`` as :func:`hnprog.predict.predict_patient`
    writes it. When ``resume`` is True a patient is skipped if its ``report.json`` records the
    same input fingerprint (:func:`hnprog.predict.patient.job_fingerprint`: the same CT, PET
    and mask files by size and modification time, the same box, preprocessing, models and
    settings), and redone otherwise; a folder holding another model's predictions is refused.
    The folder is locked for the run (:func:`hnprog.io.output_folder`), so a second run into
    it is refused, and temporary files left by a killed run are removed. A patient that fails
    is recorded in ``failures.csv`` with the reason and the others go on. At the end ``predictions.csv`` (one row per patient, in cohort
    order) and ``metrics.json`` are written; with endpoints the metrics hold the C-index, with
    reference masks the mean Dice. With endpoints, ``evaluation/`` also receives the full
    evaluation (:func:`hnprog.evaluation.evaluate_run`: C-index with its interval, Uno's C,
    time-dependent AUC, Brier score and calibration from the survival columns, per centre,
    and the plots).

    Each ``report.json`` records the patient's stage times (``stage_seconds``, waits excluded)
    and its ``seconds`` from reading to report.

    Args:
        cohort: Cohort. From :func:`hnprog.data.cohort.read_cohort`.
        predictor: Preset or FoldEnsemble, from :func:`hnprog.predict.load_predictor`.
        out_dir: path. Output folder.
        overlay: bool. Write each patient's overlay picture. Defaults to True.
        resume: bool. Skip patients already done with the same models. Defaults to True.
        progress: bool. Show a progress bar. Defaults to True.
        ids: sequence of str, optional. Patients to predict. Defaults to all.
        executor: concurrent.futures.Executor, optional. Where patients run, e.g. a Dask
            ``Client(...).get_executor()`` (:func:`hnprog.data.distributed.cohort_executor`):
            each worker loads the predictor once from the same preset folders (so they must
            be on a file system the workers see, as must the cohort and ``out_dir``) and does
            each of its patients from reading to report. Defaults to None: this process, the
            three steps as a pipeline.
        times: sequence of float, optional. Days of the ``survival_<days>d`` columns, when
            the presets record a survival baseline (else the run warns once and predicts
            risks only). Defaults to 365, 730, 1095 and 1825.
        risk_map: bool or str. Also write each patient's ``risk_map.nii.gz``: True or
            ``"occlusion"``, or ``"gradcam"`` (see :func:`hnprog.predict.predict_patient`).
            Defaults to False.
        suv_window: tuple of float. The overlays' PET display window (low, high), SUV.
            Defaults to (0, 10).
        clinical: DataFrame, optional. The patients' clinical table
            (:func:`hnprog.data.read_clinical`): with presets that record a clinical Cox
            model, ``risk_clinical`` is added (:mod:`hnprog.predict.clinical`); checked for
            every patient before the first one runs. Defaults to None.

    Returns:
        tuple of (predictions DataFrame, failures DataFrame, metrics dict). The metrics
        count ``n_predicted`` patients, of which ``n_resumed`` were done by an earlier run.

    Raises:
        InputError: if another run holds ``out_dir``, ``resume`` is True and ``out_dir``
            holds predictions of other models, or ``suv_window`` is not two finite SUVs, the
            lower first.
    """
    if overlay:
        suv_window = check_suv_window(suv_window)
    with output_folder(out_dir) as out_dir:  # one writer at a time; stale temp files removed
        return _predict_cohort(cohort, predictor, out_dir, overlay=overlay, resume=resume,
                               progress=progress, ids=ids, executor=executor, times=times,
                               risk_map=risk_map, suv_window=suv_window, clinical=clinical)


def _predict_cohort(cohort: Cohort, predictor: Any, out_dir: Path, *, overlay: bool,
                    resume: bool, progress: bool, ids: Sequence[str] | None,
                    executor: concurrent.futures.Executor | None,
                    times: Sequence[float] | None, risk_map: bool | str,
                    suv_window: Sequence[float],
                    clinical: pd.DataFrame | None = None,
                    ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    from hnprog.metrics import concordance_index
    from hnprog.predict.clinical import check_clinical, predict_clinical
    from hnprog.predict.survival import check_times, survival_note

    times = check_times(times)
    map_method = risk_map_method(risk_map)
    patients = cohort.patients if ids is None else [cohort[i] for i in ids]
    check_clinical(predictor, clinical, [p.patient_id for p in patients])
    survival_note(predictor)
    models = models_used(predictor)
    inference = inference_record(predictor)
    jobs = [PredictionJob(p, out_dir / p.patient_id, cohort.bboxes.get(p.patient_id))
            for p in patients]
    config = preprocess_config_from_spec(predictor.preprocessing)

    def read_report(job: PredictionJob) -> dict[str, Any] | None:
        try:
            report = json.loads((job.out_dir / REPORT_FILE).read_text())
        except (OSError, ValueError):
            return None
        return report if isinstance(report, dict) else None

    if resume:
        others = {pid: report.get("models") for pid, report in
                  ((job.patient_id, read_report(job)) for job in jobs)
                  if report is not None and report.get("models") != models}
        if others:
            pid, other = next(iter(others.items()))
            raise InputError(
                f"output folder {out_dir} holds predictions of other models ({len(others)} "
                f"patients, e.g. {pid}: {other}); resuming with {models} would mix them. "
                "Choose another output folder, or --restart (resume=False) to predict "
                "every patient again")

    def earlier_report(job: PredictionJob) -> dict[str, Any] | None:
        report = read_report(job)
        if report is None or report.get("input_fingerprint") != job_fingerprint(
                job, config, models, overlay=overlay, threshold=0.5, suv_window=suv_window):
            return None  # inputs or settings changed since (or an older report): redo
        if report.get("inference", inference) != inference:
            return None  # another runtime, precision or mirroring: predict again
        recorded_map = (report.get("risk_map") or {}).get("method") or (
            "gradcam" if report.get("files", {}).get("risk_map") else None)  # older reports
        if recorded_map != map_method:
            return None  # a risk map asked for, no longer, or by another method: predict again
        survival = report.get("survival") or {}
        if "times_days" in survival and survival["times_days"] != list(times):
            return None  # asked for survival at other days: predict again
        recorded = (report.get("risk") or {}).get("clinical")
        if (recorded is None) != (clinical is None) or (
                recorded is not None and recorded.get("covariates") != predict_clinical(
                    predictor, [0.0] * len(models), clinical, job.patient_id)["covariates"]):
            return None  # clinical covariates asked for, dropped or changed: predict again
        return report

    steps = [
        functools.partial(load_patient, config=config),
        functools.partial(forward, predictor=predictor, risk_map=risk_map),
        lambda loaded_outputs: write_outputs(*loaded_outputs, predictor, overlay=overlay,
                                             times=times, suv_window=suv_window,
                                             clinical=clinical)[1],
    ]
    if executor is not None:
        steps = [functools.partial(_predict_job, recipe=PredictorRecipe.of(predictor),
                                   config=config, overlay=overlay, times=times,
                                   risk_map=risk_map, suv_window=suv_window,
                                   clinical=clinical)]
    run = run_cohort(jobs, steps, resume=earlier_report if resume else None,
                     progress=progress, desc="predict", failures_file=out_dir / FAILURES_FILE,
                     executor=executor)

    rows = [report_row(r) for r in run.results.values()]
    extra = list(dict.fromkeys(k for row in rows for k in row if k not in PREDICTION_COLUMNS))
    predictions = pd.DataFrame(rows, columns=[*PREDICTION_COLUMNS, *extra])
    metrics: dict[str, Any] = {"n_patients": len(patients), "n_predicted": len(predictions),
                               "n_resumed": len(run.resumed), "n_failed": len(run.failures),
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
            if not np.isfinite(metrics["c_index"]):  # written as null: say why
                metrics["c_index_null_because"] = (
                    "no comparable pair of patients (no event, or no event before another "
                    "patient's time)")
    if "event" in predictions.columns:
        from hnprog.data.cohort import centre_from_id
        from hnprog.evaluation import evaluate_run

        evaluated = predictions.dropna(subset=["event", "time"])
        if evaluate_run(evaluated, out_dir / EVALUATION_DIR, title="Prediction",
                        centres=[centre_from_id(p) or "unknown"
                                 for p in evaluated["patient_id"]]) is not None:
            metrics["evaluation"] = f"{EVALUATION_DIR}/metrics.json"
    dices = predictions["dice"].dropna() if len(predictions) else pd.Series(dtype=float)
    if len(dices):
        metrics["dice_mean"] = float(dices.mean())
        metrics["dice_per_patient_n"] = int(len(dices))
    distances = (predictions["hd95_mm"].dropna() if "hd95_mm" in predictions.columns
                 else pd.Series(dtype=float))
    if len(distances):  # an empty predicted mask has none: the median, not the mean
        metrics["hd95_mm_median"] = float(distances.median())
        metrics["hd95_per_patient_n"] = int(len(distances))
    with atomic_write(out_dir / PREDICTIONS_FILE, newline="") as f:
        predictions.to_csv(f, index=False)
    write_json(metrics, out_dir / METRICS_FILE)
    return predictions, run.failure_table, metrics


@dataclasses.dataclass(frozen=True)
class PredictorRecipe:
    """How to load a predictor again in another process (a Dask worker): its presets' folders
    (or registered names and ``hf://`` URIs), runtime, precision and test-time mirroring, and
    the source names the reports give them."""

    sources: tuple[str, ...]
    names: tuple[str, ...]
    runtime: str
    precision: str
    tta: bool

    @classmethod
    def of(cls, predictor: Any) -> PredictorRecipe:
        """The recipe of a loaded predictor (from :func:`hnprog.predict.load_predictor`)."""
        record = inference_record(predictor)
        inner = getattr(predictor, "predictor", predictor) if record["tta"] else predictor
        members = getattr(inner, "members", None) or [inner]
        # a folder by its absolute path; a registered name or hf:// URI as it is, so that the
        # worker checks the registry's pinned checksums too
        sources = tuple(str(Path(m.source).resolve()) if Path(str(m.source)).is_dir()
                        else str(m.source) for m in members)
        return cls(sources, tuple(models_used(inner)), record["runtime"], record["precision"],
                   record["tta"])

    def load(self) -> Any:
        """The predictor, loaded once per process and recipe."""
        return _load_recipe(self)


@functools.lru_cache(maxsize=2)
def _load_recipe(recipe: PredictorRecipe) -> Any:
    loaded = load_predictor(list(recipe.sources), runtime=recipe.runtime,
                            precision=recipe.precision)
    members = [dataclasses.replace(m, source=name)  # reports name the models as asked for
               for m, name in zip(getattr(loaded, "members", [loaded]), recipe.names)]
    predictor = members[0] if len(members) == 1 else type(loaded)(members)
    if recipe.tta:
        from hnprog.presets.tta import MirrorTTA

        predictor = MirrorTTA(predictor)
    return predictor


def _predict_job(job: PredictionJob, *, recipe: PredictorRecipe, config: Any,
                 overlay: bool, times: Sequence[float], risk_map: bool,
                 suv_window: Sequence[float],
                 clinical: pd.DataFrame | None = None) -> dict[str, Any]:
    """One patient from reading to report in a worker process: the report."""
    predictor = recipe.load()
    loaded = load_patient(job, config)
    return write_outputs(*forward(loaded, predictor, risk_map=risk_map), predictor,
                         overlay=overlay, times=times, suv_window=suv_window,
                         clinical=clinical)[1]
