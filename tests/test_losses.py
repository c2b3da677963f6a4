"""Tests of hnprog.losses against hand-computed values, scikit-survival and lifelines."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from sksurv.datasets import load_veterans_lung_cancer, load_whas500
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.linear_model.coxph import CoxPHOptimizer

from hnprog.errors import InputError
from hnprog.losses import CoxLoss, DiceLoss, cox_loss_terms
from hnprog.testing import run_serialization_test, value_and_grad

pytestmark = pytest.mark.backend_independent

# whas500 and veterans covariates; standardised so fixed coefficients give moderate risks
DATASETS = {
    "whas500": (load_whas500, ["age", "bmi", "hr", "sysbp"]),
    "veterans": (load_veterans_lung_cancer, ["Age_in_years", "Karnofsky_score"]),
}


def load_standardised(dataset: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    loader, columns = DATASETS[dataset]
    features, y = loader()
    x = features[columns].astype(float)
    x = ((x - x.mean()) / x.std()).to_numpy()
    event_field, time_field = y.dtype.names
    return x, y[time_field].astype(float), y[event_field].astype(bool)


def float64_available() -> bool:
    return keras.backend.backend() != "jax"  # JAX runs float64 as float32 unless x64 is on


# ---------------------------------------------------------------- CoxLoss, hand-computed


@pytest.mark.parametrize(
    "time, event, risk, ties, expected",
    [
        # no ties: (log 3 + log 1) / 2 with all risks 0
        ([100, 200, 300], [1, 0, 1], [0, 0, 0], "breslow", np.log(3) / 2),
        # one event, risk set of all three: -(2 - log(e^2 + e^1 + e^0))
        ([1, 2, 3], [1, 0, 0], [2, 1, 0], "breslow", np.log(np.exp([2, 1, 0]).sum()) - 2),
        # two tied events out of three, risks 0: Breslow 2 log 3 / 2; Efron (log 3 + log 2) / 2
        ([5, 5, 9], [1, 1, 0], [0, 0, 0], "breslow", np.log(3)),
        ([5, 5, 9], [1, 1, 0], [0, 0, 0], "efron", (np.log(3) + np.log(2)) / 2),
        # a censored sample tied with an event is in its risk set
        ([5, 5], [1, 0], [1, 0], "breslow", np.log(np.e + 1) - 1),
        # no event: 0
        ([1, 2, 3], [0, 0, 0], [3, -1, 2], "efron", 0.0),
    ],
)
def test_cox_loss_hand_computed(time, event, risk, ties, expected):
    y_true = np.stack([time, event], axis=1).astype("float32")
    y_pred = np.asarray(risk, "float32")[:, None]
    assert float(CoxLoss(ties=ties)(y_true, y_pred)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("dataset", ["whas500", "veterans"])
@pytest.mark.parametrize("ties", ["breslow", "efron"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cox_loss_equals_sksurv_negative_log_partial_likelihood(dataset, ties, dtype):
    x, time, event = load_standardised(dataset)
    coef = np.linspace(0.6, -0.4, x.shape[1])
    optimizer = CoxPHOptimizer(x, event, time, np.zeros(x.shape[1]), ties)
    # sksurv averages over samples; Eq. 2 averages over events
    expected = optimizer.nlog_likelihood(coef) * len(time) / event.sum()
    y_true = np.stack([time, event], axis=1)
    loss = CoxLoss(ties=ties, dtype=dtype)(y_true, (x @ coef)[:, None])
    assert float(loss) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("dataset", ["whas500", "veterans"])
def test_cox_loss_efron_equals_lifelines(dataset):
    pytest.importorskip("lifelines", reason="reference: pip install 'hnprog[reference]'")
    from lifelines.fitters.coxph_fitter import SemiParametricPHFitter

    x, time, event = load_standardised(dataset)
    coef = np.linspace(0.6, -0.4, x.shape[1])
    order = np.argsort(time, kind="stable")
    log_likelihood = SemiParametricPHFitter()._get_efron_values_single(
        pd.DataFrame(x[order]),
        pd.Series(time[order]),
        pd.Series(event[order]),
        pd.Series(np.ones(len(time))),
        None,
        coef,
    )[2]
    loss = CoxLoss(ties="efron")(np.stack([time, event], axis=1), (x @ coef)[:, None])
    assert float(loss) == pytest.approx(-log_likelihood / event.sum(), rel=1e-6)


@pytest.mark.parametrize("ties", ["breslow", "efron"])
def test_cox_loss_gradient_matches_finite_differences_of_sksurv(ties):
    x, time, event = load_standardised("veterans")  # many tied event times
    coef = np.array([0.3, -0.5])
    risk = x @ coef
    y_true = np.stack([time, event], axis=1).astype("float32")
    _, grad = value_and_grad(
        lambda h: CoxLoss(ties=ties)(y_true, h[:, None]), risk.astype("float32")
    )

    # central differences of the float64 reference with respect to each sample's log-hazard
    identity = np.eye(len(risk))
    optimizer = CoxPHOptimizer(identity, event, time, np.zeros(len(risk)), ties)
    scale = len(time) / event.sum()
    step = 1e-6
    loss_at = optimizer.nlog_likelihood
    differences = [loss_at(risk + step * unit) - loss_at(risk - step * unit) for unit in identity]
    numeric = np.array(differences) * scale / (2 * step)
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("ties", ["breslow", "efron"])
def test_fitting_with_cox_loss_recovers_sksurv_coefficients(ties):
    x, time, event = load_standardised("whas500")
    y = np.rec.fromarrays([event, time], names="event,time")
    expected = CoxPHSurvivalAnalysis(ties=ties).fit(x, y).coef_
    dtype = "float64" if float64_available() else "float32"
    y_true = np.stack([time, event], axis=1).astype(dtype)
    features = keras.ops.convert_to_tensor(x.astype(dtype))
    loss = CoxLoss(ties=ties, dtype=dtype)

    def objective(coef: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = value_and_grad(
            lambda c: loss(y_true, keras.ops.matmul(features, c[:, None])), coef.astype(dtype)
        )
        return value, grad.astype(float)

    result = minimize(
        objective,
        np.zeros(x.shape[1]),
        jac=True,
        method="L-BFGS-B",
        options={"gtol": 1e-10, "ftol": 1e-15, "maxiter": 500},
    )
    np.testing.assert_allclose(result.x, expected, atol=1e-3)


@pytest.mark.parametrize("ties", ["breslow", "efron"])
def test_cox_loss_without_event_is_zero_with_zero_gradients(ties):
    y_true = np.array([[10.0, 0.0], [20.0, 0.0], [20.0, 0.0]], "float32")
    value, grad = value_and_grad(
        lambda h: CoxLoss(ties=ties)(y_true, h[:, None]), np.array([1.0, -2.0, 3.0], "float32")
    )
    assert value == 0.0
    np.testing.assert_array_equal(grad, 0.0)


@pytest.mark.parametrize("ties", ["breslow", "efron"])
def test_cox_loss_is_finite_for_log_hazards_of_magnitude_1e3(ties):
    y_true = np.array([[1.0, 1.0], [1.0, 1.0], [2.0, 1.0], [3.0, 0.0]], "float32")
    risk = np.array([1000.0, -1000.0, -1000.0, 1000.0], "float32")
    value, grad = value_and_grad(lambda h: CoxLoss(ties=ties)(y_true, h[:, None]), risk)
    assert np.isfinite(value) and np.isfinite(grad).all()
    # Breslow by hand: events 0 and 1 share the risk set {0,1,2,3} (log-sum-exp = 1000 + log 2),
    # event 2 has the risk set {2, 3} (log-sum-exp = 1000)
    if ties == "breslow":
        expected = ((1000 + np.log(2) - 1000) + (1000 + np.log(2) + 1000) + (1000 + 1000)) / 3
        assert value == pytest.approx(expected, rel=1e-6)


def test_cox_loss_is_invariant_to_sample_order_and_reports_terms_in_input_order():
    rng = np.random.default_rng(0)
    time = rng.integers(1, 10, 50).astype("float32")
    event = (rng.random(50) < 0.4).astype("float32")
    risk = rng.normal(size=50).astype("float32")
    loss = CoxLoss(ties="efron")
    value = float(loss(np.stack([time, event], 1), risk[:, None]))
    order = rng.permutation(50)
    shuffled = float(loss(np.stack([time[order], event[order]], 1), risk[order][:, None]))
    assert shuffled == pytest.approx(value, rel=1e-6)
    # sample_weight multiplies per-sample terms: weight 0 on censored samples changes nothing
    weighted = float(loss(np.stack([time, event], 1), risk[:, None], sample_weight=event))
    assert weighted == pytest.approx(value, rel=1e-6)


def test_cox_loss_terms_take_event_time_keywords_and_deprecate_the_old_order():
    time = np.array([3.0, 1.0, 2.0, 2.0], "float32")
    event = np.array([1.0, 1.0, 0.0, 1.0], "float32")
    risk = np.array([0.3, -0.2, 0.5, 0.1], "float32")
    terms = keras.ops.convert_to_numpy(cox_loss_terms(event=event, time=time, risk=risk))
    loss = float(CoxLoss()(np.stack([time, event], 1), risk[:, None]))
    assert terms.sum() == pytest.approx(loss, rel=1e-6)
    with pytest.warns(DeprecationWarning, match=r"cox_loss_terms\(event=\.\.\., time="):
        old = keras.ops.convert_to_numpy(cox_loss_terms(time, event, risk))
    np.testing.assert_array_equal(old, terms)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow graph tracing")
@pytest.mark.parametrize("ties", ["breslow", "efron"])
def test_cox_loss_traces_with_an_unknown_batch_size(ties):
    import tensorflow as tf

    loss = CoxLoss(ties=ties)
    traced = tf.function(
        loss.__call__,
        input_signature=[tf.TensorSpec((None, 2)), tf.TensorSpec((None, 1))],
    )
    rng = np.random.default_rng(3)
    for n in (1, 7, 300):
        y_true = np.stack([rng.integers(1, 20, n), rng.random(n) < 0.5], 1).astype("float32")
        y_pred = rng.normal(size=(n, 1)).astype("float32")
        expected = float(loss(y_true, y_pred))
        assert float(traced(y_true, y_pred)) == pytest.approx(expected, rel=1e-6, abs=1e-7)


def test_cox_loss_computes_in_float32_for_half_precision_predictions():
    y_true = np.array([[1.0, 1.0], [2.0, 0.0]], "float32")
    value = CoxLoss()(y_true, np.array([[0.5], [0.25]], "float16"))
    assert keras.backend.standardize_dtype(value.dtype) == "float32"
    assert float(value) == pytest.approx(np.log(np.exp(0.5) + np.exp(0.25)) - 0.5, rel=1e-6)


def test_cox_loss_errors():
    with pytest.raises(InputError, match="ties must be one of"):
        CoxLoss(ties="exact")
    with pytest.raises(InputError, match=r"y_true of shape \(N, 2\)"):
        CoxLoss()(np.ones((3, 3), "float32"), np.ones((3, 1), "float32"))


# ------------------------------------------------------------------------------ DiceLoss


@pytest.mark.parametrize(
    "truth, prob, smooth, expected",
    [
        ([1, 1, 0, 0], [1, 1, 0, 0], 0.0, -1.0),  # perfect
        ([1, 1, 0, 0], [0, 0, 1, 1], 0.0, 0.0),  # disjoint
        ([1, 1, 0, 0], [0.5, 0.5, 0.5, 0.5], 0.0, -2 * 1.0 / (2 + 2)),
        ([1, 1, 0, 0], [0, 0, 1, 1], 1.0, -1.0 / 5.0),  # smoothing term
        ([0, 0, 0, 0], [0, 0, 0, 0], 1.0, -1.0),  # both empty
        ([0, 0, 0, 0], [0.5, 0, 0, 0], 1.0, -1.0 / 1.5),  # empty truth pushes p to 0
    ],
)
def test_dice_loss_hand_computed(truth, prob, smooth, expected):
    y_true = np.asarray(truth, "float32").reshape(1, 1, 2, 2, 1)
    y_pred = np.asarray(prob, "float32").reshape(1, 1, 2, 2, 1)
    assert float(DiceLoss(smooth=smooth)(y_true, y_pred)) == pytest.approx(expected, rel=1e-6)


def test_dice_loss_averages_per_sample_dice_over_the_batch():
    y_true = np.zeros((2, 4, 4, 4, 1), "float32")
    y_pred = np.zeros((2, 4, 4, 4, 1), "float32")
    y_true[0, :2] = 1  # 32 voxels, predicted exactly
    y_true[1, 0, 0, :2] = 1  # 2 voxels, predicted as 1 of them plus 1 false positive
    y_pred[0, :2] = 1
    y_pred[1, 0, 0, 1:3] = 1
    expected = -(1.0 + 0.5) / 2  # a pooled Dice would give -(2 * 33) / (34 + 34)
    assert float(DiceLoss(smooth=0.0)(y_true, y_pred)) == pytest.approx(expected, rel=1e-6)
    # a (N, D, H, W) truth without the channel axis is accepted
    assert float(DiceLoss(smooth=0.0)(y_true[..., 0], y_pred)) == pytest.approx(expected)


def test_losses_serialize_and_reject_bad_options():
    run_serialization_test(CoxLoss(ties="efron"))
    run_serialization_test(DiceLoss(smooth=0.5))
    with pytest.raises(InputError, match="smooth must not be negative"):
        DiceLoss(smooth=-1.0)
