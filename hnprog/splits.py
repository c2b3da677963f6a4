"""Cross-validation splits of a survival cohort, as in the paper.

Andrearczyk et al. (2021) use 5 folds: each fold holds out 20% of the patients for testing and
splits the rest 80% / 20% into training and validation (model and feature selection). With 18%
events, a plain random split can leave a test or validation set without any event, where the
C-index is undefined; so the splits here are stratified by event (and optionally by centre).

The same splits serve the radiomics baseline and the deep-learning cross-validation, so the two
are compared on identical test sets.

Leave-one-centre-out splits (:func:`leave_one_centre_out_splits`, ``--split centre``) hold out
one whole acquisition centre per fold instead: the honest test of whether a model carries over
to a centre it has never seen. :func:`make_splits` picks either kind by name, for every
cross-validation of the package (deep, radiomics and clinical baselines).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import warnings

import numpy as np

from hnprog.errors import InputError

__all__ = [
    "SPLITS",
    "FoldSplit",
    "cross_validation_splits",
    "holdout_split",
    "leave_one_centre_out_splits",
    "make_splits",
]

#: The kinds of cross-validation split: event-stratified folds, or one centre held out a fold.
SPLITS = ("stratified", "centre")


@dataclass(frozen=True)
class FoldSplit:
    """The patients of one cross-validation fold, as sorted integer indices into the cohort.

    Args:
        fold: int. Fold number, from 0.
        train: numpy.ndarray of int. Indices of the training patients.
        val: numpy.ndarray of int. Indices of the validation patients (empty when
            ``val_fraction`` is 0).
        test: numpy.ndarray of int. Indices of the test patients.
    """

    fold: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def cross_validation_splits(
    event: Sequence[bool] | np.ndarray,
    *,
    n_folds: int = 5,
    val_fraction: float = 0.2,
    seed: int = 0,
    groups: Sequence | np.ndarray | None = None,
) -> list[FoldSplit]:
    """Make seeded, event-stratified train/validation/test splits for cross-validation.

    Patients are grouped into strata (event, or event x group when ``groups`` is given), shuffled
    within each stratum with ``seed``, and dealt round-robin into ``n_folds`` test folds, so every
    test fold receives its share of each stratum and fold sizes differ by at most one. Within
    each fold, the remaining patients are split into validation (``val_fraction``) and training
    the same stratified way. Every patient is in exactly one test fold.

    Args:
        event: array-like of bool, shape ``(n_patients,)``. True where the event was observed.
        n_folds: int. Number of folds (test sets). Defaults to 5 (20% test each).
        val_fraction: float. Fraction of the non-test patients used for validation, in
            ``[0, 1)``. Defaults to 0.2.
        seed: int. Seed of the shuffling; the same seed gives the same splits. Defaults to 0.
        groups: array-like, shape ``(n_patients,)``, optional. A second stratification label,
            such as the centre. Defaults to None.

    Returns:
        list of :class:`FoldSplit`, one per fold.

    Raises:
        InputError: if there are fewer patients than folds, fewer events than folds (a test
            fold would hold no event), a training or validation set without any event, or
            invalid arguments.

    Example:
        >>> event = [True, False, False, False, False] * 5
        >>> splits = cross_validation_splits(event, n_folds=5)
        >>> [len(s.test) for s in splits], [int(sum(event[i] for i in s.test)) for s in splits]
        ([5, 5, 5, 5, 5], [1, 1, 1, 1, 1])
    """
    event_arr = np.asarray(event)
    if event_arr.ndim != 1:
        raise InputError(f"event must be 1D. Received: event.shape={event_arr.shape}")
    if event_arr.dtype != bool:
        if not np.isin(event_arr, (0, 1)).all():
            raise InputError(f"event must hold 0/1 or booleans. Received: {np.unique(event_arr)}")
        event_arr = event_arr.astype(bool)
    if not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise InputError(f"n_folds must be an integer >= 2. Received: n_folds={n_folds!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise InputError(f"val_fraction must be in [0, 1). Received: val_fraction={val_fraction}")
    n_patients = len(event_arr)
    if n_patients < n_folds:
        raise InputError(
            f"cannot make {n_folds} folds from {n_patients} patients: need at least one patient "
            f"per fold. Received: n_patients={n_patients}, n_folds={n_folds}"
        )
    n_events = int(event_arr.sum())
    if n_events < n_folds:
        raise InputError(
            f"only {n_events} events among {n_patients} patients: each of the {n_folds} test "
            "folds needs at least one event for a C-index; use fewer folds. "
            f"Received: n_events={n_events}, n_folds={n_folds}"
        )
    strata = event_arr.astype(int).astype(str)
    if groups is not None:
        groups_arr = np.asarray(groups).astype(str)
        if groups_arr.shape != event_arr.shape:
            raise InputError(
                "groups must have one label per patient. "
                f"Received: groups.shape={groups_arr.shape}, event.shape={event_arr.shape}"
            )
        strata = np.char.add(np.char.add(strata, "|"), groups_arr)

    rng = np.random.default_rng(seed)
    order = _stratified_order(np.arange(n_patients), strata, rng)
    fold_of = np.empty(n_patients, dtype=int)
    fold_of[order] = np.arange(n_patients) % n_folds

    splits = []
    for fold in range(n_folds):
        splits.append(_fold_split(
            fold, fold_of == fold, strata, event_arr, val_fraction, rng, where=f"fold {fold}",
            advice=f" (the cohort has {n_events} events); use fewer folds or a different "
                   f"val_fraction. Received: n_folds={n_folds}, val_fraction={val_fraction}"))
    return splits


def leave_one_centre_out_splits(
    event: Sequence[bool] | np.ndarray,
    centres: Sequence | np.ndarray,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> list[FoldSplit]:
    """Make leave-one-centre-out splits: fold ``k`` tests on every patient of centre ``k``.

    Centres are taken in sorted order (fold 0 is the first name). The patients of the other
    centres are split into training and validation (``val_fraction``), stratified by event
    and centre as in :func:`cross_validation_splits`.

    Args:
        event: array-like of bool, shape ``(n_patients,)``. True where the event was observed.
        centres: array-like, shape ``(n_patients,)``. Each patient's centre (e.g. ``"CHGJ"``).
        val_fraction: float. Fraction of the other centres' patients used for validation, in
            ``[0, 1)``. Defaults to 0.2.
        seed: int. Seed of the training/validation shuffling. Defaults to 0.

    Returns:
        list of :class:`FoldSplit`, one per centre.

    Raises:
        InputError: if a centre is missing (None or empty), there are fewer than two
            centres, or a fold's training or validation set holds no event.

    Warns:
        UserWarning: for each centre without an event: its fold is kept, but its test C-index
            is undefined (NaN).

    Example:
        >>> splits = leave_one_centre_out_splits([1, 0, 1, 0, 1, 1], list("AABBCC"),
        ...                                      val_fraction=0.0)
        >>> [s.test.tolist() for s in splits]
        [[0, 1], [2, 3], [4, 5]]
    """
    event_arr = np.asarray(event).astype(bool)
    labels = np.asarray([None if c is None else str(c) for c in centres], dtype=object)
    if labels.shape != event_arr.shape:
        raise InputError("centres must have one label per patient. "
                         f"Received: {labels.shape[0]} centres for {event_arr.shape[0]} patients")
    unknown = np.flatnonzero([c is None or c == "" for c in labels])
    if len(unknown):
        raise InputError(
            f"leave-one-centre-out needs every patient's centre; {len(unknown)} patients have "
            f"none (positions {unknown[:5].tolist()}). Give centres (a manifest column, "
            "HECKTOR-style ids or a patient -> centre mapping) or use the stratified split"
        )
    if not 0.0 <= val_fraction < 1.0:
        raise InputError(f"val_fraction must be in [0, 1). Received: val_fraction={val_fraction}")
    names = sorted(set(labels))
    if len(names) < 2:
        raise InputError(f"leave-one-centre-out needs at least 2 centres; all "
                         f"{len(labels)} patients are from {names}. Use the stratified split")
    labels = labels.astype(str)
    strata = np.char.add(np.char.add(event_arr.astype(int).astype(str), "|"), labels)
    rng = np.random.default_rng(seed)
    splits = []
    for fold, name in enumerate(names):
        split = _fold_split(fold, labels == name, strata, event_arr, val_fraction, rng,
                            where=f"fold {fold} (centre {name} held out)",
                            advice=f". Received: val_fraction={val_fraction}")
        test = split.test
        if not event_arr[test].any():
            warnings.warn(
                f"centre {name} ({len(test)} patients) has no event: its fold is kept, but its "
                "test C-index is undefined (NaN) and left out of the mean",
                UserWarning, stacklevel=2,
            )
        splits.append(split)
    return splits


def make_splits(
    event: Sequence[bool] | np.ndarray,
    *,
    split: str = "stratified",
    n_folds: int = 5,
    val_fraction: float = 0.2,
    seed: int = 0,
    groups: Sequence | np.ndarray | None = None,
) -> list[FoldSplit]:
    """The cross-validation splits of one kind: the one entry point of every cross-validation.

    Args:
        event: array-like of bool, shape ``(n_patients,)``.
        split: str. ``"stratified"`` (:func:`cross_validation_splits`, ``n_folds`` folds,
            stratified by event and, when given, by ``groups``) or ``"centre"``
            (:func:`leave_one_centre_out_splits`, one fold per centre in ``groups``).
            Defaults to ``"stratified"``.
        n_folds: int. Folds of the stratified split (unused by ``"centre"``). Defaults to 5.
        val_fraction: float. Validation share of the non-test patients. Defaults to 0.2.
        seed: int. Seed of the shuffling. Defaults to 0.
        groups: array-like, optional. Each patient's centre; required by ``"centre"``.

    Returns:
        list of :class:`FoldSplit`.

    Raises:
        InputError: on an unknown ``split``, ``"centre"`` without ``groups``, or any error of
            the two split functions.

    Example:
        >>> [len(s.test) for s in make_splits([1, 0, 1, 1], split="centre",
        ...                                   groups=["A", "A", "B", "B"], val_fraction=0.0)]
        [2, 2]
    """
    if split not in SPLITS:
        raise InputError(f"split must be one of {SPLITS}. Received: split={split!r}")
    if split == "centre":
        if groups is None:
            raise InputError("the leave-one-centre-out split needs each patient's centre "
                             "(groups=...)")
        return leave_one_centre_out_splits(event, groups, val_fraction=val_fraction, seed=seed)
    return cross_validation_splits(event, n_folds=n_folds, val_fraction=val_fraction, seed=seed,
                                   groups=groups)


def holdout_split(
    event: Sequence[bool] | np.ndarray,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Split patients once into training and validation, stratified by event.

    The same stratified rule that :func:`cross_validation_splits` uses inside each fold.

    Args:
        event: array-like of bool, shape ``(n_patients,)``. True where the event was observed.
        val_fraction: float. Fraction of patients for validation, in ``(0, 1)``. Defaults to 0.2.
        seed: int. Seed of the shuffling. Defaults to 0.

    Returns:
        tuple ``(train, val)`` of sorted integer index arrays.

    Raises:
        InputError: if ``val_fraction`` is not in ``(0, 1)`` or either part holds no event.
    """
    event_arr = np.asarray(event).astype(bool)
    if not 0.0 < val_fraction < 1.0:
        raise InputError(f"val_fraction must be in (0, 1). Received: val_fraction={val_fraction}")
    train, val = _stratified_holdout(
        np.arange(len(event_arr)), event_arr.astype(int), val_fraction, np.random.default_rng(seed)
    )
    for name, part in (("training", train), ("validation", val)):
        if not event_arr[part].any():
            raise InputError(
                f"the {name} part of a {len(event_arr)}-patient split holds no event "
                f"({int(event_arr.sum())} events in all). Received: val_fraction={val_fraction}"
            )
    return train, val


