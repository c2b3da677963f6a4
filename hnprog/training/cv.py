"""The paper's cross-validation protocol for the three deep tasks (Andrearczyk et al., 2021).

For each of 5 folds (20% test, stratified by event and, when known, by centre; the rest split
80% training / 20% validation), or with ``split="centre"`` for each centre held out in turn
(leave-one-centre-out, :func:`hnprog.splits.leave_one_centre_out_splits`), each task
(:class:`~hnprog.models.task.Task`: multitask (1,1), radiomics (1,0), segmentation (0,1)) is
trained (:func:`train_model`), its
best epoch by validation combined loss is kept, and the test patients are predicted. The
results are a :class:`hnprog.reporting.CVResult`, written as one table in the format of the
paper's Tables 1-2 (C-index and Dice, mean ± standard error over folds), with the per-patient
predictions and a Kaplan-Meier plot per task. Output folder::

    OUT/cv.json                       settings of the run (``--resume`` checks them)
    OUT/results.{csv,md,json}         the table; results_per_fold.csv
    OUT/predictions.csv               model, fold, patient_id, time, event, risk, dice
    OUT/kaplan_meier_<task>.png       test patients split at the median predicted risk
    OUT/<task>/fold-<k>/              one run folder per fold (preset/, history.csv, ...)
    OUT/failures.csv                  with skip_bad, the patients left out by the input check
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hnprog.data.runner import FAILURES_FILE, write_failures
from hnprog.errors import InputError
from hnprog.io import write_json
from hnprog.models.task import Task
from hnprog.reporting import CV_PREDICTION_COLUMNS, CVResult
from hnprog.training.config import TrainingConfig
from hnprog.training.folders import CV_FILE
from hnprog.training.fit import (CACHE_DIR, ModelCache, export_preset, prepare_run_folder,
                                 train_model)
from hnprog.training.precheck import precheck_cohort
from hnprog.training.runs import (
    check_training_set,
    cohort_datasets,
    dataset_metadata,
    predict_dataset,
    baseline_of,
    clinical_model_of,
    patient_centres,
    read_clinical_of,
    read_cohort_with_endpoints,
    training_risks,
)

__all__ = ["CVResult", "cross_validate"]



def _task_configs(config: TrainingConfig, tasks: Sequence[Task | str]) -> dict[Task, TrainingConfig]:
    """Each task's config: ``config`` with the task's loss weights (its heads unchanged)."""
    parsed = [Task.parse(t, name="tasks") for t in tasks]
    if not parsed:
        raise InputError("tasks must name at least one of "
                         f"{[t.value for t in Task]}. Received: tasks={list(tasks)}")
    return {task: config.replace(task=task) for task in dict.fromkeys(parsed)}


def _stored_cv_fingerprint(document: dict[str, Any]) -> dict[str, Any]:
    """The fingerprint of a ``cv.json``, also one of an older version (``settings``)."""
    stored = dict(document["fingerprint"])
    if "settings" in stored:
        stored["tasks"] = stored.pop("settings")
    stored["training"] = TrainingConfig.from_dict(stored["training"]).run_fingerprint()
    return stored


def cross_validate(
    data: str | os.PathLike | Any,
    out_dir: str | os.PathLike,
    *,
    config: TrainingConfig | None = None,
    tasks: Sequence[Task | str] = tuple(Task),
    radiomics_features: str | os.PathLike | pd.DataFrame | None = None,
    clinical: str | os.PathLike | pd.DataFrame | None = None,
    cache_dir: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
    verbose: int | str = "auto",
    settings: Sequence[str] | None = None,
    split: str = "stratified",
    centres: Mapping[str, Any] | None = None,
    endpoints: str | os.PathLike | pd.DataFrame | None = None,
    bboxes: str | os.PathLike | Mapping[str, Any] | None = None,
    skip_bad: bool = False,
    progress: bool = True,
) -> CVResult:
    """Run the paper's 5-fold cross-validation of the deep tasks on a cohort.

    ``data``, ``out_dir`` (laid out as the module docstring says), ``cache_dir`` (shared by all
    folds), ``overwrite``, ``verbose``, ``endpoints``, ``bboxes``, ``skip_bad`` and
    ``progress`` are those of :func:`~hnprog.training.runs.train_on_cohort`: every patient is
    checked (:func:`hnprog.training.precheck.precheck_cohort`) before the first fold, and with
    ``skip_bad`` the folds are made of the patients that pass, the others listed in
    ``OUT/failures.csv``.

    Args:
        config: TrainingConfig, optional. ``n_folds``, ``val_fraction``, ``seed`` and the
            training settings; ``task`` and the loss weights are replaced by each task's, the
            heads are kept (both by default, so that every task reports both metrics).
            Defaults to ``TrainingConfig()`` (the paper).
        tasks: sequence of Task or str. Among ``"multitask"`` (1,1), ``"radiomics"`` (1,0)
            and ``"segmentation"`` (0,1). Defaults to all three.
        radiomics_features: path or DataFrame, optional. Handcrafted features of the same
            patients (``hnprog radiomics extract`` output); the standard radiomics baseline is
            then cross-validated on the same splits (same seed and patients) and added to the
            table. Defaults to None.
        clinical: path or DataFrame, optional. The HECKTOR 2021 clinical file of the same
            patients (or :func:`hnprog.data.read_clinical`'s table): the table gains the rows
            ``"clinical"`` (a clinical-only Cox model on the same splits,
            :func:`hnprog.radiomics.clinical.run_clinical_cv`) and ``"deep multi-task +
            clinical"`` (per fold, a Cox model on the multi-task model's risk and the
            clinical covariates, fitted on the training patients' own risks). Defaults to
            None.
        resume: bool. Continue a killed run: finished folds are kept, the interrupted one
            resumes from its last epoch. Defaults to False.
        settings: sequence of str, optional. Deprecated alias of ``tasks``.
        split: str. ``"stratified"`` (``config.n_folds`` event-stratified folds, the paper) or
            ``"centre"`` (leave-one-centre-out: one fold per centre, ``config.n_folds``
            unused; the radiomics baseline uses the same folds). Defaults to
            ``"stratified"``.
        centres: dict, optional. Patient id -> centre (e.g. a clinical file's ``CenterID``),
            for the centre split, the stratification and the adversarial branch. Defaults to
            the cohort's (manifest ``centre`` column or patient id,
            :func:`hnprog.training.runs.patient_centres`).

    Returns:
        CVResult. ``per_fold`` (model = :attr:`Task.label`, e.g. ``"deep multi-task
        (1,1)"``; with ``split="centre"`` also ``test_centre``), ``predictions``,
        ``log_rank_p`` by model, ``files``.

    Raises:
        InputError: before any training, on an unknown task or split, fewer patients than
            folds, a fold whose training or validation set holds no event, a batch size larger
            than a training set, a cohort without endpoints or masks, (without ``skip_bad``) a
            patient failing the input check, every failed patient named, an output folder holding
            a different run (without ``resume``/``overwrite``); with ``split="centre"``, patients
            without a centre or a single centre; with ``config.adversarial_centres``, training
            patients without a centre or from one centre.

    Warns:
        UserWarning: with ``split="centre"``, for a centre without events (its C-index is
            NaN).

    Example:
        >>> result = cross_validate("data/", "cv/",  # doctest: +SKIP
        ...                         config=TrainingConfig.cpu(epochs=10))
        >>> print(open("cv/results.md").read())  # doctest: +SKIP
    """
    from hnprog.metrics import concordance_index
    from hnprog.reporting import plot_cv_kaplan_meier, write_cv_report
    from hnprog.splits import make_splits

    if settings is not None:
        warnings.warn("cross_validate(settings=...) is deprecated and will be removed in the "
                      "next release; use tasks=...", DeprecationWarning, stacklevel=2)
        tasks = settings
    config = config or TrainingConfig()
    configs = _task_configs(config, tasks)
    cohort = read_cohort_with_endpoints(data, endpoints=endpoints, bboxes=bboxes)
    out_dir = Path(out_dir)

    def folds(cohort: Any) -> tuple[Any, ...]:
        y = cohort.survival_y()
        known = patient_centres(cohort, centres)
        centre_list = [known[i] for i in cohort.ids]
        groups = centre_list if all(c is not None for c in centre_list) else None
        splits = make_splits(
            y["event"], split=split, n_folds=config.n_folds, val_fraction=config.val_fraction,
            seed=config.seed, groups=centre_list if split == "centre" else groups,
        )
        for fold in splits:  # every check before the first epoch
            check_training_set(
                len(fold.train), int(y["event"][fold.train].sum()), config.batch_size,
                n_val=len(fold.val), where=f"fold {fold.fold}",
            )
        return y, known, centre_list, groups, splits

    y, known, centre_list, groups, splits = folds(cohort)  # the settings' errors first
    names = [task.value for task in configs]

    def fingerprint_of(ids: Sequence[str] | None) -> dict[str, Any]:
        fingerprint = {"training": config.run_fingerprint(), "tasks": names}
        if ids is not None:
            fingerprint["patients"] = list(ids)
        if split != "stratified":  # left out for the paper's split: older runs still resume
            fingerprint["split"] = split
        return fingerprint

    # the folder's errors too, before the input check; its patients are compared after it
    prepare_run_folder(
        out_dir, fingerprint_of(None), resume=resume, overwrite=overwrite, marker=CV_FILE,
        stored_fingerprint=lambda document: {
            k: v for k, v in _stored_cv_fingerprint(document).items() if k != "patients"},
        check_only=True,
    )
    checked = precheck_cohort(cohort, skip_bad=skip_bad, n_jobs=config.n_jobs,
                              progress=progress)
    if checked.failures:
        cohort = checked.cohort
        y, known, centre_list, groups, splits = folds(cohort)
    ids = np.asarray(cohort.ids)
    fingerprint = fingerprint_of(ids.tolist())
    prepare_run_folder(
        out_dir, fingerprint, resume=resume, overwrite=overwrite, marker=CV_FILE,
        stored_fingerprint=_stored_cv_fingerprint,
    )
    write_json({"fingerprint": fingerprint}, out_dir / CV_FILE)
    if skip_bad:
        write_failures(checked.failures, out_dir / FAILURES_FILE)
    cache_dir = Path(cache_dir) if cache_dir is not None else out_dir / CACHE_DIR
    dataset = dataset_metadata(cohort)

    clinical_table = read_clinical_of(cohort, clinical)
    fold_rows, prediction_rows, train_risks, survival_parts = [], [], {}, []
    clinical_models: dict[int, dict[str, Any]] = {}
    models = ModelCache()  # one model (and one traced train step) per setting, not per fold
    for task, task_config in configs.items():
        for fold in splits:
            train_ds, val_ds = cohort_datasets(
                cohort, ids[fold.train], ids[fold.val], task_config, cache_dir=cache_dir,
                centres=known,
            )
            result = train_model(
                train_ds, val_ds, out_dir / task.value / f"fold-{fold.fold + 1}",
                config=task_config, resume=resume, verbose=verbose, export=False,
                models=models,
            )
            test_ids = ids[fold.test]
            _, test_ds = cohort_datasets(
                cohort, ids[fold.train], test_ids, task_config, cache_dir=cache_dir,
                train=False,
            )
            risk, dice = predict_dataset(result.model, test_ds)
            time, event = y["time"][fold.test], y["event"][fold.test]
            row = {
                "model": task.label, "fold": fold.fold,
                "c_index": (float(concordance_index(event=event, time=time, risk=risk))
                            if risk is not None else np.nan),
                "dice": float(np.mean(dice)) if dice is not None else np.nan,
            }
            if split == "centre":
                row["test_centre"] = known[test_ids[0]]
            fold_rows.append(row)
            own = training_risks(result.model, cohort, ids[fold.train], task_config,
                                 cache_dir=cache_dir)
            baseline = None if own is None else baseline_of(cohort, ids[fold.train], own)
            clinical_model = (None if own is None or clinical_table is None
                              else clinical_model_of(cohort, ids[fold.train], own,
                                                     clinical_table))
            if baseline is not None and risk is not None:
                survival_parts.append(_test_survival(task.label, test_ids, risk, baseline))
            if task is Task.MULTITASK and own is not None:
                train_risks[fold.fold] = pd.Series(own, index=ids[fold.train])
                if clinical_model is not None:
                    clinical_models[fold.fold] = clinical_model
            export_preset(result, task_config, name=f"{task}_fold{fold.fold + 1}",
                          dataset=dataset, fold=fold.fold,
                          test_metrics={k: row[k] for k in ("c_index", "dice")},
                          baseline=baseline, clinical_model=clinical_model)
            prediction_rows.append(pd.DataFrame({
                "model": task.label, "fold": fold.fold, "patient_id": test_ids,
                "time": time.astype(float), "event": event.astype(bool),
                "risk": risk if risk is not None else np.nan,
                "dice": dice if dice is not None else np.nan,
            }))
    per_fold = pd.DataFrame(fold_rows)
    if radiomics_features is not None:
        per_fold = pd.concat([per_fold, _radiomics_rows(
            radiomics_features, cohort, config, centre_list if split == "centre" else groups,
            split=split)], ignore_index=True)
    extra: dict[str, Any] = {"config": config.to_dict(), "tasks": names, "split": split}
    if clinical_table is not None:
        clinical_folds, clinical_predictions = _clinical_rows(
            clinical_table, cohort, config, centre_list if split == "centre" else groups,
            pd.concat(prediction_rows), train_risks, split=split, models=clinical_models)
        per_fold = pd.concat([per_fold, clinical_folds], ignore_index=True)
        prediction_rows.append(clinical_predictions)
        from hnprog.data.clinical import DEFAULT_COVARIATES

        extra["clinical_covariates"] = list(DEFAULT_COVARIATES)
    result = CVResult(per_fold, pd.concat(prediction_rows, ignore_index=True), extra=extra)
    for task in configs:
        plot_cv_kaplan_meier(result, task.label, out_dir / f"kaplan_meier_{task}.png",
                             title=f"{task.label}: test patients, split at median risk")
    _evaluate_models(result, out_dir, survival_parts)
    result.files.update(write_cv_report(
        result, out_dir, metrics=["c_index", "dice"],
        title="Cross-validation: test C-index and Dice (mean ± standard error over folds)",
    ))
    return result


def _radiomics_rows(
    features: str | os.PathLike | pd.DataFrame,
    cohort: Any,
    config: TrainingConfig,
    groups: Sequence[str] | None,
    *,
    split: str = "stratified",
) -> pd.DataFrame:
    """Per-fold rows of the standard radiomics baseline, on the same splits."""
    from hnprog.radiomics.cv import run_radiomics_cv
    from hnprog.radiomics.cohort import read_features

    table = features if isinstance(features, pd.DataFrame) else read_features(features)
    missing = sorted(set(cohort.ids) - set(table.index.astype(str)))
    if missing:
        raise InputError(
            f"radiomics features lack {len(missing)} patients of the cohort, e.g. {missing[:5]}; "
            "the baseline must use the same patients to share the splits"
        )
    endpoints = cohort.endpoints.loc[cohort.ids]
    result = run_radiomics_cv(
        table.loc[cohort.ids], endpoints, n_folds=config.n_folds,
        val_fraction=config.val_fraction, seed=config.seed,
        groups=dict(zip(cohort.ids, groups)) if groups is not None else None, split=split,
    )
    columns = ["model", "fold", "c_index", "dice"] + (["test_centre"] if split == "centre" else [])
    return result.per_fold[columns]


def _test_survival(model: str, ids: Sequence[str], risk: np.ndarray,
                   baseline: dict[str, Any]) -> pd.DataFrame:
    """Test patients' survival probabilities from their fold's training baseline."""
    from hnprog.survival import DEFAULT_SURVIVAL_DAYS, survival_column, survival_probability

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN beyond the fold's follow-up
        probability = survival_probability(baseline, np.asarray(risk, float),
                                           DEFAULT_SURVIVAL_DAYS)
    return pd.DataFrame({"model": model, "patient_id": list(ids),
                         **{survival_column(t): probability[:, i]
                            for i, t in enumerate(DEFAULT_SURVIVAL_DAYS)}})


def _evaluate_models(result: CVResult, out_dir: Path, survival_parts: list[pd.DataFrame]
                     ) -> None:
    """The evaluation block of each model's pooled test patients, in ``evaluation/<model>/``."""
    import re

    from hnprog.data.cohort import centre_from_id
    from hnprog.evaluation import evaluate_run

    survival = pd.concat(survival_parts, ignore_index=True) if survival_parts else None
    for model in dict.fromkeys(result.predictions["model"]):
        rows = result.predictions[result.predictions["model"] == model]
        if survival is not None and (survival["model"] == model).any():
            extra = survival[survival["model"] == model].drop(columns="model")
            rows = rows.merge(extra, on="patient_id", how="left")
            columns = [c for c in extra.columns if c != "patient_id"]
            rows = rows.drop(columns=[c for c in columns if rows[c].isna().any()])
        folder = out_dir / "evaluation" / re.sub(r"[^A-Za-z0-9]+", "_", model).strip("_")
        if evaluate_run(rows.drop(columns=["model", "fold", "dice"]), folder,
                        title=f"{model}, test folds pooled",
                        centres=[centre_from_id(p) or "unknown"
                                 for p in rows["patient_id"]]) is not None:
            result.files[f"evaluation {model}"] = folder / "metrics.json"


def _clinical_rows(clinical: pd.DataFrame, cohort: Any, config: TrainingConfig,
                   groups: Sequence[str] | None, predictions: pd.DataFrame,
                   train_risks: dict[int, pd.Series], split: str = "stratified",
                   models: dict[int, dict[str, Any]] | None = None,
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-fold rows and test predictions of the clinical and the deep + clinical models."""
    from hnprog.radiomics.clinical import deep_clinical_rows, run_clinical_cv

    endpoints = cohort.endpoints.loc[cohort.ids]
    result = run_clinical_cv(
        clinical.loc[cohort.ids], endpoints, n_folds=config.n_folds,
        val_fraction=config.val_fraction, seed=config.seed,
        groups=dict(zip(cohort.ids, groups)) if groups is not None else None, split=split)
    folds = [result.per_fold[["model", "fold", "c_index", "dice"]]]
    parts = [result.predictions.assign(dice=np.nan)[list(CV_PREDICTION_COLUMNS)]]
    deep = predictions[predictions["model"] == Task.MULTITASK.label]
    if train_risks and len(deep):
        deep_folds, deep_predictions = deep_clinical_rows(deep, train_risks, clinical, endpoints,
                                                         models=models)
        folds.append(deep_folds)
        parts.append(deep_predictions[list(CV_PREDICTION_COLUMNS)])
    return pd.concat(folds, ignore_index=True), pd.concat(parts, ignore_index=True)


def __getattr__(name: str) -> Any:
    if name == "MODEL_NAMES":  # deprecated: the report names are Task.label
        warnings.warn("hnprog.training.cv.MODEL_NAMES is deprecated and will be removed in the "
                      "next release; use hnprog.models.task.Task(...).label",
                      DeprecationWarning, stacklevel=2)
        return {task.value: task.label for task in Task}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
