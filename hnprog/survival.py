"""Survival outcomes: one checked representation shared by every estimator and metric.

Conventions (see the Concepts page of the docs):

- ``event``: bool, True when the event (progression, relapse, death) was observed, False when
  the patient is censored.
- ``time``: float, days from diagnosis (or treatment) to the event or to the last follow-up.
- ``risk``: float, a log-hazard; **higher means worse** (an earlier event).

Every function that takes both ``event`` and ``time`` takes them in that order and as keywords,
as scikit-survival does (``Surv.from_arrays(event=..., time=...)``), and checks them with
:func:`check_event_time`, the one validator. scikit-survival's structured arrays (fields
``event`` and ``time``) are the format of ``y`` in estimators; Keras losses take ``y_true`` of
shape ``(N, 2)`` holding ``(time, event)``.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from hnprog.errors import InputError

__all__ = [
    "DEFAULT_SURVIVAL_DAYS",
    "breslow_baseline",
    "check_baseline",
    "check_event_time",
    "check_risk",
    "check_survival_y",
    "make_survival_y",
    "survival_column",
    "survival_probability",
    "survival_y_to_keras",
]

SURVIVAL_DTYPE = np.dtype([("event", "?"), ("time", "<f8")])

_F = TypeVar("_F", bound=Callable[..., Any])


def deprecated_positional(*old_order: str) -> Callable[[_F], _F]:
    """Let a keyword-only function accept its former positional arguments for one release.

    The survival functions used to take ``(time, event, ...)`` or ``(event, time)``
    positionally; they are now keyword-only. A positional call is mapped onto the keywords in
    the function's *former* order, with a ``DeprecationWarning`` that shows the keyword form.

    Args:
        *old_order: str. The names of the former positional parameters, in their former order.

    Returns:
        A decorator. The decorated function keeps its own (keyword-only) signature.
    """

    def decorate(function: _F) -> _F:
        name = function.__name__
        keywords = [
            p.name for p in inspect.signature(function).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name in old_order
        ]
        new_form = f"{name}({', '.join(f'{k}=...' for k in keywords)})"

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if args:
                if len(args) > len(old_order):
                    raise TypeError(
                        f"{name}() takes keyword arguments only; call {new_form}. "
                        f"Received: {len(args)} positional arguments"
                    )
                names = old_order[: len(args)]
                repeated = [n for n in names if n in kwargs]
                if repeated:
                    raise TypeError(f"{name}() got multiple values for argument {repeated[0]!r}")
                warnings.warn(
                    f"{name}({', '.join(names)}) with positional arguments is deprecated and "
                    f"will stop working in the next release; call {new_form} (the order of "
                    "survival arguments is now (event, time), keyword-only).",
                    DeprecationWarning,
                    stacklevel=2,
                )
                kwargs.update(zip(names, args))
            return function(**kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def check_event_time(
    *,
    event: Sequence[bool] | np.ndarray,
    time: Sequence[float] | np.ndarray,
    ids: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Check survival outcomes and return them as arrays: the one survival validator.

    :func:`make_survival_y`, :func:`check_survival_y`, :func:`hnprog.concordance_index` and
    the reports all check their inputs here, so the same bad value gives the same message.

    Args:
        event: array-like ``(n_samples,)``, bool or 0/1. Whether each sample's event was
            observed (else it is censored).
        time: array-like ``(n_samples,)`` of numbers. Days to the event or to censoring;
            must be finite and not negative.
        ids: sequence of str, optional. Patient identifiers, named in error messages.
            Defaults to None (rows are named by index: ``row 3``).

    Returns:
        tuple ``(event, time)``: bool array and float64 array (days), both ``(n_samples,)``.

    Raises:
        InputError: naming the row or patient, on arrays that are not 1D or differ in length,
            non-numeric, missing, infinite or negative times, or events other than 0/1.

    Example:
        >>> event, time = check_event_time(event=[1, 0], time=[120, 900])
        >>> event.tolist(), time.tolist()
        ([True, False], [120.0, 900.0])
    """
    event_arr = np.asarray(event)
    time_arr = np.asarray(time)
    if event_arr.ndim != 1 or time_arr.ndim != 1:
        raise InputError(
            "event and time must be 1D, of shape (n_samples,). Received: "
            f"event.shape={event_arr.shape}, time.shape={time_arr.shape}"
        )
    if len(event_arr) != len(time_arr):
        raise InputError(
            f"event and time must have the same length. Received: len(event)={len(event_arr)}, "
            f"len(time)={len(time_arr)}"
        )
    if ids is not None and len(ids) != len(time_arr):
        raise InputError(
            f"ids must name every sample. Received: len(ids)={len(ids)}, len(time)={len(time_arr)}"
        )

    def who(i: int) -> str:
        return f"row {i}" if ids is None else f"patient {ids[i]}"

    time_arr, not_finite = _as_float(time_arr, "time")
    if not_finite.size:
        i = not_finite[0]
        raise InputError(f"{who(i)}: time is missing or not finite. Received: time={time_arr[i]}")
    bad = np.flatnonzero(time_arr < 0)
    if bad.size:
        raise InputError(f"{who(bad[0])}: time is negative. Received: time={time_arr[bad[0]]}")
    if event_arr.dtype != bool:
        try:
            event_float = event_arr.astype(np.float64)
        except (TypeError, ValueError):
            event_float = np.full(len(event_arr), np.nan)
        bad = np.flatnonzero((event_float != 0) & (event_float != 1))
        if bad.size:
            raise InputError(
                f"{who(bad[0])}: event must be 0 or 1 (or bool). "
                f"Received: event={event_arr[bad[0]]!r}"
            )
        event_arr = event_float.astype(bool)
    return event_arr, time_arr


