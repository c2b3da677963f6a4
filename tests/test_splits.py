"""Tests of hnprog.splits: the paper's event-stratified 5-fold train/validation/test splits."""

from __future__ import annotations

import numpy as np
import pytest

from hnprog.errors import InputError
from hnprog.splits import FoldSplit, cross_validation_splits, holdout_split


def paper_like_events(n: int = 239, event_rate: float = 0.18, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random(n) < event_rate


def test_every_patient_is_tested_once_and_sets_are_disjoint():
    event = paper_like_events()
    splits = cross_validation_splits(event)
    assert [s.fold for s in splits] == [0, 1, 2, 3, 4]
    all_test = np.concatenate([s.test for s in splits])
    np.testing.assert_array_equal(np.sort(all_test), np.arange(len(event)))
    for s in splits:
        assert isinstance(s, FoldSplit)
        parts = [set(s.train), set(s.val), set(s.test)]
        assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
        assert len(s.train) + len(s.val) + len(s.test) == len(event)
        for part in (s.train, s.val, s.test):
            assert np.all(np.diff(part) > 0)  # sorted, no repeats


def test_sizes_follow_the_paper_20_percent_test_then_80_20():
    event = paper_like_events()
    for s in cross_validation_splits(event):
        assert len(s.test) in (47, 48)  # 239 / 5
        rest = len(s.train) + len(s.val)
        assert abs(len(s.val) - 0.2 * rest) <= 1


def test_events_are_spread_evenly_over_test_and_validation_sets():
    event = paper_like_events()
    splits = cross_validation_splits(event)
    test_events = [int(event[s.test].sum()) for s in splits]
    assert max(test_events) - min(test_events) <= 1
    assert sum(test_events) == event.sum()
    for s in splits:
        rest = np.concatenate([s.train, s.val])
        expected = 0.2 * event[rest].sum()
        assert abs(event[s.val].sum() - expected) <= 1


def test_same_seed_same_splits_other_seed_other_splits():
    event = paper_like_events()
    first = cross_validation_splits(event, seed=3)
    again = cross_validation_splits(event, seed=3)
    other = cross_validation_splits(event, seed=4)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.test, b.test)
        np.testing.assert_array_equal(a.val, b.val)
    assert any(not np.array_equal(a.test, b.test) for a, b in zip(first, other))


def test_groups_stratify_centres_too():
    rng = np.random.default_rng(0)
    event = rng.random(200) < 0.25
    centre = rng.choice(["CHGJ", "CHMR", "CHUM", "CHUS", "HGJ"], size=200)
    splits = cross_validation_splits(event, groups=centre)
    for name in np.unique(centre):
        per_fold = [int((centre[s.test] == name).sum()) for s in splits]
        assert max(per_fold) - min(per_fold) <= 2  # event and censored strata each within 1


def test_zero_validation_fraction_gives_empty_validation_sets():
    splits = cross_validation_splits(paper_like_events(), val_fraction=0.0)
    assert all(len(s.val) == 0 for s in splits)


def test_holdout_split_is_stratified():
    event = paper_like_events()
    train, val = holdout_split(event, val_fraction=0.2, seed=0)
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == len(event)
    assert abs(len(val) - 0.2 * len(event)) <= 1
    assert abs(event[val].sum() - 0.2 * event.sum()) <= 1


@pytest.mark.parametrize(
    ("event", "kwargs", "match"),
    [
        pytest.param([1, 0, 1], {}, "cannot make 5 folds from 3 patients", id="fewer_patients"),
        pytest.param([1, 1, 0, 0, 0, 0, 0, 0], {}, "only 2 events", id="fewer_events_than_folds"),
        pytest.param([0] * 20, {}, "only 0 events", id="no_event"),
        pytest.param([1] * 10, {"n_folds": 1}, "n_folds must be an integer >= 2", id="one_fold"),
        pytest.param([1] * 10, {"val_fraction": 1.0}, "val_fraction", id="bad_fraction"),
        pytest.param([1, 2, 0, 0, 1, 1], {"n_folds": 2}, "0/1", id="bad_event_values"),
        pytest.param([1] * 10, {"groups": ["a"] * 9}, "one label per patient", id="bad_groups"),
    ],
)
def test_bad_inputs_raise_clear_errors(event, kwargs, match):
    with pytest.raises(InputError, match=match):
        cross_validation_splits(event, **kwargs)


def test_validation_set_without_event_is_reported():
    # 5 events for 5 folds: each test fold takes the only event it can, leaving 4 for the rest;
    # a tiny validation share then holds none.
    event = np.array([True] * 5 + [False] * 40)
    with pytest.raises(InputError, match="validation set .* holds no event"):
        cross_validation_splits(event, val_fraction=0.1)
