"""Evaluation of predicted risks and survival probabilities: the field's metrics, per centre.

:func:`evaluate_survival` computes, for the pooled patients and for each centre:

- **Harrell's C-index** (:func:`hnprog.metrics.concordance_index`, equal to
  ``sksurv.metrics.concordance_index_censored``) with a 95% percentile bootstrap interval
  (patients resampled with replacement);
- **Uno's C-index** (``sksurv.metrics.concordance_index_ipcw``: Harrell's C weighted by the
  inverse probability of censoring, less dependent on the censoring);
- the **time-dependent AUC** at the requested days (``sksurv.metrics.cumulative_dynamic_auc``:
  can the risk tell who had an event by ``t`` from who was still event-free at ``t``?);
- the **integrated Brier score** of the survival probabilities over the requested days
  (``sksurv.metrics.integrated_brier_score``; lower is better, 0.25 is an uninformative
  constant 0.5);
- the **calibration at 2 years** (730 days): patients in risk quintiles, the mean predicted
  survival of each quintile against its Kaplan-Meier survival, and the slope of a least
  squares line through the five points (1 is perfect; below 1 predictions too extreme),
  from 25 patients on (5 per quintile; fewer give Kaplan-Meier survivals of 0, 0.5 or 1);
- the **log-rank p** of the risk groups (``risk_group`` high/low when given, else a split at
  the median risk; ``sksurv.compare.compare_survival``).

Censoring for Uno's C, the AUC and the Brier score is estimated on ``survival_train`` (by
default the evaluated patients themselves). Times outside the follow-up of the evaluated
patients are left out with the reason, as scikit-survival requires.

:func:`write_evaluation` writes ``metrics.json``, ``metrics.md`` and the pictures
(Kaplan-Meier by risk group, calibration, per-centre forest plot of the C-index);
:func:`evaluate_run` is the block that ``hnprog predict``, ``cv`` and ``radiomics cv`` write
into ``evaluation/`` when they have endpoints.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hnprog.errors import InputError, counted
from hnprog.io import atomic_write, write_json
from hnprog.metrics import concordance_index
from hnprog.survival import check_event_time, check_risk, make_survival_y

__all__ = [
    "CALIBRATION_DAYS",
    "METRICS_FILE",
    "METRICS_MD_FILE",
    "calibration_table",
    "HECKTOR_COLUMNS",
    "evaluate_run",
    "evaluate_survival",
    "hecktor_concordance",
    "metrics_markdown",
    "predictions_table_metrics",
    "read_predictions",
    "write_evaluation",
]

CALIBRATION_DAYS = 730.0
CALIBRATION_MIN_GROUP = 5  # patients per risk group, at least, for a calibration
METRICS_FILE = "metrics.json"
METRICS_MD_FILE = "metrics.md"
POOLED = "pooled"


def evaluate_survival(
    *,
    event: Sequence[bool] | np.ndarray,
    time: Sequence[float] | np.ndarray,
    risk: Sequence[float] | np.ndarray,
    times: Sequence[float] = (365.0, 730.0, 1095.0, 1825.0),
    survival: np.ndarray | None = None,
    risk_group: Sequence[str | None] | None = None,
    centres: Sequence[str | None] | None = None,
    survival_train: np.ndarray | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """The survival metrics of predicted risks (and probabilities), pooled and per centre.

    Args:
        event: array-like ``(n,)``, bool or 0/1. Observed event (else censored).
        time: array-like ``(n,)``. Days to event or censoring.
        risk: array-like ``(n,)``. Predicted log-hazard (or any risk score): higher is worse.
        times: sequence of float. Days of the time-dependent AUC and, with ``survival``, of
            the Brier score. Defaults to 1, 2, 3 and 5 years.
        survival: array ``(n, len(times))``, optional. Predicted survival probability of each
            patient at each time (NaN where unknown), for the integrated Brier score and the
            calibration (which needs 730 in ``times``). Defaults to None (risk metrics only).
        risk_group: sequence of ``"high"``/``"low"``, optional. The groups of the log-rank
            test. Defaults to None (split at the median risk).
        centres: sequence of str, optional. Each patient's centre, for the per-centre
            metrics. Defaults to None (pooled only).
        survival_train: structured array, optional. The outcomes of the training patients
            (:func:`hnprog.survival.make_survival_y`), for the censoring distribution of
            Uno's C, the AUC and the Brier score. Defaults to the evaluated patients.
        n_bootstrap: int. Bootstrap resamples of the C-index interval. Defaults to 1000.
        seed: int. Seed of the bootstrap. Defaults to 0.

    Returns:
        dict. ``pooled`` and ``per_centre`` (centre -> the same fields): ``n``, ``n_events``,
        ``harrell_c``, ``harrell_c_ci95`` ([low, high]), ``uno_c``, ``time_auc`` (days ->
        AUC), ``mean_auc``, ``integrated_brier_score``, ``brier_times_days``,
        ``calibration`` (see :func:`calibration_table`), ``log_rank_p``, ``notes`` (why a
        metric is missing). Missing values are None. Also ``times_days`` and
        ``n_bootstrap``.

    Raises:
        InputError: on invalid outcomes or risks, or a ``survival`` of the wrong shape.

    Example:
        >>> result = evaluate_survival(event=event, time=time, risk=risk)  # doctest: +SKIP
        >>> result["pooled"]["harrell_c"], result["pooled"]["harrell_c_ci95"]  # doctest: +SKIP
        (0.68, [0.61, 0.75])
    """
    event_arr, time_arr = check_event_time(event=event, time=time)
    risk_arr = check_risk(risk, n_samples=len(time_arr))
    times_arr = np.asarray(sorted({float(t) for t in times}), dtype=np.float64)
    if survival is not None:
        survival = np.asarray(survival, dtype=np.float64)
        if survival.shape != (len(time_arr), len(times_arr)):
            raise InputError(
                f"survival must be of shape (n_patients, n_times) = ({len(time_arr)}, "
                f"{len(times_arr)}). Received: survival.shape={survival.shape}")
    train = survival_train if survival_train is not None else make_survival_y(
        event=event_arr, time=time_arr)
    groups = None if risk_group is None else np.asarray(
        [str(g) if g is not None and g == g else "" for g in risk_group], dtype=object)
    rng = np.random.default_rng(seed)

    def block(rows: np.ndarray) -> dict[str, Any]:
        return _metrics(event_arr[rows], time_arr[rows], risk_arr[rows], times_arr,
                        None if survival is None else survival[rows],
                        None if groups is None else groups[rows], train, n_bootstrap, rng)

    result: dict[str, Any] = {"times_days": times_arr.tolist(), "n_bootstrap": n_bootstrap,
                              POOLED: block(np.arange(len(time_arr))), "per_centre": {}}
    if centres is not None:
        centre_arr = np.asarray([str(c) if c is not None else "unknown" for c in centres])
        if len(centre_arr) != len(time_arr):
            raise InputError(f"centres must name every patient. Received: {len(centre_arr)} "
                             f"centres for {len(time_arr)} patients")
        for centre in sorted(set(centre_arr)):
            result["per_centre"][centre] = block(np.flatnonzero(centre_arr == centre))
    return result


def _metrics(event: np.ndarray, time: np.ndarray, risk: np.ndarray, times: np.ndarray,
             survival: np.ndarray | None, groups: np.ndarray | None, train: np.ndarray,
             n_bootstrap: int, rng: np.random.Generator) -> dict[str, Any]:
    """Every metric on one set of patients; a metric that cannot be computed is None."""
    from sksurv.metrics import (concordance_index_ipcw, cumulative_dynamic_auc,
                                integrated_brier_score)

    notes: list[str] = []
    out: dict[str, Any] = {"n": int(len(time)), "n_events": int(event.sum())}
    y = make_survival_y(event=event, time=time)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        harrell = concordance_index(event=event, time=time, risk=risk)
        out["harrell_c"] = _number(harrell)
        out["harrell_c_ci95"] = _bootstrap_ci(event, time, risk, n_bootstrap, rng)
    if out["harrell_c"] is None:
        notes.append("C-index: no comparable pair (no event)")
    try:
        out["uno_c"] = _number(concordance_index_ipcw(train, y, risk)[0])
    except (ValueError, ZeroDivisionError, np.linalg.LinAlgError) as exc:
        out["uno_c"] = None
        notes.append(f"Uno's C: {exc}")
    # scikit-survival's AUC and Brier score need times inside the evaluated follow-up
    inside = (times >= time.min()) & (times < time.max()) & (times < train["time"].max())
    if event.any() and inside.any():
        try:
            with warnings.catch_warnings():  # a centre with one event: NaN, reported as None
                warnings.simplefilter("ignore", RuntimeWarning)
                auc, mean_auc = cumulative_dynamic_auc(train, y, risk, times[inside])
            out["time_auc"] = {f"{t:g}": _number(a) for t, a in zip(times[inside], auc)}
            out["mean_auc"] = _number(mean_auc)
        except (ValueError, np.linalg.LinAlgError) as exc:
            out["time_auc"], out["mean_auc"] = {}, None
            notes.append(f"time-dependent AUC: {exc}")
    else:
        out["time_auc"], out["mean_auc"] = {}, None
        notes.append("time-dependent AUC: no requested time inside the follow-up")
    left_out = [f"{t:g}" for t in times[~inside]]
    if left_out and out["time_auc"]:
        notes.append(f"days {', '.join(left_out)} are outside the follow-up "
                     f"({time.min():g}-{time.max():g} days): no AUC there")
    out["integrated_brier_score"], out["brier_times_days"] = None, []
    out["calibration"] = None
    if survival is not None:
        usable = inside & np.isfinite(survival).all(axis=0)
        if usable.sum() >= 2:
            try:
                out["integrated_brier_score"] = _number(integrated_brier_score(
                    train, y, survival[:, usable], times[usable]))
                out["brier_times_days"] = times[usable].tolist()
            except (ValueError, np.linalg.LinAlgError) as exc:
                notes.append(f"integrated Brier score: {exc}")
        else:
            notes.append("integrated Brier score: fewer than 2 predicted times inside the "
                         "follow-up")
        if CALIBRATION_DAYS in times:
            column = int(np.flatnonzero(times == CALIBRATION_DAYS)[0])
            out["calibration"] = calibration_table(event=event, time=time, risk=risk,
                                                   predicted=survival[:, column])
            if out["calibration"] is None:
                notes.append(f"calibration: fewer than {5 * CALIBRATION_MIN_GROUP} patients "
                             f"with a 730-day probability ({CALIBRATION_MIN_GROUP} per risk "
                             "quintile)")
        else:
            notes.append("calibration: no survival_730d column")
    out["log_rank_p"], out["risk_groups"] = _log_rank(y, risk, groups, notes)
    out["notes"] = notes
    return out


def _number(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _bootstrap_ci(event: np.ndarray, time: np.ndarray, risk: np.ndarray, n_bootstrap: int,
                  rng: np.random.Generator) -> list[float] | None:
    """The 2.5 and 97.5 percentiles of Harrell's C over bootstrap resamples of the patients."""
    if n_bootstrap < 1 or not event.any():
        return None
    values = []
    for _ in range(n_bootstrap):
        rows = rng.integers(0, len(time), len(time))
        values.append(concordance_index(event=event[rows], time=time[rows], risk=risk[rows]))
    values = np.asarray(values)
    values = values[np.isfinite(values)]
    if len(values) < max(10, n_bootstrap // 2):
        return None
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def _log_rank(y: np.ndarray, risk: np.ndarray, groups: np.ndarray | None,
              notes: list[str]) -> tuple[float | None, str | None]:
    from sksurv.compare import compare_survival

    if groups is not None and set(groups) == {"high", "low"}:
        high, how = groups == "high", "the models' risk threshold"
    else:
        high, how = risk > np.median(risk), "the median risk"
    if high.all() or not high.any() or not y["event"].any():
        notes.append("log-rank: one risk group is empty or no event")
        return None, how
    try:
        return float(compare_survival(y, high.astype(int))[1]), how
    except (ValueError, np.linalg.LinAlgError) as exc:
        notes.append(f"log-rank: {exc}")
        return None, how


def calibration_table(
    *,
    event: Sequence[bool] | np.ndarray,
    time: Sequence[float] | np.ndarray,
    risk: Sequence[float] | np.ndarray,
    predicted: Sequence[float] | np.ndarray,
    days: float = CALIBRATION_DAYS,
    n_groups: int = 5,
    min_group_size: int = CALIBRATION_MIN_GROUP,
) -> dict[str, Any] | None:
    """Predicted against observed survival at ``days``, by risk quantile group.

    Patients are sorted by risk and cut into ``n_groups`` groups of (nearly) equal size. For
    each group, the mean predicted survival at ``days`` is set against the group's
    Kaplan-Meier survival at ``days`` (``sksurv.nonparametric.kaplan_meier_estimator``).
    The slope is the least-squares slope of observed on predicted over the groups: 1 when
    the predictions are calibrated, below 1 when they spread more than the outcomes.

    Args:
        event: array-like ``(n,)``. Observed event.
        time: array-like ``(n,)``. Days to event or censoring.
        risk: array-like ``(n,)``. Log-hazard, higher is worse.
        predicted: array-like ``(n,)``. Predicted survival probability at ``days``.
        days: float. The horizon. Defaults to 730 (2 years).
        n_groups: int. Risk groups (quintiles). Defaults to 5.
        min_group_size: int. Fewest patients per group: a Kaplan-Meier survival of 2 or 3
            patients is 0, 0.5 or 1, and a slope through such points says nothing. Defaults
            to 5 (25 patients for quintiles).

    Returns:
        dict or None. ``days``, ``groups`` (list of dicts: ``n``, ``n_events``,
        ``predicted``, ``observed``; ``observed`` None when the group's follow-up ends
        before ``days``), ``slope`` and ``intercept`` (None with fewer than 2 usable
        groups, or when no patient had an event by ``days``: every observed survival is
        then 1 and a slope of 0 would only say so); None when fewer than
        ``n_groups * min_group_size`` patients have a predicted probability.
    """
    from sksurv.nonparametric import kaplan_meier_estimator

    event_arr, time_arr = check_event_time(event=event, time=time)
    risk_arr = check_risk(risk, n_samples=len(time_arr))
    predicted_arr = np.asarray(predicted, dtype=np.float64)
    known = np.isfinite(predicted_arr)
    if known.sum() < n_groups * max(1, min_group_size):
        return None
    order = np.flatnonzero(known)[np.argsort(risk_arr[known], kind="stable")]
    rows_out = []
    for rows in np.array_split(order, n_groups):
        observed = None
        if time_arr[rows].max() >= days:
            km_times, km_survival = kaplan_meier_estimator(event_arr[rows], time_arr[rows])
            before = np.searchsorted(km_times, days, side="right") - 1
            observed = float(km_survival[before]) if before >= 0 else 1.0
        rows_out.append({"n": int(len(rows)), "n_events": int(event_arr[rows].sum()),
                         "predicted": float(predicted_arr[rows].mean()), "observed": observed})
    points = [(g["predicted"], g["observed"]) for g in rows_out if g["observed"] is not None]
    slope = intercept = None
    events_by_horizon = bool((event_arr[known] & (time_arr[known] <= days)).any())
    if len(points) >= 2 and np.ptp([p for p, _ in points]) > 0 and events_by_horizon:
        slope, intercept = (float(v) for v in np.polyfit(*zip(*points), deg=1))
    return {"days": float(days), "groups": rows_out, "slope": slope, "intercept": intercept}


# ---------------------------------------------------------------------------------------------
# Files: metrics.json, metrics.md and pictures
# ---------------------------------------------------------------------------------------------


def write_evaluation(
    result: Mapping[str, Any],
    out_dir: str | os.PathLike,
    *,
    event: Sequence[bool] | np.ndarray,
    time: Sequence[float] | np.ndarray,
    risk: Sequence[float] | np.ndarray,
    risk_group: Sequence[str | None] | None = None,
    title: str = "Evaluation",
) -> dict[str, Path]:
    """Write an evaluation (:func:`evaluate_survival`) as ``metrics.json``, ``metrics.md`` and
    PNG pictures into ``out_dir``, each atomically.

    The pictures: ``kaplan_meier.png`` (the risk groups, with censoring ticks and numbers at
    risk), ``calibration.png`` (when a 2-year calibration was computed) and
    ``forest_c_index.png`` (Harrell's C with its interval per centre and pooled).

    Args:
        result: dict. From :func:`evaluate_survival`.
        out_dir: str or PathLike. Created if needed.
        event, time, risk: array-like ``(n,)``. The evaluated patients (for the Kaplan-Meier
            plot).
        risk_group: sequence of str, optional. As given to :func:`evaluate_survival`.
        title: str. First heading of ``metrics.md`` and the pictures' titles.

    Returns:
        dict of name -> Path of the files written.
    """
    from hnprog.reporting import plot_calibration, plot_forest, plot_kaplan_meier

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"json": out_dir / METRICS_FILE, "markdown": out_dir / METRICS_MD_FILE}
    write_json(dict(result), files["json"])
    with atomic_write(files["markdown"], encoding="utf-8") as f:
        f.write(metrics_markdown(result, title=title))
    pooled = result[POOLED]
    groups = None
    if risk_group is not None and set(map(str, risk_group)) == {"high", "low"}:
        groups = np.asarray([str(g) == "high" for g in risk_group])
    if pooled["log_rank_p"] is not None:
        try:
            plot_kaplan_meier(event=event, time=time, risk=risk, path=out_dir / "kaplan_meier.png",
                              title=f"{title}: Kaplan-Meier by risk group", high_risk=groups)
            files["kaplan_meier"] = out_dir / "kaplan_meier.png"
        except InputError:
            pass
    if pooled.get("calibration") and pooled["calibration"]["slope"] is not None:
        plot_calibration(pooled["calibration"], out_dir / "calibration.png",
                         title=f"{title}: calibration at 2 years")
        files["calibration"] = out_dir / "calibration.png"
    rows = [(name, block) for name, block in result["per_centre"].items()]
    rows.append((POOLED, pooled))
    if any(b["harrell_c"] is not None for _, b in rows):  # the others named, not dropped
        plot_forest([(f"{n} (n={b['n']}, {counted(b['n_events'], 'event')})", b["harrell_c"],
                      b["harrell_c_ci95"]) for n, b in rows],
                    out_dir / "forest_c_index.png", title=f"{title}: Harrell's C by centre")
        files["forest"] = out_dir / "forest_c_index.png"
    return files