def check_risk(risk: Sequence[float] | np.ndarray, *, n_samples: int) -> np.ndarray:
    """Check predicted risks against the number of samples of checked survival outcomes.

    Args:
        risk: array-like of shape ``(n_samples,)``. Predicted risk (a log-hazard), higher
            means an earlier event.
        n_samples: int. The number of samples of the matching ``event`` and ``time``.

    Returns:
        numpy.ndarray of shape ``(n_samples,)``, float64.

    Raises:
        InputError: if ``risk`` is not 1D, has another length, is not numeric, or holds NaN
            or infinite values.
    """
    risk_arr = np.asarray(risk)
    if risk_arr.ndim != 1:
        raise InputError(f"risk must be 1D. Received: risk.shape={risk_arr.shape}")
    if len(risk_arr) != n_samples:
        raise InputError(
            f"risk must have one value per patient. Received: len(risk)={len(risk_arr)}, "
            f"len(time)={n_samples}"
        )
    risk_arr, not_finite = _as_float(risk_arr, "risk")
    if not_finite.size:
        i = not_finite[0]
        raise InputError(
            f"risk holds NaN or infinite values ({not_finite.size}, first at index {i}). "
            f"Received: risk[{i}]={risk_arr[i]}"
        )
    return risk_arr


def _as_float(values: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``values`` as float64, and the indices of its NaN or infinite entries."""
    try:
        values = values.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what} must be numeric. Received: {exc}") from None
    return values, np.flatnonzero(~np.isfinite(values))


@deprecated_positional("event", "time")
def make_survival_y(
    *,
    event: Sequence[bool] | np.ndarray,
    time: Sequence[float] | np.ndarray,
    ids: Sequence[str] | None = None,
) -> np.ndarray:
    """Build a structured survival array after checking its values.

    Args:
        event: array-like of shape ``(n_samples,)``. 1/True for an observed event, 0/False for
            censoring.
        time: array-like of shape ``(n_samples,)``. Time to event or censoring, in days;
            finite and not negative.
        ids: sequence of str, optional. Patient identifiers, used in error messages.
            Defaults to None (rows are named by index).

    Returns:
        numpy structured array of shape ``(n_samples,)`` with fields ``event`` (bool) and
        ``time`` (float64), as scikit-survival's ``Surv.from_arrays`` builds.

    Raises:
        InputError: on mismatched lengths, missing or negative times, or events not in {0, 1}
            (see :func:`check_event_time`).

    Note:
        ``event`` and ``time`` are keyword-only, in scikit-survival's order. The positional
        form ``make_survival_y(event, time)`` still works for one release, with a
        ``DeprecationWarning``.

    Example:
        >>> y = make_survival_y(event=[1, 0], time=[120.0, 900.0])
        >>> y["event"].tolist(), y["time"].tolist()
        ([True, False], [120.0, 900.0])
    """
    event_arr, time_arr = check_event_time(event=event, time=time, ids=ids)
    y = np.empty(len(time_arr), dtype=SURVIVAL_DTYPE)
    y["event"] = event_arr
    y["time"] = time_arr
    return y


def check_survival_y(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check a structured survival array and split it into ``(event, time)``.

    Accepts any structured array with one boolean field and one float field (event first),
    as scikit-survival does, so ``sksurv.util.Surv.from_arrays`` outputs work.

    Args:
        y: structured array of shape ``(n_samples,)``.

    Returns:
        tuple of ``event`` (bool array) and ``time`` (float64 array, days).

    Raises:
        InputError: if ``y`` is not such an array, or holds invalid values
            (see :func:`check_event_time`).
    """
    y = np.asarray(y)
    if y.dtype.names is None or len(y.dtype.names) != 2:
        raise InputError(
            "y must be a structured array with fields (event, time), as made by "
            f"hnprog.make_survival_y or sksurv.util.Surv. Received: dtype={y.dtype}"
        )
    event_field, time_field = y.dtype.names
    return check_event_time(event=y[event_field], time=y[time_field])


def survival_y_to_keras(y: np.ndarray) -> np.ndarray:
    """Convert a structured survival array to the ``(N, 2)`` float32 ``(time, event)`` layout
    that :class:`hnprog.CoxLoss` takes as ``y_true``.

    Args:
        y: structured array of shape ``(n_samples,)``.

    Returns:
        numpy.ndarray of shape ``(n_samples, 2)``, float32: column 0 is time (days), column 1
        is event (0 or 1).
    """
    event, time = check_survival_y(y)
    return np.stack([time, event.astype(float)], axis=1).astype("float32")


# ---------------------------------------------------------------------------------------------
# The Breslow baseline and per-patient survival probabilities
# ---------------------------------------------------------------------------------------------

#: Days at which hnprog reports survival probabilities by default: 1, 2, 3 and 5 years.
DEFAULT_SURVIVAL_DAYS = (365.0, 730.0, 1095.0, 1825.0)


def survival_column(days: float) -> str:
    """The column name of the survival probability at ``days``: ``survival_730d``."""
    return f"survival_{float(days):g}d"



def breslow_baseline(
    *,
    event: Sequence[bool] | np.ndarray,
    time: Sequence[float] | np.ndarray,
    risk: Sequence[float] | np.ndarray,
) -> dict[str, Any]:
    """Breslow's estimate of the baseline cumulative hazard of a Cox model.

    With log-hazards ``risk`` fitted on these patients, the cumulative hazard at the distinct
    event times ``t_k`` is ``H0(t_k) = sum_{t_j <= t_k} d_j / sum_{i: T_i >= t_j} exp(r_i)``,
    where ``d_j`` counts the events at ``t_j`` (Breslow, 1972). It is what
    ``sksurv.linear_model.coxph.BreslowEstimator`` computes (``cum_baseline_hazard_`` at
    ``unique_times_``). A Cox log-hazard is only defined up to an additive constant, so the
    risks are centred on their mean (``reference_risk``) before the estimate: the hazard is
    stored for a patient of mean risk, which keeps ``exp`` finite for any network output.
    :func:`survival_probability` undoes the centring.

    Args:
        event: array-like ``(n_samples,)``, bool or 0/1. Observed event (else censored).
        time: array-like ``(n_samples,)``. Days to event or censoring.
        risk: array-like ``(n_samples,)``. Cox log-hazards of the same patients, higher is
            worse.

    Returns:
        dict (JSON-ready), as stored in a preset's ``hnprog.json``:
        ``time_days`` (list of float, the distinct times of the sample, ascending: event
        times and censoring times, so the curve is known up to the longest follow-up),
        ``cumulative_hazard`` (list of float, ``H0`` at each of those times for a patient of
        risk ``reference_risk``), ``reference_risk`` (float), ``max_time_days`` (float, the
        longest follow-up: beyond it the curve is unknown), ``n_patients`` and ``n_events``
        (int), and ``estimator`` (``"breslow"``).

    Raises:
        InputError: on invalid outcomes or risks (:func:`check_event_time`,
            :func:`check_risk`), or when no event was observed.

    Example:
        >>> b = breslow_baseline(event=[1, 1, 0], time=[1.0, 2.0, 3.0], risk=[0.0, 0.0, 0.0])
        >>> [round(h, 4) for h in b["cumulative_hazard"]]
        [0.3333, 0.8333, 0.8333]
    """
    event_arr, time_arr = check_event_time(event=event, time=time)
    risk_arr = check_risk(risk, n_samples=len(time_arr))
    if not event_arr.any():
        raise InputError("breslow_baseline needs at least one observed event; all "
                         f"{len(time_arr)} patients are censored")
    reference = float(risk_arr.mean())
    weight = np.exp(risk_arr - reference)
    times, inverse = np.unique(time_arr, return_inverse=True)
    events_at = np.bincount(inverse, weights=event_arr.astype(float), minlength=len(times))
    weight_at = np.bincount(inverse, weights=weight, minlength=len(times))
    at_risk = np.cumsum(weight_at[::-1])[::-1]  # sum of exp(r) over T_i >= t
    cumulative = np.cumsum(events_at / at_risk)
    return {
        "estimator": "breslow",
        "time_days": times.tolist(),
        "cumulative_hazard": cumulative.tolist(),
        "reference_risk": reference,
        "max_time_days": float(times[-1]),
        "n_patients": int(len(time_arr)),
        "n_events": int(event_arr.sum()),
    }


def check_baseline(baseline: Any, where: str = "baseline") -> tuple[np.ndarray, np.ndarray, float,
                                                                   float]:
    """Check a stored Breslow baseline (:func:`breslow_baseline`) and return its arrays.

    Args:
        baseline: dict. As :func:`breslow_baseline` returns it.
        where: str. Named in error messages (e.g. the preset). Defaults to ``"baseline"``.

    Returns:
        tuple ``(time_days, cumulative_hazard, reference_risk, max_time_days)``: two float64
        arrays ``(n_times,)`` and two floats.

    Raises:
        InputError: if a field is missing, the times are not ascending and non-negative, or
            the cumulative hazard is not finite, non-negative and non-decreasing.
    """
    try:
        times = np.asarray(baseline["time_days"], dtype=np.float64)
        hazard = np.asarray(baseline["cumulative_hazard"], dtype=np.float64)
        reference = float(baseline["reference_risk"])
        max_time = float(baseline.get("max_time_days", times[-1] if len(times) else np.nan))
    except (TypeError, KeyError, ValueError, IndexError) as exc:
        raise InputError(f"{where}: not a Breslow baseline (time_days, cumulative_hazard, "
                         f"reference_risk). Received: {exc!r}") from None
    ok = (times.ndim == 1 and times.shape == hazard.shape and len(times) > 0
          and np.isfinite(times).all() and np.isfinite(hazard).all() and (times >= 0).all()
          and (np.diff(times) > 0).all() and (hazard >= 0).all()
          and (np.diff(hazard) >= 0).all() and np.isfinite(reference)
          and np.isfinite(max_time))
    if not ok:
        raise InputError(f"{where}: the baseline's times must be ascending days and its "
                         "cumulative hazard finite, non-negative and non-decreasing, of the "
                         "same length")
    return times, hazard, reference, max_time


def survival_probability(
    baseline: Any,
    risk: Sequence[float] | np.ndarray | float,
    times: Sequence[float] | np.ndarray,
) -> np.ndarray:
    """Survival probabilities ``S(t | r) = exp(-H0(t) exp(r - r_ref))`` from a Breslow baseline.

    ``H0`` is the step function of :func:`breslow_baseline` (0 before the first event time).
    A time beyond the longest follow-up of the patients the baseline was estimated on is not
    extrapolated: its probability is NaN, with a ``RuntimeWarning``.

    Args:
        baseline: dict. From :func:`breslow_baseline` (e.g. a preset's
            ``outputs.risk.baseline``).
        risk: float or array-like ``(n_patients,)``. Cox log-hazards on the scale of the
            model the baseline belongs to (higher is worse).
        times: array-like ``(n_times,)``. Days after diagnosis; finite and not negative.

    Returns:
        numpy.ndarray ``(n_patients, n_times)`` float64 in [0, 1] (NaN beyond the baseline's
        follow-up), non-increasing along the times; ``(n_times,)`` for a scalar ``risk``.

    Raises:
        InputError: on an invalid baseline (:func:`check_baseline`), a non-finite risk, or
            negative or non-finite times.

    Example:
        >>> b = breslow_baseline(event=[1, 1, 0], time=[1.0, 2.0, 3.0], risk=[0.0, 0.0, 0.0])
        >>> survival_probability(b, 0.0, [0.5, 1.0, 3.0]).round(4).tolist()
        [1.0, 0.7165, 0.4346]
    """
    base_times, hazard, reference, max_time = check_baseline(baseline)
    scalar = np.ndim(risk) == 0
    risk_arr = np.atleast_1d(np.asarray(risk, dtype=np.float64))
    if risk_arr.ndim != 1 or not np.isfinite(risk_arr).all():
        raise InputError(f"risk must be finite log-hazards of shape (n_patients,). "
                         f"Received: risk={risk!r}")
    times_arr = np.atleast_1d(np.asarray(times, dtype=np.float64))
    if times_arr.ndim != 1 or not np.isfinite(times_arr).all() or (times_arr < 0).any():
        raise InputError(f"times must be finite, non-negative days. Received: times={times!r}")
    index = np.searchsorted(base_times, times_arr, side="right") - 1
    at = np.where(index >= 0, hazard[np.clip(index, 0, None)], 0.0)
    with np.errstate(over="ignore"):
        probability = np.exp(-np.outer(np.exp(risk_arr - reference), at))
    beyond = times_arr > max_time
    if beyond.any():
        warnings.warn(
            f"survival probability requested at {times_arr[beyond].tolist()} days, beyond the "
            f"longest follow-up of the baseline's patients ({max_time:g} days): NaN, not an "
            "extrapolation.",
            RuntimeWarning,
            stacklevel=2,
        )
        probability[:, beyond] = np.nan
    return probability[0] if scalar else probability
