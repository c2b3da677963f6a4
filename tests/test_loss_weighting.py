"""Uncertainty-weighted multi-task loss (Kendall, Gal and Cipolla, 2018): layer, loss, wiring."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from hnprog.errors import InputError
from hnprog.losses import CoxLoss, DiceLoss, UncertaintyWeightedLoss
from hnprog.models.layers import UncertaintyWeighting
from hnprog.models.unet import build_multitask_unet
from hnprog.testing import run_serialization_test

pytestmark = pytest.mark.backend_independent


def test_log_variances_are_trainable_and_serialise():
    layer = UncertaintyWeighting(("risk", "segmentation"))
    layer.build((None, 3))
    assert [v.name for v in layer.trainable_weights] == ["log_variances"]
    assert layer.weights_by_task() == {"risk": 1.0, "segmentation": 1.0}
    run_serialization_test(layer)
    with pytest.raises(InputError, match="distinct"):
        UncertaintyWeighting(("risk", "risk"))
    with pytest.raises(InputError, match="no task"):
        layer.index("centre")


def test_one_sgd_step_moves_the_log_variances_by_the_closed_form_gradient():
    """d/ds [exp(-s) (L + offset) + s] = 1 - exp(-s) (L + offset); one SGD step from s = 0."""
    keras.utils.set_random_seed(0)
    image = keras.Input((4, 4, 4, 1), name="image")
    features = keras.layers.Conv3D(2, 1, activation="relu")(image)
    segmentation = keras.layers.Conv3D(1, 1, activation="sigmoid", name="segmentation")(features)
    risk = keras.layers.Dense(1, name="risk")(keras.layers.GlobalAveragePooling3D()(features))
    weighting = UncertaintyWeighting(("risk", "segmentation"), name="loss_weighting")
    model = keras.Model({"image": image},
                        {"segmentation": segmentation, "risk": weighting(risk)})
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 4, 4, 4, 1)).astype("float32")
    mask = (rng.uniform(size=(4, 4, 4, 4, 1)) > 0.5).astype("float32")
    y = np.array([[10.0, 1.0], [20.0, 0.0], [30.0, 1.0], [40.0, 1.0]], "float32")
    predicted = model.predict({"image": x}, verbose=0)
    cox = float(CoxLoss()(y, predicted["risk"]))
    dice = float(DiceLoss()(mask, predicted["segmentation"]))
    rate = 0.1
    model.compile(
        optimizer=keras.optimizers.SGD(rate),
        loss={"risk": UncertaintyWeightedLoss(CoxLoss(), weighting, "risk"),
              "segmentation": UncertaintyWeightedLoss(DiceLoss(), weighting, "segmentation",
                                                      offset=1.0)},
    )
    total = model.train_on_batch({"image": x}, {"risk": y, "segmentation": mask})
    total = float(np.ravel(total)[0])
    assert total == pytest.approx(cox + (1.0 + dice), rel=1e-5)  # s = 0: plain sum
    expected = -rate * np.array([1.0 - cox, 1.0 - (1.0 + dice)])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(weighting.log_variances), expected,
                               rtol=1e-5, atol=1e-7)


def test_the_weighted_loss_is_minimal_where_the_variance_matches_the_loss():
    layer = UncertaintyWeighting(("risk",))
    layer.build(None)
    wrapped = UncertaintyWeightedLoss(CoxLoss(), layer, "risk")
    y = np.array([[100.0, 1.0], [200.0, 0.0], [300.0, 1.0]], "float32")
    h = np.zeros((3, 1), "float32")
    loss = float(CoxLoss()(y, h))  # (log 3 + log 1) / 2
    values = {}
    for s in (math.log(loss) - 0.3, math.log(loss), math.log(loss) + 0.3):
        layer.log_variances.assign(np.array([s], "float32"))
        values[s] = float(wrapped(y, h))
    best = min(values, key=values.get)
    assert best == pytest.approx(math.log(loss))
    assert values[best] == pytest.approx(1.0 + math.log(loss), rel=1e-5)


def test_unet_with_uncertainty_weighting_keeps_its_outputs_and_round_trips(tmp_path):
    from hnprog.testing import run_model_saving_test

    model = build_multitask_unet((16, 16, 16, 2), filters=(2, 4), loss_weighting="uncertainty")
    assert sorted(model.output) == ["risk", "segmentation"]
    layer = model.get_layer("loss_weighting")
    assert set(layer.tasks) == {"risk", "segmentation"}
    layer.log_variances.assign(np.array([0.5, -0.25], "float32"))
    run_model_saving_test(model, {"image": np.zeros((1, 16, 16, 16, 2), "float32")}, tmp_path)
    with pytest.raises(InputError, match="loss_weighting"):
        build_multitask_unet((16, 16, 16, 2), filters=(2, 4), loss_weighting="learnt")
