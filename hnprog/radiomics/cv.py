"""Cross-validation of the standard radiomics baseline with the paper's splits.

For each of the 5 folds (:func:`hnprog.splits.cross_validation_splits`: 20% test, the rest 80%
training / 20% validation, stratified by event), a :class:`RadiomicsCoxPipeline` selects its
features and correlation threshold on the validation patients, and is scored on the test
patients. The report gives the per-fold test C-index and its mean ± standard error, in the
format of the paper's Table 1. The result is a :class:`hnprog.reporting.CVResult`, the schema
the deep cross-validation returns too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from hnprog.errors import InputError
from hnprog.metrics import concordance_index
from hnprog.radiomics.baseline import RadiomicsCoxPipeline
from hnprog.radiomics.cohort import ID_COLUMN, check_finite_features
from hnprog.reporting import CVResult, plot_cv_kaplan_meier, write_cv_report
from hnprog.splits import make_splits
from hnprog.survival import make_survival_y

__all__ = ["RadiomicsCVResult", "run_radiomics_cv"]

MODEL_NAME = "standard radiomics"

#: The result of :func:`run_radiomics_cv`: the shared cross-validation schema.
RadiomicsCVResult = CVResult


def run_radiomics_cv(
    features: pd.DataFrame,
    endpoints: pd.DataFrame,
    out_dir: str | os.PathLike | None = None,
    *,
    n_folds: int = 5,
    val_fraction: float = 0.2,
    seed: int = 0,
    groups: Mapping[str, Any] | pd.Series | None = None,
    drop_constant: bool = False,
    model_params: Mapping[str, Any] | None = None,
    model_name: str = MODEL_NAME,
    title: str = "Standard radiomics baseline: test C-index per fold",
    split: str = "stratified",
) -> RadiomicsCVResult:
    """Cross-validate the radiomics baseline and (optionally) write the report.

    Only patients present in both ``features`` and ``endpoints`` are used.

    Args:
        features: pandas.DataFrame. Index = patient id, one numeric column per feature (as
            :func:`hnprog.radiomics.cohort.read_features` returns).
        endpoints: pandas.DataFrame. Index = patient id, columns ``event`` (bool) and ``time``
            (days), as ``hnprog.data.cohort.read_endpoints`` returns.
        out_dir: str, PathLike or None. Folder of the report; None writes nothing. Files:
            ``results.{csv,md,json}``, ``results_per_fold.csv``, ``predictions.csv`` and
            ``kaplan_meier.png`` (pooled test risks split at their median), and
            ``evaluation/`` (:func:`hnprog.evaluation.evaluate_run` on the pooled test
            risks). Defaults to None.
        n_folds: int. Number of folds. Defaults to 5.
        val_fraction: float. Validation share of the non-test patients. Defaults to 0.2.
        seed: int. Seed of the splits. Defaults to 0.
        groups: mapping or Series patient id -> label (such as the centre), optional. Extra
            stratification of the splits. Defaults to None.
        drop_constant: bool. Ignore features that are constant (in the whole table or in a
            fold's training set) instead of raising. Defaults to False.
        model_params: mapping, optional. Keyword arguments of :class:`RadiomicsCoxPipeline`.
            Defaults to None.
        model_name: str. The model's name in the tables. Defaults to ``"standard
            radiomics"`` (:func:`hnprog.radiomics.clinical.run_clinical_cv` passes
            ``"clinical"``).
        title: str. Title of the report. Defaults to the radiomics baseline's.
        split: str. ``"stratified"`` (``n_folds`` event-stratified folds) or ``"centre"``
            (leave-one-centre-out: one fold per centre of ``groups``, which is then required;
            ``n_folds`` unused; see :func:`hnprog.splits.make_splits`). Defaults to
            ``"stratified"``.

    Returns:
        CVResult. ``per_fold``: one row per fold, :data:`~hnprog.reporting.CV_FOLD_COLUMNS`
        (``dice`` NaN), then ``val_c_index``, ``threshold``, ``alpha``, ``n_selected``, set
        sizes and test events (and ``test_centre`` with ``split="centre"``). ``predictions``:
        one row per patient, in the order of ``features``, each with its test fold's risk (``dice`` NaN). ``c_index_mean`` and
        ``c_index_se``: over folds. ``extra["selected_features"]``: fold -> features of its
        Cox model. ``files``: empty when no ``out_dir`` was given.

    Raises:
        InputError: if the tables share no patients, features hold NaN or constant columns
            (unless ``drop_constant``), there are fewer patients than folds, or a fold's test,
            training or validation set holds no event.

    Example:
        >>> result = run_radiomics_cv(read_features("features.csv"),  # doctest: +SKIP
        ...                           read_endpoints("endpoints.csv"), "cv/")
        >>> print(f"{result.c_index_mean:.3f} ± {result.c_index_se:.3f}")  # doctest: +SKIP
    """
    if not {"event", "time"} <= set(endpoints.columns):
        raise InputError(
            "endpoints need columns 'event' and 'time'. "
            f"Received columns: {list(endpoints.columns)}"
        )
    features = features.copy()
    features.index = features.index.astype(str)
    endpoints = endpoints.copy()
    endpoints.index = endpoints.index.astype(str)
    ids = [pid for pid in features.index if pid in endpoints.index]
    if not ids:
        raise InputError(
            f"features and endpoints share no patient id (features: {list(features.index[:3])}"
            f"..., endpoints: {list(endpoints.index[:3])}...)"
        )
    features = features.loc[ids]
    check_finite_features(features, where="features")
    constant = features.columns[features.nunique(dropna=False) <= 1].tolist()
    if constant and not drop_constant:
        raise InputError(
            f"{len(constant)} features have the same value for every patient "
            f"(e.g. {constant[:5]}); remove them or use drop_constant=True "
            "(hnprog radiomics cv --drop-constant)"
        )
    features = features.drop(columns=constant)
    if features.shape[1] == 0:
        raise InputError("no usable feature left")
    y = make_survival_y(
        event=endpoints.loc[ids, "event"].to_numpy(),
        time=endpoints.loc[ids, "time"].to_numpy(),
        ids=ids,
    )
    group_labels = None
    if groups is not None:
        groups = pd.Series(groups)
        missing = [pid for pid in ids if pid not in groups.index]
        if missing:
            raise InputError(f"groups miss {len(missing)} patients, e.g. {missing[:5]}")
        group_labels = groups.loc[ids].astype(str).to_numpy()
    splits = make_splits(y["event"], split=split, n_folds=n_folds, val_fraction=val_fraction,
                         seed=seed, groups=group_labels)

    rows, prediction_parts, selected = [], [], {}
    for fold in splits:
        model = RadiomicsCoxPipeline(drop_constant=drop_constant, **dict(model_params or {}))
        try:
            model.fit(
                features.iloc[fold.train],
                y[fold.train],
                X_val=features.iloc[fold.val],
                y_val=y[fold.val],
            )
        except InputError as exc:
            raise InputError(f"fold {fold.fold}: {exc}") from None
        risk = model.predict(features.iloc[fold.test])
        test_y = y[fold.test]
        rows.append(
            {
                "model": model_name,
                "fold": fold.fold,
                "c_index": concordance_index(event=test_y["event"], time=test_y["time"], risk=risk),
                "val_c_index": model.validation_cindex_,
                "threshold": model.threshold_,
                "alpha": model.alpha_,
                "n_selected": len(model.selected_features_),
                "n_train": len(fold.train),
                "n_val": len(fold.val),
                "n_test": len(fold.test),
                "test_events": int(test_y["event"].sum()),
                **({"test_centre": group_labels[fold.test[0]]} if split == "centre"
                   else {}),
            }
        )
        selected[fold.fold] = list(model.selected_features_)
        prediction_parts.append(
            pd.DataFrame(
                {
                    "fold": fold.fold,
                    "risk": risk,
                    "time": test_y["time"],
                    "event": test_y["event"],
                },
                index=pd.Index([ids[i] for i in fold.test], name=ID_COLUMN),
            )
        )
    predictions = pd.concat(prediction_parts).loc[ids].reset_index().assign(model=model_name)
    result = CVResult(pd.DataFrame(rows), predictions, extra={
        "n_patients": len(predictions),
        "n_events": int(predictions["event"].sum()),
        "splits": {"n_folds": len(splits), "val_fraction": val_fraction, "seed": seed,
                   "split": split},
        "selected_features": {str(k): v for k, v in selected.items()},
        "thresholds": [float(row["threshold"]) for row in rows],
    })
    if out_dir is not None:
        out_dir = Path(out_dir)
        plot_cv_kaplan_meier(result, model_name, out_dir / "kaplan_meier.png",
                             title=f"{model_name[0].upper()}{model_name[1:]}, test folds pooled")
        result.files.update(write_cv_report(result, out_dir, metrics=["c_index"], title=title))
        from hnprog.data.cohort import centre_from_id
        from hnprog.evaluation import evaluate_run

        if evaluate_run(predictions, out_dir / "evaluation", title=title.split(":")[0],
                        centres=[centre_from_id(p) or "unknown"
                                 for p in predictions[ID_COLUMN]]) is not None:
            result.files["evaluation"] = out_dir / "evaluation" / "metrics.json"
    return result
