"""The domain-adversarial centre branch: gradient reversal, the centre head, its wiring."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from hnprog.errors import InputError
from hnprog.models.layers import GradientReversal
from hnprog.models.unet import add_training_heads, build_multitask_unet, without_centre_branch
from hnprog.testing import run_serialization_test, value_and_grad


@pytest.mark.backend_independent
def test_gradient_reversal_is_the_identity_forward():
    x = np.random.default_rng(0).normal(size=(3, 5)).astype("float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(GradientReversal(0.7)(x)), x)


@pytest.mark.backend_independent
@pytest.mark.parametrize("weight", [0.0, 0.3, 1.0, 2.5])
def test_gradient_reversal_multiplies_the_gradient_by_minus_weight(weight):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 3)).astype("float32")
    c = rng.normal(size=(4, 3)).astype("float32")
    layer = GradientReversal(weight)
    weights = keras.ops.convert_to_tensor(c)  # numpy * torch.Tensor has no operator
    value, grad = value_and_grad(lambda v: keras.ops.sum(weights * keras.ops.square(layer(v))), x)
    assert value == pytest.approx(float(np.sum(c * x**2)), rel=1e-5)
    np.testing.assert_allclose(grad, -weight * 2 * c * x, rtol=1e-6, atol=1e-7)  # d/dx = 2cx


@pytest.mark.backend_independent
def test_gradient_reversal_serialises_and_refuses_a_negative_weight():
    run_serialization_test(GradientReversal(0.25, name="reversal"))
    with pytest.raises(InputError, match=">= 0"):
        GradientReversal(-1.0)


@pytest.mark.backend_independent
def test_centre_branch_is_added_and_stripped_with_shared_weights():
    model = build_multitask_unet((16, 16, 16, 2), filters=(2, 4), dense_units=4)
    with_centre = add_training_heads(model, n_centres=3, adversarial_weight=0.5, dense_units=4)
    assert sorted(with_centre.output) == ["centre", "risk", "segmentation"]
    assert with_centre.get_layer("centre_reversal").weight == 0.5
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 16, 2)).astype("float32")
    out = with_centre.predict({"image": x}, verbose=0)
    np.testing.assert_allclose(out["centre"].sum(axis=1), 1.0, rtol=1e-5)
    stripped = without_centre_branch(with_centre)
    assert sorted(stripped.output) == ["risk", "segmentation"]
    np.testing.assert_allclose(stripped.predict({"image": x}, verbose=0)["risk"],
                               model.predict({"image": x}, verbose=0)["risk"], rtol=1e-6)
    with pytest.raises(InputError, match="at least 2"):
        add_training_heads(model, n_centres=1)
    segmentation_only = build_multitask_unet((16, 16, 16, 2), task="segmentation",
                                             filters=(2, 4))
    with pytest.raises(InputError, match="pooled encoder features"):
        add_training_heads(segmentation_only, n_centres=2)
