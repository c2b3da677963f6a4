"""Survival probabilities of predicted patients, from the Breslow baselines of the presets.

Every preset written by ``hnprog train``, ``cv`` or ``finetune`` records the Breslow baseline
cumulative hazard of its training patients (``outputs.risk.baseline`` in ``hnprog.json``,
times in days). A patient's survival probability at ``t`` days is
``S(t) = exp(-H0(t) exp(risk - reference_risk))`` (:func:`hnprog.survival.survival_probability`).
A fold ensemble averages the survival curves of its members, each with its own risk and its
own baseline (the members' log-hazards are on different scales, their curves are not), and
reports the spread across the folds (standard deviation, minimum, maximum).

A preset without a baseline (written before baselines were recorded) still predicts risks;
:func:`survival_note` says so once per run, and ``report.json`` says why there is no curve.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from hnprog.errors import InputError
from hnprog.presets.format import risk_baseline
from hnprog.survival import DEFAULT_SURVIVAL_DAYS, survival_column

__all__ = [
    "CURVE_POINTS",
    "DEFAULT_TIMES",
    "SurvivalPrediction",
    "baselines",
    "check_times",
    "predict_survival",
    "survival_column",
    "survival_note",
]

#: Days at which ``hnprog predict`` reports survival: 1, 2, 3 and 5 years.
DEFAULT_TIMES = DEFAULT_SURVIVAL_DAYS
#: Points of the curve recorded in ``report.json``, from day 0 to the shortest follow-up.
CURVE_POINTS = 61


def check_times(times: Sequence[float] | None) -> tuple[float, ...]:
    """The requested times in days, ascending and distinct; the default 1, 2, 3, 5 years.

    Raises:
        InputError: if a time is not a finite, positive number of days.
    """
    if times is None:
        return DEFAULT_TIMES
    checked = []
    for value in times:
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if not np.isfinite(number) or number <= 0:
            raise InputError(f"survival times must be positive numbers of days. "
                             f"Received: times={list(times)!r}")
        checked.append(number)
    return tuple(sorted(set(checked)))


def _members(predictor: Any) -> list[Any]:
    return list(getattr(predictor, "members", None) or [predictor])


def baselines(predictor: Any) -> list[dict[str, Any]] | None:
    """The Breslow baseline of each member of a predictor, or None if one records none.

    Raises:
        InputError: if a recorded baseline is invalid.
    """
    found = [risk_baseline(getattr(m, "metadata", None), getattr(m, "name", "preset"))
             for m in _members(predictor)]
    return None if any(b is None for b in found) else found


def survival_note(predictor: Any) -> str | None:
    """Why a predictor gives no survival probabilities (None when it gives them).

    Also warns (``UserWarning``) with the same sentence, so that a run says it once.
    """
    members = _members(predictor)
    missing = [getattr(m, "name", "model") for m in members
               if risk_baseline(getattr(m, "metadata", None)) is None]
    if not missing:
        return None
    note = (f"{', '.join(missing)} record{'s' if len(missing) == 1 else ''} no survival baseline "
            "(written before hnprog recorded one): predicting risks only, no survival "
            "probabilities; retrain or rerun cv to get them")
    warnings.warn(note, UserWarning, stacklevel=2)
    return note


@dataclasses.dataclass(frozen=True)
class SurvivalPrediction:
    """One patient's predicted survival.

    Args:
        times_days: tuple of float. The requested times (days).
        probability: numpy.ndarray ``(n_times,)``. Survival probability at each time (mean
            over the folds of an ensemble); NaN beyond the baselines' follow-up.
        fold_sd, fold_min, fold_max: numpy.ndarray ``(n_times,)`` or None. Spread over the
            folds of an ensemble (None for one model).
        curve_days, curve: numpy.ndarray ``(CURVE_POINTS,)``. The curve from day 0 to the
            shortest follow-up of the baselines, for ``report.json`` and the overlay.
        curve_min, curve_max: numpy.ndarray or None. The folds' band around ``curve``.
    """

    times_days: tuple[float, ...]
    probability: np.ndarray
    fold_sd: np.ndarray | None
    fold_min: np.ndarray | None
    fold_max: np.ndarray | None
    curve_days: np.ndarray
    curve: np.ndarray
    curve_min: np.ndarray | None
    curve_max: np.ndarray | None

    def columns(self) -> dict[str, float]:
        """``survival_<days>d`` (and ``survival_<days>d_sd`` for an ensemble) values."""
        values: dict[str, float] = {}
        for i, days in enumerate(self.times_days):
            values[survival_column(days)] = float(self.probability[i])
            if self.fold_sd is not None:
                values[survival_column(days) + "_sd"] = float(self.fold_sd[i])
        return values

    def to_dict(self) -> dict[str, Any]:
        """The ``survival`` entry of ``report.json`` (NaN written as null)."""
        def listed(values: np.ndarray | None) -> list[float | None] | None:
            if values is None:
                return None
            return [None if not np.isfinite(v) else round(float(v), 6) for v in values]

        return {
            "meaning": "probability of no event (progression) by each time, from the Breslow "
                       "baseline of the training patients; null beyond their follow-up",
            "times_days": list(self.times_days),
            "probability": listed(self.probability),
            "fold_sd": listed(self.fold_sd), "fold_min": listed(self.fold_min),
            "fold_max": listed(self.fold_max),
            "curve": {"time_days": listed(self.curve_days), "probability": listed(self.curve),
                      "fold_min": listed(self.curve_min), "fold_max": listed(self.curve_max)},
        }


def predict_survival(
    predictor: Any,
    member_risks: Sequence[float] | np.ndarray,
    times: Sequence[float] | None = None,
) -> SurvivalPrediction | None:
    """One patient's survival probabilities from each member's risk and baseline.

    Args:
        predictor: Preset or FoldEnsemble. Its members' ``hnprog.json`` hold the baselines.
        member_risks: array-like ``(n_members,)``. The patient's log-hazard from each member
            (for a single preset, one value).
        times: sequence of float, optional. Days. Defaults to :data:`DEFAULT_TIMES`.

    Returns:
        SurvivalPrediction, or None when a member records no baseline.

    Raises:
        InputError: if the number of risks differs from the number of members, or a baseline
            is invalid.
    """
    from hnprog.survival import survival_probability

    found = baselines(predictor)
    if found is None:
        return None
    times = check_times(times)
    risks = np.asarray(member_risks, dtype=np.float64).reshape(-1)
    if len(risks) != len(found):
        raise InputError(f"one risk per model is needed. Received: {len(risks)} risks for "
                         f"{len(found)} models")
    shortest = min(b["max_time_days"] for b in found)
    curve_days = np.linspace(0.0, shortest, CURVE_POINTS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # warned once below
        at_times = np.stack([survival_probability(b, r, times) for b, r in zip(found, risks)])
        curves = np.stack([survival_probability(b, r, curve_days) for b, r in zip(found, risks)])
    beyond = [t for t in times if t > shortest]
    if beyond:
        warnings.warn(
            f"survival at {beyond} days is beyond the longest follow-up of the training "
            f"patients ({shortest:g} days): NaN, not an extrapolation.", RuntimeWarning,
            stacklevel=2)
    many = len(found) > 1
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        spread = (at_times.std(axis=0), at_times.min(axis=0), at_times.max(axis=0)) if many \
            else (None, None, None)
        band = (curves.min(axis=0), curves.max(axis=0)) if many else (None, None)
    return SurvivalPrediction(times, at_times.mean(axis=0), *spread, curve_days,
                              curves.mean(axis=0), *band)
