"""The Breslow baseline and survival probabilities against scikit-survival's own estimator."""

from __future__ import annotations

import numpy as np
import pytest
from sksurv.datasets import load_veterans_lung_cancer
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.linear_model.coxph import BreslowEstimator

from hnprog.errors import InputError
from hnprog.survival import breslow_baseline, check_baseline, survival_probability


@pytest.fixture(scope="module")
def veterans():
    X, y = load_veterans_lung_cancer()
    X = X[["Age_in_years", "Karnofsky_score", "Months_from_Diagnosis"]].to_numpy(float)
    model = CoxPHSurvivalAnalysis().fit(X, y)
    return X, y, model


def test_breslow_equals_sksurv_estimator(veterans):
    X, y, model = veterans
    risk = model.predict(X)
    ours = breslow_baseline(event=y["Status"], time=y["Survival_in_days"], risk=risk)
    theirs = BreslowEstimator().fit(risk, y["Status"], y["Survival_in_days"])
    times = np.asarray(ours["time_days"])
    np.testing.assert_allclose(times, theirs.unique_times_)
    # ours is stored for the mean risk: H_ref = H0 * exp(mean risk)
    np.testing.assert_allclose(
        np.asarray(ours["cumulative_hazard"]) * np.exp(-ours["reference_risk"]),
        theirs.cum_baseline_hazard_.y, rtol=1e-10)
    assert ours["n_events"] == int(y["Status"].sum())
    assert ours["max_time_days"] == y["Survival_in_days"].max()


def test_survival_probability_equals_coxph_survival_function(veterans):
    X, y, model = veterans
    risk = model.predict(X)
    baseline = breslow_baseline(event=y["Status"], time=y["Survival_in_days"], risk=risk)
    times = np.array([0.0, 30.0, 100.0, 365.0, 500.0])
    ours = survival_probability(baseline, risk[:10] + 3.0 - 3.0, times)
    for row, function in zip(ours, model.predict_survival_function(X[:10])):
        expected = np.where(times < function.x[0], 1.0, function(np.maximum(times, function.x[0])))
        np.testing.assert_allclose(row, expected, rtol=1e-9)
    assert (np.diff(ours, axis=1) <= 0).all()


def test_survival_is_invariant_to_a_shift_of_the_log_hazard(veterans):
    X, y, model = veterans
    risk = model.predict(X)
    a = breslow_baseline(event=y["Status"], time=y["Survival_in_days"], risk=risk)
    b = breslow_baseline(event=y["Status"], time=y["Survival_in_days"], risk=risk + 50.0)
    np.testing.assert_allclose(survival_probability(a, risk, [100.0]),
                               survival_probability(b, risk + 50.0, [100.0]))


def test_beyond_follow_up_is_nan_with_a_warning():
    baseline = breslow_baseline(event=[1, 0, 1], time=[10.0, 20.0, 30.0], risk=[0.1, 0.0, -0.1])
    with pytest.warns(RuntimeWarning, match="beyond the longest follow-up"):
        s = survival_probability(baseline, [0.0, 1.0], [5.0, 30.0, 31.0])
    assert s.shape == (2, 3)
    assert s[:, 0].tolist() == [1.0, 1.0] and np.isnan(s[:, 2]).all()
    assert s[1, 1] < s[0, 1]


def test_bad_baselines_and_inputs():
    with pytest.raises(InputError, match="at least one observed event"):
        breslow_baseline(event=[0, 0], time=[1.0, 2.0], risk=[0.0, 1.0])
    with pytest.raises(InputError, match="not a Breslow baseline"):
        check_baseline({"time_days": [1.0]}, where="preset x")
    with pytest.raises(InputError, match="non-decreasing"):
        check_baseline({"time_days": [1.0, 2.0], "cumulative_hazard": [0.5, 0.2],
                        "reference_risk": 0.0})
    good = breslow_baseline(event=[1, 1], time=[1.0, 2.0], risk=[0.0, 0.0])
    with pytest.raises(InputError, match="times must be finite"):
        survival_probability(good, 0.0, [-1.0])
    with pytest.raises(InputError, match="risk must be finite"):
        survival_probability(good, [np.nan], [1.0])
