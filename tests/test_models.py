"""Tests of hnprog.models: architecture, variants, shapes, dtypes and saving."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from hnprog.errors import InputError
from hnprog.losses import CoxLoss, DiceLoss
from hnprog.models import SENormalization, build_multitask_unet
from hnprog.testing import run_model_saving_test, run_serialization_test

pytestmark = pytest.mark.backend_independent

TINY = {"input_shape": (16, 16, 16, 2), "filters": (2, 4, 8), "dense_units": 4}


def tiny_batch(shape=(2, 16, 16, 16, 2), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def test_default_architecture_has_the_papers_parameter_count():
    model = build_multitask_unet()
    assert model.count_params() == 1_548_602
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 1_546_618
    assert model.input_shape == (None, 144, 144, 144, 2)
    assert model.get_layer("risk_concat").output.shape == (None, 8 + 16 + 32 + 64 + 128)
    # the level-1 block has a 7^3 kernel; decoder up-samples with stride-2 transposed convs
    assert model.get_layer("enc1_block1_conv").kernel.shape == (7, 7, 7, 2, 8)
    assert model.get_layer("dec1_upconv").strides == (2, 2, 2)
    # side outputs: x8, x4, x2
    assert [model.get_layer(f"dec{i}_side_up").size for i in (1, 2, 3)] == [
        (8, 8, 8),
        (4, 4, 4),
        (2, 2, 2),
    ]


@pytest.mark.parametrize(
    "task, outputs",
    [
        ("multitask", {"segmentation", "risk"}),
        ("radiomics", {"risk"}),
        ("segmentation", {"segmentation"}),
    ],
)
def test_variants_return_named_outputs_of_the_documented_shapes(task, outputs):
    model = build_multitask_unet(task=task, **TINY)
    result = model({"image": tiny_batch()}, training=False)
    assert set(result) == outputs
    if "segmentation" in outputs:
        seg = keras.ops.convert_to_numpy(result["segmentation"])
        assert seg.shape == (2, 16, 16, 16, 1)
        assert seg.min() >= 0.0 and seg.max() <= 1.0
    if "risk" in outputs:
        assert tuple(result["risk"].shape) == (2, 1)


def test_radiomics_variant_has_no_decoder_and_segmentation_no_risk_head():
    radiomics = build_multitask_unet(task="radiomics", **TINY)
    names = [layer.name for layer in radiomics.layers]
    assert not any(name.startswith("dec") for name in names)
    segmentation = build_multitask_unet(task="segmentation", **TINY)
    assert not any(layer.name.startswith("risk") for layer in segmentation.layers)
    multitask = build_multitask_unet(**TINY)
    assert multitask.count_params() > max(radiomics.count_params(), segmentation.count_params())
    with pytest.warns(DeprecationWarning, match="task="):  # the old keyword, one release
        assert build_multitask_unet(tasks="radiomics", **TINY).count_params() == \
            radiomics.count_params()


def test_non_cubic_input_sizes_divisible_by_the_pooling_factor():
    model = build_multitask_unet(input_shape=(8, 16, 24, 2), filters=(2, 4, 8), dense_units=4)
    result = model({"image": tiny_batch((1, 8, 16, 24, 2))}, training=False)
    assert tuple(result["segmentation"].shape) == (1, 8, 16, 24, 1)


@pytest.mark.skipif(
    keras.backend.backend() == "jax",
    reason="Keras' JAX backend takes minutes to trace convolutions with None spatial sizes",
)
def test_none_spatial_sizes_accept_any_multiple_of_16():
    model = build_multitask_unet(input_shape=(None, None, None, 2), filters=(2, 4, 8, 8, 8))
    for shape in [(1, 16, 16, 16, 2), (1, 32, 16, 48, 2)]:
        result = model({"image": tiny_batch(shape)}, training=False)
        assert tuple(result["segmentation"].shape) == shape[:4] + (1,)
        assert tuple(result["risk"].shape) == (1, 1)


@pytest.mark.parametrize("normalization", ["batch", "instance", "se"])
def test_keras_and_weights_round_trips_give_identical_outputs(normalization, tmp_path):
    model = build_multitask_unet(normalization=normalization, **TINY)
    # non-trivial weights and batch-norm statistics, so a bad reload would show
    model({"image": tiny_batch()}, training=True)
    run_model_saving_test(model, {"image": tiny_batch(seed=1)}, tmp_path / normalization)
    run_serialization_test(model)


def test_se_normalization_layer_serializes_and_normalizes():
    layer = SENormalization(reduction=4, epsilon=1e-3)
    run_serialization_test(layer)
    x = tiny_batch((2, 4, 4, 4, 8))
    y = keras.ops.convert_to_numpy(layer(x))
    assert y.shape == x.shape and np.isfinite(y).all()
    # gamma in (0, 1) and beta in (-1, 1): |y| <= |normalized x| + 1
    normalized = (x - x.mean(axis=(1, 2, 3), keepdims=True)) / np.sqrt(
        x.var(axis=(1, 2, 3), keepdims=True) + 1e-3
    )
    assert np.all(np.abs(y) <= np.abs(normalized) + 1.0 + 1e-5)


@pytest.mark.parametrize(
    "policy",
    ["mixed_bfloat16" if keras.backend.backend() == "tensorflow" else "mixed_float16"],
)
def test_outputs_stay_float32_under_mixed_precision(policy):
    keras.mixed_precision.set_dtype_policy(policy)
    try:
        model = build_multitask_unet(**TINY)
        result = model({"image": tiny_batch()}, training=False)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    assert model.get_layer("enc1_block1_conv").compute_dtype != "float32"
    assert keras.backend.standardize_dtype(result["segmentation"].dtype) == "float32"
    assert keras.backend.standardize_dtype(result["risk"].dtype) == "float32"


def test_one_training_step_with_both_losses_is_finite():
    model = build_multitask_unet(**TINY)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss={"risk": CoxLoss(), "segmentation": DiceLoss()},
    )
    x = tiny_batch((4, 16, 16, 16, 2))
    mask = (x[..., :1] > 1.0).astype("float32")
    y_risk = np.array([[100.0, 1.0], [200.0, 0.0], [300.0, 1.0], [50.0, 0.0]], "float32")
    history = model.fit(
        {"image": x}, {"risk": y_risk, "segmentation": mask}, batch_size=4, epochs=2, verbose=0
    )
    assert np.all(np.isfinite(history.history["loss"]))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"task": "survival"}, "task must be one of"),
        ({"normalization": "layer"}, "normalization must be one of"),
        ({"input_shape": (24, 24, 24, 2)}, "multiple of 16"),
        ({"input_shape": (32, 32, 32)}, r"\(D, H, W, channels\)"),
        ({"filters": (8,)}, "at least two"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"dense_units": 0}, "dense_units must be positive"),
    ],
)
def test_bad_arguments_raise_input_error(kwargs, match):
    with pytest.raises(InputError, match=match):
        build_multitask_unet(**kwargs)