def _fold_split(
    fold: int,
    is_test: np.ndarray,
    strata: np.ndarray,
    event: np.ndarray,
    val_fraction: float,
    rng: np.random.Generator,
    *,
    where: str,
    advice: str,
) -> FoldSplit:
    """One fold: the ``is_test`` patients as test, the rest split stratified into training
    and validation; refuses a training or validation set without events."""
    test, rest = np.sort(np.flatnonzero(is_test)), np.flatnonzero(~is_test)
    train, val = _stratified_holdout(rest, strata[rest], val_fraction, rng)
    for name, part in (("training", train), ("validation", val)):
        if len(part) and not event[part].any():
            raise InputError(f"{where}: the {name} set ({len(part)} patients) holds no "
                             f"event{advice}")
    return FoldSplit(fold=fold, train=train, val=val, test=test)


def _stratified_holdout(
    indices: np.ndarray, strata: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ``(kept, held_out)`` indices; ``fraction`` of every stratum is held out."""
    order = _stratified_order(indices, strata, rng)
    # Systematic sampling along the stratified order takes the fraction from each stratum.
    position = np.arange(len(order))
    held_out = np.floor((position + 1) * fraction) > np.floor(position * fraction)
    return np.sort(order[~held_out]), np.sort(order[held_out])


def _stratified_order(
    indices: np.ndarray, strata: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Indices shuffled within each stratum, strata concatenated in sorted label order."""
    parts = []
    for label in np.unique(strata):
        members = indices[strata == label]
        parts.append(members[rng.permutation(len(members))])
    return np.concatenate(parts)
