"""Survival outcomes: one checked representation shared by every estimator and metric.

Conventions (see the Concepts page of the docs):

- ``event``: bool, True when the event (progression, relapse, death) was observed, False when
  the patient is censored.
- ``time``: float, days from diagnosis (or treatment) to the event or to the last follow-up.
- ``risk``: float, a log-hazard; **higher means worse** (an earlier event).

scikit-survival's structured arrays (fields ``event`` and ``time``) are the format of ``y`` in
estimators; Keras losses take ``y_true`` of shape ``(N, 2)`` holding ``(time, event)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hnprog.errors import InputError

__all__ = ["check_survival_y", "make_survival_y", "survival_y_to_keras"]

SURVIVAL_DTYPE = np.dtype([("event", "?"), ("time", "<f8")])


def make_survival_y(
    event: Sequence[bool] | np.ndarray,
    time: Sequence[float] | np.ndarray,
    *,
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
        InputError: on mismatched lengths, missing or negative times, or events not in {0, 1}.

    Example:
        >>> y = make_survival_y([1, 0], [120.0, 900.0])
        >>> y["event"].tolist(), y["time"].tolist()
        ([True, False], [120.0, 900.0])
    """
    event_arr = np.asarray(event)
    time_arr = np.asarray(time, dtype=float)
    if event_arr.ndim != 1 or time_arr.ndim != 1:
        raise InputError(
            f"event and time must be 1D. Received: event.shape={event_arr.shape}, "
            f"time.shape={time_arr.shape}"
        )
    if len(event_arr) != len(time_arr):
        raise InputError(
            f"event and time must have the same length. Received: len(event)={len(event_arr)}, "
            f"len(time)={len(time_arr)}"
        )
    names = list(ids) if ids is not None else [f"row {i}" for i in range(len(time_arr))]

    def name(i: int) -> str:
        return names[i] if ids is None else f"patient {names[i]}"

    bad = np.flatnonzero(~np.isfinite(time_arr))
    if bad.size:
        raise InputError(f"{name(bad[0])}: time is missing or not finite ({time_arr[bad[0]]})")
    bad = np.flatnonzero(time_arr < 0)
    if bad.size:
        raise InputError(f"{name(bad[0])}: time is negative ({time_arr[bad[0]]})")
    if event_arr.dtype != bool:
        try:
            event_float = event_arr.astype(float)
        except (TypeError, ValueError):
            event_float = np.full(len(event_arr), np.nan)
        bad = np.flatnonzero(~np.isin(event_float, (0.0, 1.0)))
        if bad.size:
            raise InputError(f"{name(bad[0])}: event must be 0 or 1, got {event_arr[bad[0]]!r}")
        event_arr = event_float.astype(bool)
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
        InputError: if ``y`` is not such an array, or holds invalid values.
    """
    y = np.asarray(y)
    if y.dtype.names is None or len(y.dtype.names) != 2:
        raise InputError(
            "y must be a structured array with fields (event, time), as made by "
            f"hnprog.make_survival_y or sksurv.util.Surv. Received: dtype={y.dtype}"
        )
    event_field, time_field = y.dtype.names
    checked = make_survival_y(y[event_field], y[time_field])
    return checked["event"], checked["time"]


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
