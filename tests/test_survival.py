"""Tests of hnprog.survival: one checked representation of (event, time)."""

from __future__ import annotations

import numpy as np
import pytest
from sksurv.util import Surv

from hnprog.errors import InputError
from hnprog.survival import (
    check_event_time,
    check_survival_y,
    make_survival_y,
    survival_y_to_keras,
)


def test_make_survival_y_matches_sksurv_surv():
    ours = make_survival_y(event=[1, 0, 1], time=[10.0, 20.5, 3.0])
    theirs = Surv.from_arrays(event=[True, False, True], time=[10.0, 20.5, 3.0])
    np.testing.assert_array_equal(ours["event"], theirs["event"])
    np.testing.assert_array_equal(ours["time"], theirs["time"])


def test_check_survival_y_accepts_sksurv_arrays_with_other_field_names():
    y = Surv.from_arrays(event=[True, False], time=[5.0, 6.0], name_event="dead", name_time="days")
    event, time = check_survival_y(y)
    assert event.tolist() == [True, False]
    assert time.tolist() == [5.0, 6.0]


def test_survival_y_to_keras_layout_is_time_then_event():
    y = make_survival_y(event=[True, False], time=[100.0, 200.0])
    np.testing.assert_array_equal(survival_y_to_keras(y), [[100.0, 1.0], [200.0, 0.0]])
    assert survival_y_to_keras(y).dtype == np.float32


@pytest.mark.parametrize(
    ("event", "time", "ids", "match"),
    [
        ([1, 0], [1.0], None, "same length"),
        ([1, 0], [1.0, np.nan], None, "row 1: time is missing"),
        ([1, 0], [1.0, -2.0], ["A", "B"], "patient B: time is negative"),
        ([1, 2], [1.0, 2.0], ["A", "B"], "patient B: event must be 0 or 1"),
        (["yes", "no"], [1.0, 2.0], None, "row 0: event must be 0 or 1"),
    ],
)
def test_make_survival_y_rejects_bad_values(event, time, ids, match):
    with pytest.raises(InputError, match=match):
        make_survival_y(event=event, time=time, ids=ids)
    with pytest.raises(InputError, match=match):  # the one validator behind it
        check_event_time(event=event, time=time, ids=ids)


def test_check_survival_y_rejects_plain_arrays():
    with pytest.raises(InputError, match="structured array"):
        check_survival_y(np.zeros((3, 2)))


def test_make_survival_y_positional_form_is_deprecated():
    expected = make_survival_y(event=[1, 0], time=[5.0, 6.0])
    with pytest.warns(DeprecationWarning, match=r"make_survival_y\(event=\.\.\., time=\.\.\.\)"):
        y = make_survival_y([1, 0], [5.0, 6.0])
    np.testing.assert_array_equal(y, expected)
    with pytest.warns(DeprecationWarning):
        np.testing.assert_array_equal(make_survival_y([1, 0], time=[5.0, 6.0]), expected)


def test_check_event_time_returns_checked_arrays():
    event, time = check_event_time(event=[1, 0, True], time=[3, 4.5, 0])
    assert event.dtype == bool and event.tolist() == [True, False, True]
    assert time.dtype == np.float64 and time.tolist() == [3.0, 4.5, 0.0]
    with pytest.raises(InputError, match="ids must name every sample"):
        check_event_time(event=[1, 0], time=[1.0, 2.0], ids=["A"])


def test_check_survival_y_uses_the_same_messages():
    y = np.zeros(2, dtype=[("event", "?"), ("time", "<f8")])
    y["time"] = [1.0, -3.0]
    with pytest.raises(InputError, match="row 1: time is negative"):
        check_survival_y(y)
