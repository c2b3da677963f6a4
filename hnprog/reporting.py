"""Cross-validation reports: per-fold tables with mean ± standard error, and Kaplan-Meier plots.

The tables follow Tables 1-2 of Andrearczyk et al. (2021): one row per model, one column per
metric, each cell ``mean ± standard error`` over the folds (for example ``0.695 ± 0.083``).
They are written as CSV (numbers), Markdown (for reading) and JSON (for programs), next to a
per-fold CSV. The standard error is the sample standard deviation (``ddof=1``) divided by the
square root of the number of folds.

Kaplan-Meier curves split the patients at the median predicted risk (risk above the median =
high-risk group) and give the log-rank p-value of the difference.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hnprog.errors import InputError
from hnprog.io import atomic_path, atomic_write, write_json
from hnprog.survival import check_risk, deprecated_positional, make_survival_y

__all__ = [
    "METRIC_LABELS",
    "median_risk_split",
    "mean_and_standard_error",
    "plot_kaplan_meier",
    "summarise_folds",
    "write_cv_report",
]

METRIC_LABELS = {"c_index": "C-index", "dice": "Dice"}
"""Column headers of the metrics that the paper reports; other metrics keep their names."""


def mean_and_standard_error(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Mean and standard error of the mean over folds, ignoring NaN folds.

    Args:
        values: array-like of float, shape ``(n_folds,)``.

    Returns:
        tuple ``(mean, standard_error)``; the standard error is ``std(ddof=1) / sqrt(n)`` and
        NaN when fewer than two values are finite.

    Example:
        >>> mean, se = mean_and_standard_error([0.6, 0.7, 0.8])
        >>> round(mean, 3), round(se, 4)
        (0.7, 0.0577)
    """
    array = np.asarray(values, dtype=float)
    array = array[np.isfinite(array)]
    if array.size == 0:
        return math.nan, math.nan
    mean = float(array.mean())
    if array.size < 2:
        return mean, math.nan
    return mean, float(array.std(ddof=1) / math.sqrt(array.size))


def summarise_folds(
    per_fold: pd.DataFrame, *, metrics: Sequence[str] | None = None
) -> pd.DataFrame:
    """Mean ± standard error of each metric, per model.

    Args:
        per_fold: pandas.DataFrame. One row per (model, fold): columns ``model`` (optional;
            one unnamed model when absent), ``fold`` and one column per metric.
        metrics: sequence of str, optional. Metric columns to summarise. Defaults to every
            numeric column other than ``fold``.

    Returns:
        pandas.DataFrame indexed by model, with ``n_folds`` and ``<metric>_mean``,
        ``<metric>_se`` columns, in first-appearance order of the models.

    Raises:
        InputError: if a metric column is missing or not numeric.
    """
    per_fold = _with_model_column(per_fold)
    metrics = _metric_columns(per_fold, metrics)
    rows = {}
    for model, group in per_fold.groupby("model", sort=False):
        row: dict[str, float] = {"n_folds": int(len(group))}
        for metric in metrics:
            row[f"{metric}_mean"], row[f"{metric}_se"] = mean_and_standard_error(group[metric])
        rows[model] = row
    summary = pd.DataFrame.from_dict(rows, orient="index")
    summary.index.name = "model"
    return summary


