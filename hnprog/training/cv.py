"""The paper's cross-validation protocol for the three deep settings (Andrearczyk et al., 2021).

For each of 5 folds (20% test, stratified by event and, when known, by centre; the rest split
80% training / 20% validation), each selected setting is trained (:func:`train_model`), its
best epoch by validation combined loss is kept, and the test patients are predicted. The
results go to one table in the format of the paper's Tables 1-2 (C-index and Dice, mean ±
standard error over folds) through :mod:`hnprog.reporting`, with the per-patient predictions
and a Kaplan-Meier plot per setting. Output folder::

    OUT/cv.json                         settings of the run (``--resume`` checks them)
    OUT/results.{csv,md,json}           the table; results_per_fold.csv
    OUT/predictions.csv                 setting, fold, patient_id, time, event, risk, dice
    OUT/kaplan_meier_<setting>.png      test patients split at the median predicted risk
    OUT/<setting>/fold-<k>/             one run folder per fold (model.keras, history.csv, ...)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hnprog.errors import InputError
from hnprog.io import atomic_write, write_json
from hnprog.training.config import SETTINGS, TrainingConfig
from hnprog.training.trainer import (
    check_training_set,
    cohort_datasets,
    export_preset,
    predict_dataset,
    prepare_run_folder,
    preprocess_config,
    train_model,
)

__all__ = ["CVResult", "cross_validate"]

MODEL_NAMES = {
    "radiomics": "deep radiomics (1,0)",
    "multitask": "deep multi-task (1,1)",
    "segmentation": "deep segmentation (0,1)",
}


@dataclass
class CVResult:
    """What :func:`cross_validate` returns.

    Args:
        per_fold: pandas.DataFrame. One row per (model, fold): ``model``, ``fold``,
            ``c_index`` and ``dice`` on the test patients.
        predictions: pandas.DataFrame. One row per (setting, test patient): ``setting``,
            ``fold``, ``patient_id``, ``time`` (days), ``event``, ``risk`` (log-hazard, higher
            is worse) and ``dice``.
        log_rank_p: dict. Setting -> log-rank p-value of the median-risk split.
        files: dict. Output name -> path.
    """

    per_fold: pd.DataFrame
    predictions: pd.DataFrame
    log_rank_p: dict[str, float] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)


def cross_validate(
    data: str | os.PathLike | Any,
    out_dir: str | os.PathLike,
    *,
    config: TrainingConfig | None = None,
    settings: Sequence[str] = ("multitask", "radiomics", "segmentation"),
    radiomics_features: str | os.PathLike | pd.DataFrame | None = None,
    cache_dir: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
    verbose: int | str = "auto",
) -> CVResult:
    """Run the paper's 5-fold cross-validation of the deep settings on a cohort.

    Args:
        data: str, PathLike or Cohort. A cohort folder or manifest (read with
            :func:`hnprog.data.cohort.read_cohort`) or an already-read ``Cohort``; it needs
            endpoints and GTVt masks.
        out_dir: str or PathLike. Output folder (see the module docstring).
        config: TrainingConfig, optional. ``n_folds``, ``val_fraction``, ``seed`` and the
            training settings; ``w_rad``/``w_seg`` are replaced by each setting's weights.
            Defaults to ``TrainingConfig()`` (the paper).
        settings: sequence of str. Among ``"multitask"`` (1,1), ``"radiomics"`` (1,0) and
            ``"segmentation"`` (0,1). Defaults to all three.
        radiomics_features: path or DataFrame, optional. Handcrafted features of the same
            patients (``hnprog radiomics extract`` output); the standard radiomics baseline is
            then cross-validated on the same splits (same seed and patients) and added to the
            table. Defaults to None.
        cache_dir: str or PathLike, optional. Cache of cropped cases, shared by all folds.
            Defaults to ``OUT/cache``.
        resume: bool. Continue a killed run: finished folds are kept, the interrupted one
            resumes from its last epoch. Defaults to False.
        overwrite: bool. Replace an earlier run in ``out_dir``. Defaults to False.
        verbose: int or str. Keras ``fit`` verbosity. Defaults to ``"auto"``.

    Returns:
        CVResult.

    Raises:
        InputError: before any training, on an unknown setting, fewer patients than folds, a
            fold whose training or validation set holds no event, a batch size larger than a
            training set, a cohort without endpoints or masks, or an output folder holding a
            different run (without ``resume``/``overwrite``).

    Example:
        >>> result = cross_validate("data/", "cv/",  # doctest: +SKIP
        ...                         config=TrainingConfig.fast_cpu(epochs=10))
        >>> print(open("cv/results.md").read())  # doctest: +SKIP
    """
    from hnprog.data.cohort import read_cohort
    from hnprog.metrics import concordance_index
    from hnprog.reporting import plot_kaplan_meier, write_cv_report
    from hnprog.splits import cross_validation_splits

    config = config or TrainingConfig()
    settings = list(dict.fromkeys(settings))
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown or not settings:
        raise InputError(f"settings must be among {tuple(SETTINGS)}. Received: {settings}")
    cohort = data if hasattr(data, "patients") else read_cohort(data)
    if cohort.endpoints is None:
        raise InputError(f"cohort {cohort.root} has no endpoints (endpoints.csv)")
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
    fingerprint = {"training": config.run_fingerprint(), "settings": settings,
                   "patients": ids.tolist()}
    prepare_run_folder(
        out_dir, fingerprint, resume=resume, overwrite=overwrite, marker="cv.json",
        remove=("cv.json", "predictions.csv", *settings),
    )
    write_json({"fingerprint": fingerprint}, out_dir / "cv.json")
    cache_dir = Path(cache_dir) if cache_dir is not None else out_dir / "cache"
    preprocessing = preprocess_config(config)

    fold_rows, prediction_rows = [], []
    for setting in settings:
        setting_config = TrainingConfig.for_setting(
            setting, **{k: v for k, v in config.to_dict().items() if k not in ("w_rad", "w_seg")}
        )
        for split in splits:
            train_ds, val_ds = cohort_datasets(
                cohort, ids[split.train], ids[split.val], setting_config, cache_dir=cache_dir
            )
            run_dir = out_dir / setting / f"fold-{split.fold + 1}"
            result = train_model(
                train_ds, val_ds, run_dir, config=setting_config,
                preprocessing=preprocessing.to_dict(), resume=resume, verbose=verbose,
            )
            test_ids = ids[split.test]
            _, test_ds = cohort_datasets(
                cohort, ids[split.train], test_ids, setting_config, cache_dir=cache_dir,
                train=False,
            )
            risk, dice = predict_dataset(result.model, test_ds)
            time, event = y["time"][split.test], y["event"][split.test]
            c_index = (concordance_index(event=event, time=time, risk=risk)
                       if risk is not None else np.nan)
            fold_rows.append({
                "model": MODEL_NAMES[setting], "fold": split.fold,
                "c_index": float(c_index),
                "dice": float(np.mean(dice)) if dice is not None else np.nan,
            })
            export_preset(result, cohort, val_ds, setting_config,
                          name=f"{setting}_fold{split.fold + 1}", fold=split.fold,
                          test_metrics={k: fold_rows[-1][k] for k in ("c_index", "dice")})
            for i, pid in enumerate(test_ids):
                prediction_rows.append({
                    "setting": setting, "fold": split.fold, "patient_id": pid,
                    "time": float(time[i]), "event": bool(event[i]),
                    "risk": float(risk[i]) if risk is not None else np.nan,
                    "dice": float(dice[i]) if dice is not None else np.nan,
                })
    per_fold = pd.DataFrame(fold_rows)
    predictions = pd.DataFrame(prediction_rows)
    extra: dict[str, Any] = {"config": config.to_dict(), "settings": settings}
    if radiomics_features is not None:
        per_fold = pd.concat([per_fold, _radiomics_rows(radiomics_features, cohort, config,
                                                        groups)], ignore_index=True)
    files: dict[str, Path] = {}
    log_rank: dict[str, float] = {}
    for setting in settings:
        rows = predictions[predictions["setting"] == setting]
        if rows["risk"].notna().all() and rows["event"].any():
            path = out_dir / f"kaplan_meier_{setting}.png"
            log_rank[setting] = plot_kaplan_meier(
                event=rows["event"].to_numpy(), time=rows["time"].to_numpy(),
                risk=rows["risk"].to_numpy(), path=path,
                title=f"{MODEL_NAMES[setting]}: test patients, split at median risk",
            )
            files[f"kaplan_meier_{setting}"] = path
    extra["log_rank_p"] = log_rank
    files.update(write_cv_report(
        per_fold, out_dir, metrics=["c_index", "dice"],
        title="Cross-validation: test C-index and Dice (mean ± standard error over folds)",
        extra=extra,
    ))
    with atomic_write(out_dir / "predictions.csv", newline="") as f:
        predictions.to_csv(f, index=False)
    files["predictions"] = out_dir / "predictions.csv"
    return CVResult(per_fold=per_fold, predictions=predictions, log_rank_p=log_rank, files=files)


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
    rows = result.per_fold[["fold", "c_index"]].copy()
    rows.insert(0, "model", "standard radiomics")
    rows["dice"] = np.nan
    return rows
