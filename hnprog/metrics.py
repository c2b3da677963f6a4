"""Evaluation metrics on NumPy arrays: Harrell's C-index for risks; the Dice score and the
surface distances (95th-percentile Hausdorff, mean) for masks."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from hnprog.errors import InputError
from hnprog.survival import check_event_time, check_risk, deprecated_positional

__all__ = ["concordance_index", "dice_score", "surface_distances"]


@deprecated_positional("time", "event", "risk")
def concordance_index(*, event: Any, time: Any, risk: Any, tied_tol: float = 1e-8) -> float:
    """Harrell's concordance index of risk scores against censored survival times.

    A pair ``(i, j)`` is comparable when ``i`` had an observed event and ``j`` was still at
    risk: ``T_j > T_i``, or ``T_j == T_i`` with ``j`` censored. It is concordant when the
    sample with the event has the higher risk, and counts 1/2 when the two risks are tied
    (within ``tied_tol``). The C-index is ``(concordant + tied / 2) / comparable``: 1 is a
    perfect ranking, 0.5 a random one. This is exactly the definition of
    ``sksurv.metrics.concordance_index_censored(event, time, risk)`` (and its first return
    value), in the same argument order; lifelines' ``concordance_index`` takes predicted
    survival times, so give it ``-risk``.

    It runs in O(N log N) time and O(N) memory with vectorised NumPy: sorts, binary searches
    and a wavelet matrix over the risk ranks that counts, for every event, the lower risks
    among the samples still at risk.

    Args:
        event: array-like of shape ``(n_samples,)``. True (or 1) for an observed event,
            False (or 0) for censoring.
        time: array-like of shape ``(n_samples,)``. Time to event or censoring (days); finite
            and not negative.
        risk: array-like of shape ``(n_samples,)``. Predicted risk, e.g. a Cox log-hazard:
            **higher means an earlier event**. Negate survival times or probabilities first.
        tied_tol: float. Two risks closer than this count as tied. Defaults to 1e-8
            (scikit-survival's default).

    Returns:
        float in [0, 1]; NaN (with a ``RuntimeWarning``) when no pair is comparable, e.g.
        when every sample is censored.

    Raises:
        InputError: on inputs that are not 1D or differ in length, on missing or non-finite
            values, on negative times, or on events other than 0/1
            (:func:`hnprog.survival.check_event_time` and :func:`hnprog.survival.check_risk`).

    Note:
        The arguments are keyword-only, in scikit-survival's ``(event, time)`` order. The
        former positional form ``concordance_index(time, event, risk)`` still works for one
        release, with a ``DeprecationWarning``.

    Example:
        >>> concordance_index(event=[1, 1, 0], time=[1.0, 2.0, 3.0], risk=[3.0, 2.0, 1.0])
        1.0
    """
    event_arr, time_arr = check_event_time(event=event, time=time)
    risk_arr = check_risk(risk, n_samples=len(time_arr))
    n_samples = len(time_arr)

    # Samples sorted by decreasing time; an event's "later" samples form a prefix of this order.
    by_time = np.argsort(-time_arr, kind="stable")
    sorted_time = time_arr[by_time]
    sorted_event = event_arr[by_time]
    # position of each sample in ascending-risk order, and the risk thresholds of each sample
    risk_order = np.argsort(risk_arr, kind="stable")
    sorted_risk = risk_arr[risk_order]
    risk_position = np.empty(n_samples, dtype=np.int64)
    risk_position[risk_order] = np.arange(n_samples)
    sorted_position = risk_position[by_time]
    events = np.flatnonzero(sorted_event)
    event_risk = risk_arr[by_time][events]
    below = np.searchsorted(sorted_risk, event_risk - tied_tol, side="left")  # risk < r - tol
    within = np.searchsorted(sorted_risk, event_risk + tied_tol, side="right")  # risk <= r + tol
    # samples strictly later than each event = the samples before its tie group
    n_later = np.searchsorted(-sorted_time, -sorted_time[events], side="left")

    later_below, later_within = _count_prefix_below(
        sorted_position, np.concatenate([n_later, n_later]), np.concatenate([below, within])
    ).reshape(2, -1)

    # censored samples at the same time as the event are comparable too
    censored = ~sorted_event
    time_codes = np.unique(sorted_time, return_inverse=True)[1].astype(np.int64)
    censored_keys = np.sort(time_codes[censored] * (n_samples + 1) + sorted_position[censored])
    event_base = time_codes[events] * (n_samples + 1)
    start = np.searchsorted(censored_keys, event_base, side="left")
    tied_below = np.searchsorted(censored_keys, event_base + below, side="left") - start
    tied_within = np.searchsorted(censored_keys, event_base + within, side="left") - start
    tied_censored = np.searchsorted(censored_keys, event_base + n_samples, side="left") - start

    comparable = int(n_later.sum() + tied_censored.sum())
    if comparable == 0:
        warnings.warn(
            "concordance_index: no comparable pair (no event, or no sample at risk after any "
            "event); returning NaN.",
            RuntimeWarning,
            stacklevel=3,  # the caller, above the deprecated_positional wrapper
        )
        return float("nan")
    concordant = int(later_below.sum() + tied_below.sum())
    tied_risk = int(later_within.sum() + tied_within.sum()) - concordant
    return (concordant + 0.5 * tied_risk) / comparable


def _count_prefix_below(
    values: np.ndarray, prefix: np.ndarray, threshold: np.ndarray
) -> np.ndarray:
    """For each query ``q``, count ``values[:prefix[q]] < threshold[q]``, in O((N + Q) log N).

    ``values`` is a permutation of ``0 .. n-1`` (risk ranks in decreasing-time order) and
    each threshold lies in ``0 .. n``. A wavelet matrix: from the most significant bit of the
    ranks down, the values are stably partitioned by that bit (zeros first), and every query
    follows its prefix ``[lo, hi)`` into the half its threshold's bit selects, adding the
    prefix's zeros whenever that bit is 1 (those values are below the threshold). Each of the
    ``log2 N`` levels is a few vectorised O(N + Q) passes.
    """
    n = len(values)
    counts = np.zeros(len(prefix), dtype=np.int64)
    if n == 0:
        return counts
    n_bits = max(1, (n - 1).bit_length())
    lo = np.zeros(len(prefix), dtype=np.int64)
    hi = np.array(prefix, dtype=np.int64)
    threshold = np.asarray(threshold, dtype=np.int64)
    above_all = threshold >= 1 << n_bits  # every value is below it: the whole prefix counts
    counts[above_all] = hi[above_all]
    hi[above_all] = 0
    current = np.asarray(values, dtype=np.int64)
    zeros_before = np.zeros(n + 1, dtype=np.int64)  # zeros_before[i]: zero bits in [0, i)
    for bit in range(n_bits - 1, -1, -1):
        is_one = (current >> bit) & 1
        np.cumsum(1 - is_one, out=zeros_before[1:])
        n_zeros = zeros_before[-1]
        zeros_lo, zeros_hi = zeros_before[lo], zeros_before[hi]
        go_right = (threshold >> bit) & 1 == 1
        counts += np.where(go_right, zeros_hi - zeros_lo, 0)
        lo = np.where(go_right, n_zeros + lo - zeros_lo, zeros_lo)
        hi = np.where(go_right, n_zeros + hi - zeros_hi, zeros_hi)
        current = np.concatenate([current[is_one == 0], current[is_one == 1]])
    return counts


def dice_score(pred: Any, truth: Any, *, empty_score: float = 1.0) -> float:
    """Dice similarity coefficient of two binary masks: ``2 |P & T| / (|P| + |T|)``.

    As in HECKTOR, an empty prediction of a non-empty truth scores 0 (and so does a non-empty
    prediction of an empty truth). When both masks are empty the score is ``empty_score``:
    1.0 by default (the two masks agree perfectly); pass ``float("nan")`` to leave such
    cases out of a ``numpy.nanmean``.

    Args:
        pred: array-like of any shape, e.g. ``(z, y, x)``. Predicted mask: bool, or numbers
            that are all 0 or 1. Threshold probabilities first (``prob >= 0.5``).
        truth: array-like of the same shape. Reference mask, bool or 0/1.
        empty_score: float. Score when both masks are empty. Defaults to 1.0.

    Returns:
        float in [0, 1] (or ``empty_score``).

    Raises:
        InputError: if the shapes differ, or a mask holds values other than 0 and 1.

    Example:
        >>> import numpy as np
        >>> dice_score(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]))
        0.6666666666666666
    """
    masks = _binary_masks(pred, truth, "dice_score")
    total = int(masks["pred"].sum()) + int(masks["truth"].sum())
    if total == 0:
        return float(empty_score)
    overlap = int(np.logical_and(masks["pred"], masks["truth"]).sum())
    return 2.0 * overlap / total


def _binary_masks(pred: Any, truth: Any, where: str) -> dict[str, np.ndarray]:
    """``pred`` and ``truth`` as bool arrays of one shape.

    Raises:
        InputError: if the shapes differ, or a mask holds values other than 0 and 1.
    """
    masks = {}
    for name, value in (("pred", pred), ("truth", truth)):
        array = np.asarray(value)
        if array.dtype != bool:
            if not np.isin(array, (0, 1)).all():
                raise InputError(
                    f"{where} takes binary masks; {name} holds values other than 0 and 1 "
                    f"(threshold probabilities first, e.g. prob >= 0.5). Received: "
                    f"{name} values in [{array.min()}, {array.max()}]"
                )
            array = array.astype(bool)
        masks[name] = array
    if masks["pred"].shape != masks["truth"].shape:
        raise InputError(
            "pred and truth must have the same shape. Received: "
            f"pred.shape={masks['pred'].shape}, truth.shape={masks['truth'].shape}"
        )
    return masks


def surface_distances(pred: Any, truth: Any, *,
                      spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> dict[str, float]:
    """Distances between the surfaces of two 3D binary masks, in mm, both ways.

    A mask's surface is its voxels with a face-neighbour outside it (or on the array's edge).
    The distance of each surface voxel of one mask to the nearest surface voxel of the other
    is taken, for both masks (``scipy.ndimage.distance_transform_edt`` with the voxel
    spacing); ``hd95_mm`` is their 95th percentile (the robust Hausdorff distance), ``mean_mm``
    their mean (the average symmetric surface distance) and ``max_mm`` the Hausdorff
    distance. Only the box around both masks is computed, so a whole CT grid costs little
    more than the tumour's neighbourhood.

    Args:
        pred: array-like ``(z, y, x)``. Predicted mask: bool or 0/1.
        truth: array-like ``(z, y, x)``. Reference mask on the same grid.
        spacing: tuple of three floats. Voxel size in mm as SimpleITK gives it,
            ``(x, y, z)``. Defaults to 1 mm.

    Returns:
        dict with ``hd95_mm``, ``mean_mm`` and ``max_mm``: 0.0 each when both masks are
        empty, NaN when only one is (no surface to measure to).

    Raises:
        InputError: as :func:`dice_score`, or if the masks are not 3D or ``spacing`` is not
            three positive numbers.

    Example:
        >>> import numpy as np
        >>> a = np.zeros((8, 8, 8), bool); a[2:5, 2:5, 2:5] = True
        >>> surface_distances(a, np.roll(a, 2, axis=2), spacing=(1.5, 1.0, 1.0))["max_mm"]
        3.0
    """
    from scipy import ndimage

    masks = _binary_masks(pred, truth, "surface_distances")
    if masks["pred"].ndim != 3:
        raise InputError(f"surface_distances takes 3D masks (z, y, x). Received: "
                         f"shape={masks['pred'].shape}")
    sampling = np.asarray(spacing, dtype=float)
    if sampling.shape != (3,) or not (np.isfinite(sampling) & (sampling > 0)).all():
        raise InputError(f"spacing must be three positive numbers (x, y, z) in mm. Received: "
                         f"spacing={spacing!r}")
    empty = [not m.any() for m in masks.values()]
    if all(empty):
        return {"hd95_mm": 0.0, "mean_mm": 0.0, "max_mm": 0.0}
    if any(empty):
        return {"hd95_mm": float("nan"), "mean_mm": float("nan"), "max_mm": float("nan")}
    # only the box around both masks, with a voxel of margin, matters
    either = masks["pred"] | masks["truth"]
    box = []
    for axis in range(3):
        present = np.flatnonzero(either.any(axis=tuple(a for a in range(3) if a != axis)))
        box.append(slice(max(int(present[0]) - 1, 0), int(present[-1]) + 2))
    box = tuple(box)
    surfaces = [m[box] & ~ndimage.binary_erosion(m[box], border_value=0)
                for m in masks.values()]
    sampling = sampling[::-1]  # (z, y, x), as the arrays
    one_way = [ndimage.distance_transform_edt(~other, sampling=sampling)[surface]
               for surface, other in ((surfaces[0], surfaces[1]), (surfaces[1], surfaces[0]))]
    both = np.concatenate(one_way)
    return {"hd95_mm": float(np.percentile(both, 95)), "mean_mm": float(both.mean()),
            "max_mm": float(both.max())}
