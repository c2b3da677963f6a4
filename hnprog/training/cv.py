"""The paper's cross-validation protocol for the three deep tasks (Andrearczyk et al., 2021).

For each of 5 folds (20% test, stratified by event and, when known, by centre; the rest split
80% training / 20% validation), each selected task (:class:`~hnprog.models.task.Task`:
multitask (1,1), radiomics (1,0), segmentation (0,1)) is trained (:func:`train_model`), its
best epoch by validation combined loss is kept, and the test patients are predicted. The
results are a :class:`hnprog.reporting.CVResult`, written as one table in the format of the
paper's Tables 1-2 (C-index and Dice, mean ± standard error over folds), with the per-patient
predictions and a Kaplan-Meier plot per task. Output folder::

    OUT/cv.json                       settings of the run (``--resume`` checks them)
    OUT/results.{csv,md,json}         the table; results_per_fold.csv
    OUT/predictions.csv               model, fold, patient_id, time, event, risk, dice
    OUT/kaplan_meier_<task>.png       test patients split at the median predicted risk
    OUT/<task>/fold-<k>/              one run folder per fold (preset/, history.csv, ...)
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hnprog.errors import InputError
from hnprog.io import write_json
from hnprog.models.task import Task
from hnprog.reporting import CVResult
from hnprog.training.config import TrainingConfig
from hnprog.training.fit import CACHE_DIR, export_preset, prepare_run_folder, train_model
from hnprog.training.runs import (
    check_training_set,
    cohort_datasets,
    dataset_metadata,
    predict_dataset,
    read_cohort_with_endpoints,
)

__all__ = ["CVResult", "cross_validate"]

CV_FILE = "cv.json"


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
    cache_dir: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
    verbose: int | str = "auto",
    settings: Sequence[str] | None = None,
) -> CVResult:
    """Run the paper's 5-fold cross-validation of the deep tasks on a cohort.

    ``data``, ``out_dir`` (laid out as the module docstring says), ``cache_dir`` (shared by all
    folds), ``overwrite`` and ``verbose`` are those of
    :func:`~hnprog.training.runs.train_on_cohort`.

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
        resume: bool. Continue a killed run: finished folds are kept, the interrupted one
            resumes from its last epoch. Defaults to False.
        settings: sequence of str, optional. Deprecated alias of ``tasks``.

    Returns:
        CVResult. ``per_fold`` (model = :attr:`Task.label`, e.g. ``"deep multi-task
        (1,1)"``), ``predictions``, ``log_rank_p`` by model, ``files``.

    Raises:
        InputError: before any training, on an unknown task, fewer patients than folds, a
            fold whose training or validation set holds no event, a batch size larger than a
            training set, a cohort without endpoints or masks, or an output folder holding a
            different run (without ``resume``/``overwrite``).

    Example:
        >>> result = cross_validate("data/", "cv/",  # doctest: +SKIP
        ...                         config=TrainingConfig.cpu(epochs=10))
        >>> print(open("cv/results.md").read())  # doctest: +SKIP
    """
    from hnprog.metrics import concordance_index
    from hnprog.reporting import plot_cv_kaplan_meier, write_cv_report
    from hnprog.splits import cross_validation_splits

    if settings is not None:
        warnings.warn("cross_validate(settings=...) is deprecated and will be removed in the "
                      "next release; use tasks=...", DeprecationWarning, stacklevel=2)
        tasks = settings
    config = config or TrainingConfig()
    configs = _task_configs(config, tasks)
    cohort = read_cohort_with_endpoints(data)
    y = cohort.survival_y()
    ids = np.asarray(cohort.ids)
    centres = cohort.centres
    groups = centres if all(c is not None for c in centres) else None
    splits = cross_validation_splits(
        y["event"], n_folds=config.n_folds, val_fraction=config.val_fraction,
        seed=config.seed, groups=groups,
    )
    for split in splits:  # every check before the first epoch
        check_training_set(
            len(split.train), int(y["event"][split.train].sum()), config.batch_size,
            n_val=len(split.val), where=f"fold {split.fold}",
        )
    out_dir = Path(out_dir)
    names = [task.value for task in configs]
    fingerprint = {"training": config.run_fingerprint(), "tasks": names,
                   "patients": ids.tolist()}
    prepare_run_folder(
        out_dir, fingerprint, resume=resume, overwrite=overwrite, marker=CV_FILE,
        remove=(CV_FILE, "predictions.csv", *names), stored_fingerprint=_stored_cv_fingerprint,
    )
    write_json({"fingerprint": fingerprint}, out_dir / CV_FILE)
    cache_dir = Path(cache_dir) if cache_dir is not None else out_dir / CACHE_DIR
    dataset = dataset_metadata(cohort)

    fold_rows, prediction_rows = [], []
    for task, task_config in configs.items():
        for split in splits:
            train_ds, val_ds = cohort_datasets(
                cohort, ids[split.train], ids[split.val], task_config, cache_dir=cache_dir
            )
            result = train_model(
                train_ds, val_ds, out_dir / task.value / f"fold-{split.fold + 1}",
                config=task_config, resume=resume, verbose=verbose, export=False,
            )
            test_ids = ids[split.test]
            _, test_ds = cohort_datasets(
                cohort, ids[split.train], test_ids, task_config, cache_dir=cache_dir,
                train=False,
            )
            risk, dice = predict_dataset(result.model, test_ds)
            time, event = y["time"][split.test], y["event"][split.test]
            row = {
                "model": task.label, "fold": split.fold,
                "c_index": (float(concordance_index(event=event, time=time, risk=risk))
                            if risk is not None else np.nan),
                "dice": float(np.mean(dice)) if dice is not None else np.nan,
            }
            fold_rows.append(row)
            export_preset(result, task_config, name=f"{task}_fold{split.fold + 1}",
                          dataset=dataset, fold=split.fold,
                          test_metrics={k: row[k] for k in ("c_index", "dice")})
            prediction_rows.append(pd.DataFrame({
                "model": task.label, "fold": split.fold, "patient_id": test_ids,
                "time": time.astype(float), "event": event.astype(bool),
                "risk": risk if risk is not None else np.nan,
                "dice": dice if dice is not None else np.nan,
            }))
    per_fold = pd.DataFrame(fold_rows)
    if radiomics_features is not None:
        per_fold = pd.concat([per_fold, _radiomics_rows(radiomics_features, cohort, config,
                                                        groups)], ignore_index=True)
    result = CVResult(per_fold, pd.concat(prediction_rows, ignore_index=True),
                      extra={"config": config.to_dict(), "tasks": names})
    for task in configs:
        plot_cv_kaplan_meier(result, task.label, out_dir / f"kaplan_meier_{task}.png",
                             title=f"{task.label}: test patients, split at median risk")
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
        groups=dict(zip(cohort.ids, groups)) if groups is not None else None,
    )
    return result.per_fold[["model", "fold", "c_index", "dice"]]


def __getattr__(name: str) -> Any:
    if name == "MODEL_NAMES":  # deprecated: the report names are Task.label
        warnings.warn("hnprog.training.cv.MODEL_NAMES is deprecated and will be removed in the "
                      "next release; use hnprog.models.task.Task(...).label",
                      DeprecationWarning, stacklevel=2)
        return {task.value: task.label for task in Task}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
