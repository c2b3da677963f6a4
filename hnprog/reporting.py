"""Cross-validation reports: per-fold tables with mean ± standard error, and Kaplan-Meier plots.

The tables follow Tables 1-2 of Andrearczyk et al. (2021): one row per model, one column per
metric, each cell ``mean ± standard error`` over the folds (for example ``0.695 ± 0.083``).
They are written as CSV (numbers), Markdown (for reading) and JSON (for programs), next to a
per-fold CSV. The standard error is the sample standard deviation (``ddof=1``) divided by the
square root of the number of folds.

Kaplan-Meier curves split the patients at the median predicted risk (risk above the median =
high-risk group) and give the log-rank p-value of the difference.

:class:`CVResult` is the one result of a cross-validation, deep
(:func:`hnprog.training.cross_validate`) or radiomics (:func:`hnprog.radiomics.run_radiomics_cv`):
a per-fold table (:data:`CV_FOLD_COLUMNS`) and a per-patient table
(:data:`CV_PREDICTION_COLUMNS`) of the same layout for every model, which
:func:`write_cv_report` and :func:`plot_cv_kaplan_meier` write.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hnprog.errors import InputError, counted
from hnprog.io import atomic_path, atomic_write, write_json
from hnprog.survival import check_risk, deprecated_positional, make_survival_y

__all__ = [
    "CV_FOLD_COLUMNS",
    "CV_PREDICTION_COLUMNS",
    "CVResult",
    "METRIC_LABELS",
    "median_risk_split",
    "mean_and_standard_error",
    "plot_calibration",
    "plot_cv_kaplan_meier",
    "plot_forest",
    "plot_kaplan_meier",
    "summarise_folds",
    "write_cv_report",
]

METRIC_LABELS = {"c_index": "C-index", "dice": "Dice"}
"""Column headers of the metrics that the paper reports; other metrics keep their names."""

CV_FOLD_COLUMNS = ("model", "fold", "c_index", "dice")
"""The first columns of a cross-validation's per-fold table, one row per (model, fold): the
report's model name, the 0-based fold, and the test C-index and mean Dice (NaN for a model
without that output). Model-specific columns may follow."""

CV_PREDICTION_COLUMNS = ("model", "fold", "patient_id", "time", "event", "risk", "dice")
"""The columns of a cross-validation's per-patient table (``predictions.csv``), one row per
(model, test patient): time in days, event (bool), risk (log-hazard, higher is worse) and the
patient's Dice (NaN without a segmentation output)."""


@dataclass
class CVResult:
    """The result of a cross-validation, deep or radiomics: one schema for every model.

    Args:
        per_fold: pandas.DataFrame. One row per (model, fold), columns
            :data:`CV_FOLD_COLUMNS` (``dice`` is added as NaN when absent), then any
            model-specific columns (the radiomics baseline's ``val_c_index``, ``threshold``,
            ``alpha``, ``n_selected``, set sizes and events).
        predictions: pandas.DataFrame. One row per (model, test patient), columns
            :data:`CV_PREDICTION_COLUMNS` (``dice`` added as NaN when absent).
        log_rank_p: dict. Model -> log-rank p-value of its pooled test patients split at the
            median risk (:func:`plot_cv_kaplan_meier`). Defaults to empty.
        files: dict. Output name -> path of the files written. Defaults to empty.
        extra: dict. More JSON-ready entries of ``results.json`` (the settings, splits,
            selected features per fold, ...). Defaults to empty.

    Raises:
        InputError: if a table lacks one of its columns.
    """

    per_fold: pd.DataFrame
    predictions: pd.DataFrame
    log_rank_p: dict[str, float] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.per_fold = _cv_table(self.per_fold, CV_FOLD_COLUMNS, "per-fold")
        self.predictions = _cv_table(self.predictions, CV_PREDICTION_COLUMNS, "predictions")

    @property
    def models(self) -> list[str]:
        """The model names, in table order."""
        return list(dict.fromkeys(self.per_fold["model"]))

    def summary(self, metrics: Sequence[str] | None = None) -> pd.DataFrame:
        """Mean ± standard error of each metric per model (:func:`summarise_folds`)."""
        return summarise_folds(self.per_fold, metrics=metrics or ["c_index", "dice"])

    def mean_and_se(self, metric: str = "c_index", model: str | None = None) -> tuple[float, float]:
        """Mean and standard error over folds of one model's metric.

        Args:
            metric: str. A per-fold column. Defaults to ``"c_index"``.
            model: str, optional. The model; may be omitted when there is only one.

        Raises:
            InputError: for an unknown model, or no model named when there are several.
        """
        if model is None:
            if len(self.models) != 1:
                raise InputError(f"the result holds several models; name one of {self.models}")
            model = self.models[0]
        if model not in self.models:
            raise InputError(f"unknown model {model!r}; the result holds {self.models}")
        return mean_and_standard_error(self.per_fold.loc[self.per_fold["model"] == model, metric])

    @property
    def c_index_mean(self) -> float:
        """Mean test C-index over folds (of the only model)."""
        return self.mean_and_se("c_index")[0]

    @property
    def c_index_se(self) -> float:
        """Standard error of the test C-index over folds (of the only model)."""
        return self.mean_and_se("c_index")[1]