def write_cv_report(
    per_fold: pd.DataFrame,
    out_dir: str | os.PathLike,
    *,
    metrics: Sequence[str] | None = None,
    name: str = "results",
    title: str | None = None,
    extra: Mapping[str, Any] | None = None,
    digits: int = 3,
) -> dict[str, Path]:
    """Write a cross-validation report as CSV, Markdown and JSON, atomically.

    Files written in ``out_dir``:

    - ``<name>_per_fold.csv``: ``per_fold`` as given;
    - ``<name>.csv``: :func:`summarise_folds` (numbers at full precision);
    - ``<name>.md``: the paper's table (``| model | C-index | ...``, cells ``mean ± se``),
      then the per-fold table;
    - ``<name>.json``: ``{"title", "metrics", "models": {model: {"n_folds", metric:
      {"mean", "se", "per_fold"}}}}`` plus ``extra``.

    Args:
        per_fold: pandas.DataFrame. One row per (model, fold); see :func:`summarise_folds`.
        out_dir: str or PathLike. Output folder (created if needed).
        metrics: sequence of str, optional. Metric columns. Defaults to every numeric column
            other than ``fold``.
        name: str. Base name of the files. Defaults to ``"results"``.
        title: str, optional. Heading of the Markdown file. Defaults to
            ``"Cross-validation results"``.
        extra: mapping, optional. More JSON-serialisable entries for the JSON file. Defaults to
            None.
        digits: int. Decimals in the Markdown table. Defaults to 3, as in the paper.

    Returns:
        dict mapping ``"per_fold_csv"``, ``"csv"``, ``"markdown"``, ``"json"`` to the paths.

    Raises:
        InputError: if a metric column is missing or not numeric.

    Example:
        >>> per_fold = pd.DataFrame({"fold": range(5), "c_index": [0.7, 0.6, 0.8, 0.7, 0.65]})
        >>> paths = write_cv_report(per_fold, "cv_out", title="Radiomics")  # doctest: +SKIP
    """
    per_fold = _with_model_column(per_fold)
    metrics = _metric_columns(per_fold, metrics)
    summary = summarise_folds(per_fold, metrics=metrics)
    out_dir = Path(out_dir)
    paths = {
        "per_fold_csv": out_dir / f"{name}_per_fold.csv",
        "csv": out_dir / f"{name}.csv",
        "markdown": out_dir / f"{name}.md",
        "json": out_dir / f"{name}.json",
    }
    with atomic_write(paths["per_fold_csv"], newline="") as f:
        per_fold.to_csv(f, index=False)
    with atomic_write(paths["csv"], newline="") as f:
        summary.to_csv(f)

    def cell(mean: float, se: float) -> str:
        if not math.isfinite(mean):
            return "n/a"
        return f"{mean:.{digits}f}" + (f" ± {se:.{digits}f}" if math.isfinite(se) else "")

    labels = [METRIC_LABELS.get(m, m) for m in metrics]
    lines = [f"# {title or 'Cross-validation results'}", ""]
    lines.append(f"Mean ± standard error over folds ({_fold_count_text(summary)}).")
    lines += ["", "| model | " + " | ".join(labels) + " |", "| --- |" + " --- |" * len(labels)]
    for model, row in summary.iterrows():
        cells = [cell(row[f"{m}_mean"], row[f"{m}_se"]) for m in metrics]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines += ["", "## Per fold", "", "| model | fold | " + " | ".join(labels) + " |"]
    lines.append("| --- | --- |" + " --- |" * len(labels))
    for _, row in per_fold.iterrows():
        cells = [f"{row[m]:.{digits}f}" if math.isfinite(row[m]) else "n/a" for m in metrics]
        lines.append(f"| {row['model']} | {row['fold']} | " + " | ".join(cells) + " |")
    with atomic_write(paths["markdown"]) as f:
        f.write("\n".join(lines) + "\n")

    models: dict[str, Any] = {}
    for model, group in per_fold.groupby("model", sort=False):
        entry: dict[str, Any] = {"n_folds": int(len(group))}
        for metric in metrics:
            mean, se = summary.loc[model, f"{metric}_mean"], summary.loc[model, f"{metric}_se"]
            entry[metric] = {
                "mean": _json_float(mean),
                "se": _json_float(se),
                "per_fold": [_json_float(v) for v in group[metric]],
            }
        models[str(model)] = entry
    report = {
        "title": title or "Cross-validation results",
        "metrics": list(metrics),
        "models": models,
        **dict(extra or {}),
    }
    write_json(report, paths["json"])
    return paths


@deprecated_positional("time", "event", "risk")
def median_risk_split(
    *,
    event: Sequence[bool] | np.ndarray,
    time: Sequence[float] | np.ndarray,
    risk: Sequence[float] | np.ndarray,
) -> dict[str, Any]:
    """Split patients at the median risk and compare the two groups with a log-rank test.

    Args:
        event: array-like of bool, shape ``(n_patients,)``. True where the event was observed.
        time: array-like, shape ``(n_patients,)``. Days to event or censoring.
        risk: array-like, shape ``(n_patients,)``. Predicted risk, higher = worse.

    Returns:
        dict with ``median`` (float), ``high_risk`` (bool array, risk > median),
        ``n_high``, ``n_low`` (int), ``chisq`` and ``p_value`` (float) of the log-rank test
        (scikit-survival's ``compare_survival``).

    Raises:
        InputError: on mismatched lengths, non-finite risks, or when every patient falls in one
            group (constant risk).
    """
    y = make_survival_y(event=event, time=time)
    risk_arr = check_risk(risk, n_samples=len(y))
    median = float(np.median(risk_arr))
    high = risk_arr > median
    if high.all() or not high.any():
        raise InputError(
            "cannot split at the median risk: every patient falls in one group "
            f"(is the risk constant? Received: median={median})"
        )
    from sksurv.compare import compare_survival

    chisq, p_value = compare_survival(y, high.astype(int))
    return {
        "median": median,
        "high_risk": high,
        "n_high": int(high.sum()),
        "n_low": int((~high).sum()),
        "chisq": float(chisq),
        "p_value": float(p_value),
    }