def _cell(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def metrics_markdown(result: Mapping[str, Any], *, title: str = "Evaluation") -> str:
    """``metrics.md``: one row per centre and the pooled patients, then the calibration.

    Args:
        result: dict. From :func:`evaluate_survival`.
        title: str. The heading.

    Returns:
        str. Markdown.
    """
    times = [f"{t:g}" for t in result["times_days"]]
    header = ["", "n", "events", "Harrell's C (95% CI)", "Uno's C",
              *[f"AUC {t} d" for t in times], "IBS", "2-y calibration slope", "log-rank p"]
    lines = [f"# {title}", "",
             "Higher C-index and AUC are better (0.5 = chance); a lower integrated Brier score "
             "(IBS) is better; a calibration slope near 1 is calibrated. The confidence "
             f"interval is a percentile bootstrap of {result['n_bootstrap']} resamples.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    blocks = [*result["per_centre"].items(), (POOLED, result[POOLED])]
    for name, b in blocks:
        ci = b["harrell_c_ci95"]
        c = _cell(b["harrell_c"]) + ("" if ci is None else f" ({ci[0]:.3f}-{ci[1]:.3f})")
        calibration = b.get("calibration") or {}
        p = b["log_rank_p"]
        cells = [f"**{name}**" if name == POOLED else name, str(b["n"]), str(b["n_events"]), c,
                 _cell(b["uno_c"]), *[_cell(b["time_auc"].get(t)) for t in times],
                 _cell(b["integrated_brier_score"]), _cell(calibration.get("slope"), 2),
                 "–" if p is None else f"{p:.3g}"]
        lines.append("| " + " | ".join(cells) + " |")
    calibration = result[POOLED].get("calibration")
    if calibration:
        lines += ["", f"## Calibration at {calibration['days']:g} days (pooled, risk quintiles)",
                  "", "| quintile (low to high risk) | n | events | predicted | observed (KM) |",
                  "|---|---|---|---|---|"]
        for i, g in enumerate(calibration["groups"], start=1):
            lines.append(f"| {i} | {g['n']} | {g['n_events']} | {g['predicted']:.3f} | "
                         f"{_cell(g['observed'])} |")
    notes = result[POOLED]["notes"]
    if notes:
        lines += ["", "Notes: " + "; ".join(notes) + "."]
    return "\n".join(lines) + "\n"


def predictions_table_metrics(
    predictions: pd.DataFrame,
    endpoints: pd.DataFrame,
    *,
    centres: Sequence[str | None] | None = None,
    times: Sequence[float] | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """:func:`evaluate_survival` on a ``predictions.csv`` table and an endpoint table.

    Args:
        predictions: DataFrame with ``patient_id`` and ``risk`` (higher is worse), and
            optionally ``risk_group`` and ``survival_<days>d`` columns.
        endpoints: DataFrame indexed by patient id with ``event`` and ``time`` (days), as
            :func:`hnprog.data.cohort.read_endpoints` returns.
        centres: sequence of str, optional. The centre of each row of ``predictions``.
        times: sequence of float, optional. Days of the AUC; defaults to the table's
            ``survival_<days>d`` columns, else 1, 2, 3 and 5 years.
        n_bootstrap: int. Bootstrap resamples. Defaults to 1000.
        seed: int. Bootstrap seed. Defaults to 0.

    Returns:
        tuple of the evaluation dict and the table of evaluated rows (predictions joined with
        ``event`` and ``time``).

    Raises:
        InputError: naming the patients, if a predicted patient has no endpoint, or on
            missing risks.
    """
    missing = [p for p in predictions["patient_id"].astype(str) if p not in endpoints.index]
    if missing:
        raise InputError(f"{len(missing)} predicted patients have no endpoint, first "
                         f"{missing[:3]}; give the endpoint file of the same patients")
    table = predictions.drop(columns=[c for c in ("event", "time") if c in predictions])
    table = table.assign(patient_id=table["patient_id"].astype(str))
    table = table.join(endpoints[["event", "time"]], on="patient_id")  # the given endpoints
    columns = {float(m.group(1)): c for c in table.columns
               if (m := re.fullmatch(r"survival_([0-9]+(?:\.[0-9]*)?)d", str(c)))}
    if times is None:
        times = sorted(columns) or (365.0, 730.0, 1095.0, 1825.0)
    times = sorted({float(t) for t in times})
    survival = None
    if columns and all(t in columns for t in times):
        survival = table[[columns[t] for t in times]].to_numpy(dtype=float)
    result = evaluate_survival(
        event=table["event"].to_numpy(bool), time=table["time"].to_numpy(float),
        risk=table["risk"].to_numpy(float), times=times, survival=survival,
        risk_group=table["risk_group"].tolist() if "risk_group" in table else None,
        centres=centres, n_bootstrap=n_bootstrap, seed=seed)
    return result, table


# ---------------------------------------------------------------------------------------------
# The HECKTOR challenge's file and C-index convention
# ---------------------------------------------------------------------------------------------

HECKTOR_COLUMNS = ("PatientID", "Prediction")


def hecktor_concordance(
    *,
    event: Sequence[bool] | np.ndarray,
    time: Sequence[float] | np.ndarray,
    prediction: Sequence[float] | np.ndarray,
) -> float:
    """The C-index as the HECKTOR 2021 challenge computed it on a ``PatientID,Prediction`` file.

    The challenge's evaluator joins the submission to the ground truth and calls lifelines'
    ``concordance_index(time, -Prediction, event)`` (a submitted ``Prediction`` is a risk,
    anti-concordant with the time), in which a patient missing from the submission (NaN)
    makes every comparable pair it belongs to non-concordant. With no patient missing this is
    Harrell's C (:func:`hnprog.metrics.concordance_index`).

    Args:
        event: array-like ``(n,)``. Observed progression of every ground-truth patient.
        time: array-like ``(n,)``. Progression-free survival, days.
        prediction: array-like ``(n,)``. The submitted risk, higher is worse; NaN for a
            patient missing from the submission.

    Returns:
        float. The challenge's C-index.

    Raises:
        InputError: on invalid outcomes, or no comparable pair.
    """
    event_arr, time_arr = check_event_time(event=event, time=time)
    risk = np.asarray(prediction, dtype=np.float64)
    if risk.shape != time_arr.shape:
        raise InputError(f"prediction must have one value per patient. Received: "
                         f"{risk.shape} for {time_arr.shape}")
    # pair (i, j) comparable: i had the event and j was still event-free after T_i
    # (or censored at T_i), lifelines' and Harrell's definition
    earlier = event_arr[:, None] & ((time_arr[:, None] < time_arr[None, :])
                                    | ((time_arr[:, None] == time_arr[None, :])
                                       & ~event_arr[None, :]))
    np.fill_diagonal(earlier, False)
    comparable = int(earlier.sum())
    if comparable == 0:
        raise InputError("no comparable pair: no patient had a progression before another's "
                         "follow-up ended")
    known = np.isfinite(risk)
    both = earlier & known[:, None] & known[None, :]
    with np.errstate(invalid="ignore"):
        higher = risk[:, None] > risk[None, :]
        tied = risk[:, None] == risk[None, :]
    score = float((both & higher).sum() + 0.5 * (both & tied).sum())
    return score / comparable


def read_predictions(path: str | os.PathLike, *, model: str | None = None) -> pd.DataFrame:
    """A predictions file as ``patient_id, risk[, risk_group, survival_<days>d...]``.

    Accepted: ``hnprog predict``'s ``predictions.csv``, a cross-validation's
    ``predictions.csv`` (``model`` column; choose one with ``model``) and the HECKTOR
    challenge's ``PatientID,Prediction`` file (the prediction is a risk, higher is worse).

    Args:
        path: str or PathLike. The CSV file.
        model: str, optional. The model of a cross-validation table. Defaults to the only one.

    Returns:
        DataFrame with ``patient_id`` (str) and ``risk`` (float), the other columns kept,
        and ``attrs["format"]`` ``"hecktor"`` or ``"hnprog"``.

    Raises:
        InputError: naming the file, when it is not CSV, has no id or risk column, lists a
            patient twice, holds a non-numeric risk (naming the line), or several models
            without ``model``.
    """
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype={"patient_id": str, "PatientID": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"predictions file {path}: cannot be read as CSV: {exc}") from None
    form = "hnprog"
    if set(HECKTOR_COLUMNS) <= set(table.columns):
        table = table.rename(columns={"PatientID": "patient_id", "Prediction": "risk"})
        form = "hecktor"
    if not {"patient_id", "risk"} <= set(table.columns):
        raise InputError(f"predictions file {path}: needs columns patient_id,risk (hnprog) or "
                         f"PatientID,Prediction (HECKTOR). Received columns: "
                         f"{list(table.columns)}")
    if "model" in table.columns:
        models = list(dict.fromkeys(table["model"].astype(str)))
        if model is None and len(models) > 1:
            raise InputError(f"predictions file {path} holds {len(models)} models "
                             f"({', '.join(models)}); choose one (hnprog evaluate --cv-model)")
        chosen = model if model is not None else models[0]
        if chosen not in models:
            raise InputError(f"predictions file {path} has no model {chosen!r} (models: "
                             f"{', '.join(models)})")
        table = table[table["model"].astype(str) == chosen]
    table = table.assign(patient_id=table["patient_id"].astype(str).str.strip())
    repeated = table["patient_id"][table["patient_id"].duplicated()]
    if len(repeated):
        raise InputError(f"predictions file {path}: patient {repeated.iloc[0]} is listed twice")
    risk = pd.to_numeric(table["risk"], errors="coerce")
    bad = np.flatnonzero(~np.isfinite(risk.to_numpy(float)))
    if len(bad):
        line = int(table.index[bad[0]]) + 2
        raise InputError(f"predictions file {path}, line {line} (patient "
                         f"{table['patient_id'].iloc[bad[0]]}): the risk is missing or not a "
                         f"number. Received: {table['risk'].iloc[bad[0]]!r}")
    table = table.assign(risk=risk.astype(float)).reset_index(drop=True)
    table.attrs["format"] = form
    return table


def evaluate_run(
    table: pd.DataFrame,
    out_dir: str | os.PathLike,
    *,
    centres: Sequence[str | None] | None = None,
    title: str = "Evaluation",
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, Any] | None:
    """The evaluation block of a run with endpoints (``predict``, ``cv``, ``radiomics cv``).

    Args:
        table: DataFrame. One row per patient: ``patient_id``, ``risk``, ``event``, ``time``
            and optionally ``risk_group`` and ``survival_<days>d`` columns.
        out_dir: str or PathLike. Folder of ``metrics.json``, ``metrics.md`` and the plots.
        centres: sequence of str, optional. Each row's centre. Defaults to None.
        title: str. Heading of the report.
        n_bootstrap: int. Bootstrap resamples. Defaults to 1000.
        seed: int. Bootstrap seed. Defaults to 0.

    Returns:
        dict or None. The evaluation; None (nothing written) when no row has a finite risk
        or no patient had an event.
    """
    table = table[np.isfinite(pd.to_numeric(table["risk"], errors="coerce"))]
    if not len(table) or not table["event"].astype(bool).any():
        return None
    endpoints = table.set_index(table["patient_id"].astype(str))[["event", "time"]]
    endpoints = endpoints.assign(event=endpoints["event"].astype(bool))
    keep = [c for c in table.columns if c not in ("event", "time")]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            result, joined = predictions_table_metrics(table[keep], endpoints, centres=centres,
                                                       n_bootstrap=n_bootstrap, seed=seed)
            write_evaluation(result, out_dir, event=joined["event"], time=joined["time"],
                             risk=joined["risk"],
                             risk_group=joined["risk_group"] if "risk_group" in joined else None,
                             title=title)
    except (InputError, ValueError, np.linalg.LinAlgError) as exc:  # the run's own files stand
        warnings.warn(f"{title}: no evaluation written ({exc})", RuntimeWarning, stacklevel=2)
        return None
    return result