def _cv_table(table: pd.DataFrame, columns: Sequence[str], what: str) -> pd.DataFrame:
    table = table.reset_index(drop=True)
    if "dice" not in table.columns:
        table = table.assign(dice=np.nan)
    missing = [c for c in columns if c not in table.columns]
    if missing and len(table):
        raise InputError(
            f"a cross-validation's {what} table needs the columns {list(columns)}. "
            f"Received columns: {list(table.columns)}"
        )
    table = table.reindex(columns=[*columns, *(c for c in table.columns if c not in columns)])
    return table


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
    per_fold: pd.DataFrame | CVResult,
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
      {"mean", "se", "per_fold"}}}}`` plus ``extra``;
    - for a :class:`CVResult`, also ``predictions.csv`` (:data:`CV_PREDICTION_COLUMNS`), and
      the result's ``extra`` and ``log_rank_p`` in the JSON.

    Args:
        per_fold: pandas.DataFrame or CVResult. One row per (model, fold) (see
            :func:`summarise_folds`), or a cross-validation's result.
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
        dict mapping ``"per_fold_csv"``, ``"csv"``, ``"markdown"``, ``"json"`` (and
        ``"predictions"`` for a CVResult) to the paths.

    Raises:
        InputError: if a metric column is missing or not numeric.

    Example:
        >>> per_fold = pd.DataFrame({"fold": range(5), "c_index": [0.7, 0.6, 0.8, 0.7, 0.65]})
        >>> paths = write_cv_report(per_fold, "cv_out", title="Radiomics")  # doctest: +SKIP
    """
    predictions = None
    if isinstance(per_fold, CVResult):
        extra = {**per_fold.extra, "log_rank_p": per_fold.log_rank_p, **dict(extra or {})}
        predictions, per_fold = per_fold.predictions, per_fold.per_fold
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
    if predictions is not None:
        paths["predictions"] = out_dir / "predictions.csv"
        with atomic_write(paths["predictions"], newline="") as f:
            predictions.to_csv(f, index=False)
    return paths


def plot_cv_kaplan_meier(
    result: CVResult, model: str, path: str | os.PathLike, *, title: str
) -> float | None:
    """Plot one model's pooled test patients of a cross-validation, split at the median risk.

    Records the log-rank p-value in ``result.log_rank_p[model]`` and the file in
    ``result.files`` (under the file's stem, e.g. ``"kaplan_meier_multitask"``).

    Args:
        result: CVResult. The cross-validation.
        model: str. A model of ``result.predictions``.
        path: str or PathLike. The PNG file (:func:`plot_kaplan_meier`).
        title: str. Plot title.

    Returns:
        float or None. The log-rank p-value; None, with no file, when there is nothing to
        split: a risk is missing (a model without a risk output), no test patient had an
        event, or the risk is constant.
    """
    rows = result.predictions[result.predictions["model"] == model]
    if not len(rows) or rows["risk"].isna().any() or not rows["event"].any():
        return None
    try:
        p_value = plot_kaplan_meier(
            event=rows["event"].to_numpy(dtype=bool), time=rows["time"].to_numpy(dtype=float),
            risk=rows["risk"].to_numpy(dtype=float), path=path, title=title,
        )
    except InputError:  # constant risk: no curve to draw, the tables still stand
        return None
    path = Path(path)
    result.log_rank_p[model] = float(p_value)
    result.files[path.stem] = path
    return float(p_value)


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
    high_risk: Sequence[bool] | np.ndarray | None = None,
) -> float:
    """Plot Kaplan-Meier curves of the low- and high-risk groups and save them as PNG.

    Patients are split at the median risk (:func:`median_risk_split`), or into the groups
    given by ``high_risk``. Each curve carries a tick at every censored patient; under the
    plot, a table gives the numbers still at risk at regular times; the legend (group sizes
    and events) and the log-rank p-value sit outside the curves, below the axes. Uses
    matplotlib's Agg canvas directly, so it works without a display and leaves the global
    backend alone.

    Args:
        event: array-like of bool, shape ``(n_patients,)``. True where the event was observed.
        time: array-like, shape ``(n_patients,)``. Days to event or censoring.
        risk: array-like, shape ``(n_patients,)``. Predicted risk, higher = worse.
        path: str or PathLike. The PNG file, written atomically.
        title: str, optional. Plot title. Defaults to ``"Kaplan-Meier, split at median risk"``.
        time_unit: str. Label of the time axis. Defaults to ``"days"``.
        high_risk: array-like of bool ``(n_patients,)``, optional. The high-risk group (e.g.
            risk above a model's recorded threshold). Defaults to the median split.

    Returns:
        float. The log-rank p-value (``sksurv.compare.compare_survival``).

    Raises:
        InputError: as :func:`median_risk_split`, or when ``high_risk`` leaves a group empty.

    Example:
        >>> p = plot_kaplan_meier(  # doctest: +SKIP
        ...     event=event, time=time, risk=risk, path="km.png"
        ... )
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from sksurv.compare import compare_survival
    from sksurv.nonparametric import kaplan_meier_estimator

    y = make_survival_y(event=event, time=time)
    if high_risk is None:
        split = median_risk_split(event=event, time=time, risk=risk)
        high, p_value = split["high_risk"], split["p_value"]
        default_title = "Kaplan-Meier, split at median risk"
    else:
        check_risk(risk, n_samples=len(y))
        high = np.asarray(high_risk, dtype=bool)
        if high.shape != (len(y),) or high.all() or not high.any():
            raise InputError("high_risk must mark some but not all patients, one value per "
                             f"patient. Received: {int(high.sum())} of {len(high)} high")
        p_value = float(compare_survival(y, high.astype(int))[1])
        default_title = "Kaplan-Meier by risk group"
    figure = Figure(figsize=(7, 6), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0.17, 0.40, 0.79, 0.54))
    table = figure.add_axes((0.17, 0.03, 0.79, 0.13))
    groups = (("low risk", ~high, "tab:blue"), ("high risk", high, "tab:red"))
    end = float(y["time"].max())
    ticks = np.linspace(0.0, end, 6)
    if end > 365:
        step = 365.0 * max(1, int(np.ceil(end / 365.0 / 6)))
        ticks = np.arange(0.0, end + 1e-9, step)
    for row, (label, members, color) in enumerate(groups):
        ev, ti = y["event"][members], y["time"][members]
        times, survival = kaplan_meier_estimator(ev, ti)
        steps_t = np.concatenate([[0.0], times])
        steps_s = np.concatenate([[1.0], survival])
        axes.step(steps_t, steps_s, where="post", color=color, lw=1.8,
                  label=f"{label}: n={int(members.sum())}, {counted(int(ev.sum()), 'event')}")
        censored = ti[~ev]
        at = steps_s[np.searchsorted(steps_t, censored, side="right") - 1]
        axes.plot(censored, at, linestyle="none", marker="|", markersize=9, color=color,
                  markeredgewidth=1.4)
        at_risk = [int((ti >= t).sum()) for t in ticks]
        for t, count in zip(ticks, at_risk):
            table.text(t, 1 - row, str(count), ha="center", va="center", color=color,
                       fontsize=9)
    axes.plot([], [], linestyle="none", marker="|", color="0.3", markersize=9,
              label="censored patient")
    axes.set_xlim(0.0, end * 1.02)
    axes.set_xticks(ticks)
    axes.set_xlabel(f"time ({time_unit})")
    axes.set_ylabel("event-free probability")
    axes.set_ylim(0.0, 1.02)
    axes.set_title(title or default_title, fontsize=11)
    axes.grid(alpha=0.25)
    axes.legend(loc="upper left", bbox_to_anchor=(0.0, -0.13), ncol=2, frameon=False,
                fontsize=8.5, title=f"log-rank p = {p_value:.3g}", title_fontsize=8.5,
                alignment="left")
    table.set_xlim(axes.get_xlim())
    table.set_ylim(-0.6, 1.6)
    for row, (label, _, color) in enumerate(groups):
        figure.text(0.02, table.transData.transform((0, 1 - row))[1] / figure.bbox.height,
                    label, ha="left", va="center", color=color, fontsize=9)
    table.set_title("number at risk", fontsize=9, loc="left")
    table.axis("off")
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return float(p_value)


def plot_calibration(calibration: Mapping[str, Any], path: str | os.PathLike, *,
                     title: str = "Calibration at 2 years") -> None:
    """Predicted against Kaplan-Meier observed survival by risk group, as PNG.

    Args:
        calibration: dict. From :func:`hnprog.evaluation.calibration_table`: ``days``,
            ``groups`` (``n``, ``n_events``, ``predicted``, ``observed``), ``slope``,
            ``intercept``.
        path: str or PathLike. The PNG file, written atomically.
        title: str. Plot title. Defaults to ``"Calibration at 2 years"``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.2, 5.2), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], color="0.6", linestyle="--", lw=1, label="perfect calibration")
    points = [(g["predicted"], g["observed"], g["n"]) for g in calibration["groups"]
              if g["observed"] is not None]
    if points:
        predicted, observed, counts = zip(*points)
        # the groups are (nearly) equal in size: one count in the legend, not a label per
        # point (labels of neighbouring groups overlap, and points at 1.0 sit on the edge)
        size = (f"{min(counts)}" if min(counts) == max(counts)
                else f"{min(counts)}-{max(counts)}")
        axes.plot(predicted, observed, "o", color="tab:blue", markersize=7, clip_on=False,
                  label=f"risk quintile, {size} patients each\n(low to high risk: right to left)")
    if calibration.get("slope") is not None:
        xs = np.array([0.0, 1.0])
        axes.plot(xs, calibration["intercept"] + calibration["slope"] * xs, color="tab:blue",
                  lw=1, label=f"least-squares line, slope {calibration['slope']:.2f}")
    else:
        axes.text(0.97, 0.05, "no slope: fewer than 2 risk groups followed\nto this day, or "
                  "no event by it", ha="right", va="bottom", color="0.4", fontsize=9)
    axes.set_xlim(0, 1.02)
    axes.set_ylim(0, 1.02)
    axes.set_aspect("equal")
    days = calibration["days"]
    axes.set_xlabel(f"predicted event-free probability at {days:g} days")
    axes.set_ylabel(f"observed (Kaplan-Meier) at {days:g} days")
    axes.set_title(title, fontsize=11)
    axes.grid(alpha=0.25)
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")


def plot_forest(rows: Sequence[tuple[str, float | None, Sequence[float] | None]],
                path: str | os.PathLike, *, title: str = "C-index by centre",
                label: str = "Harrell's C-index (95% bootstrap CI)") -> None:
    """A forest plot: one estimate with its interval per row (centres, then pooled), as PNG.

    Args:
        rows: sequence of ``(name, estimate, [low, high] or None)``. The last row is drawn as
            a diamond (the pooled estimate); a row whose estimate is None keeps its line,
            marked "not estimable" (a centre without an event, or without a comparable pair).
        path: str or PathLike. The PNG file, written atomically.
        title: str. Plot title.
        label: str. Label of the value axis.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    height = 1.3 + 0.42 * len(rows)
    figure = Figure(figsize=(6.4, height), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for i, (name, estimate, interval) in enumerate(rows):
        y_pos = len(rows) - 1 - i
        last = i == len(rows) - 1
        if estimate is None:
            axes.text(1.02, y_pos, "not estimable", va="center", fontsize=8.5, color="0.4",
                      transform=axes.get_yaxis_transform())
            continue
        if interval is not None:
            axes.plot(interval, [y_pos, y_pos], color="black", lw=1.4)
        axes.plot([estimate], [y_pos], marker="D" if last else "s",
                  markersize=9 if last else 6, color="tab:red" if last else "black")
        text = f"{estimate:.3f}" + ("" if interval is None
                                    else f" ({interval[0]:.3f}-{interval[1]:.3f})")
        axes.text(1.02, y_pos, text, va="center", fontsize=8.5,
                  transform=axes.get_yaxis_transform())
    axes.axvline(0.5, color="0.6", linestyle="--", lw=1)
    axes.set_yticks(range(len(rows)))
    axes.set_yticklabels([name for name, _, _ in reversed(rows)], fontsize=9)
    axes.set_xlim(0.0, 1.0)
    axes.set_ylim(-0.7, len(rows) - 0.3)
    axes.set_xlabel(f"{label}; 0.5 = chance")
    axes.set_title(title, fontsize=11)
    axes.grid(axis="x", alpha=0.25)
    figure.subplots_adjust(left=0.34, right=0.74, bottom=0.75 / height, top=1 - 0.4 / height)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")


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