@deprecated_positional("time", "event", "risk", "path")
def plot_kaplan_meier(
    *,
    event: Sequence[bool] | np.ndarray,
    time: Sequence[float] | np.ndarray,
    risk: Sequence[float] | np.ndarray,
    path: str | os.PathLike,
    title: str | None = None,
    time_unit: str = "days",
) -> float:
    """Plot Kaplan-Meier curves of the low- and high-risk halves and save them as PNG.

    Patients are split at the median risk (:func:`median_risk_split`); the legend gives the
    group sizes and the plot the log-rank p-value. Uses matplotlib's Agg canvas directly, so it
    works without a display and leaves the global backend alone.

    Args:
        event: array-like of bool, shape ``(n_patients,)``. True where the event was observed.
        time: array-like, shape ``(n_patients,)``. Days to event or censoring.
        risk: array-like, shape ``(n_patients,)``. Predicted risk, higher = worse.
        path: str or PathLike. The PNG file, written atomically.
        title: str, optional. Plot title. Defaults to ``"Kaplan-Meier, split at median risk"``.
        time_unit: str. Label of the time axis. Defaults to ``"days"``.

    Returns:
        float. The log-rank p-value.

    Raises:
        InputError: as :func:`median_risk_split`.

    Example:
        >>> p = plot_kaplan_meier(  # doctest: +SKIP
        ...     event=event, time=time, risk=risk, path="km.png"
        ... )
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from sksurv.nonparametric import kaplan_meier_estimator

    split = median_risk_split(event=event, time=time, risk=risk)
    y = make_survival_y(event=event, time=time)
    figure = Figure(figsize=(6, 4.5), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for label, members, color in (
        ("low risk", ~split["high_risk"], "tab:blue"),
        ("high risk", split["high_risk"], "tab:red"),
    ):
        times, survival = kaplan_meier_estimator(y["event"][members], y["time"][members])
        axes.step(
            np.concatenate([[0.0], times]),
            np.concatenate([[1.0], survival]),
            where="post",
            color=color,
            label=f"{label} (n={int(members.sum())}, events={int(y['event'][members].sum())})",
        )
    axes.set_xlabel(f"time ({time_unit})")
    axes.set_ylabel("event-free probability")
    axes.set_ylim(0.0, 1.02)
    axes.set_title(title or "Kaplan-Meier, split at median risk")
    axes.text(
        0.02, 0.04, f"log-rank p = {split['p_value']:.3g}", transform=axes.transAxes
    )
    axes.legend(loc="upper right")
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return split["p_value"]


def _with_model_column(per_fold: pd.DataFrame) -> pd.DataFrame:
    if "fold" not in per_fold.columns:
        raise InputError(
            f"per-fold table needs a 'fold' column. Received columns: {list(per_fold.columns)}"
        )
    if "model" in per_fold.columns:
        return per_fold
    return per_fold.assign(model="model")[["model", *per_fold.columns]]


def _metric_columns(per_fold: pd.DataFrame, metrics: Sequence[str] | None) -> list[str]:
    if metrics is None:
        metrics = [
            c
            for c in per_fold.columns
            if c not in ("model", "fold") and pd.api.types.is_numeric_dtype(per_fold[c])
        ]
    metrics = list(metrics)
    if not metrics:
        raise InputError("per-fold table has no metric column")
    for metric in metrics:
        if metric not in per_fold.columns:
            raise InputError(
                f"per-fold table has no column {metric!r}. Received columns: "
                f"{list(per_fold.columns)}"
            )
        if not pd.api.types.is_numeric_dtype(per_fold[metric]):
            raise InputError(f"per-fold column {metric!r} must be numeric")
    return metrics


def _fold_count_text(summary: pd.DataFrame) -> str:
    counts = sorted(set(summary["n_folds"].astype(int)))
    return ", ".join(str(c) for c in counts) + (" fold" if counts == [1] else " folds")


def _json_float(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
