"""Keras round-trip checks for hnprog models, layers and losses (used by its own test suite).

Each helper raises ``AssertionError`` with a message saying what differs, so it can be called
from any pytest test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras
import numpy as np

from hnprog.io import atomic_path

__all__ = ["run_model_saving_test", "run_serialization_test", "value_and_grad"]


def run_serialization_test(instance: Any) -> None:
    """Check that ``get_config`` -> ``from_config`` -> ``get_config`` round-trips exactly.

    Layers and losses go through ``keras.saving.serialize_keras_object`` (so registered
    classes are found); a functional model is re-created with ``from_config`` and compared
    layer by layer (the order of its layer list may change).

    Args:
        instance: a Keras layer, loss or functional model.

    Raises:
        AssertionError: if the re-created object or one of its layers has another config.
    """
    if isinstance(instance, keras.Model):
        restored = instance.__class__.from_config(instance.get_config())
        before = {layer.name: _as_json(layer.get_config()) for layer in instance.layers}
        after = {layer.name: _as_json(layer.get_config()) for layer in restored.layers}
        changed = sorted(name for name in before.keys() | after.keys()
                         if before.get(name) != after.get(name))
        assert not changed, f"config of layers {changed} changed in the round trip"
        assert list(restored.output_names) == list(instance.output_names)
        return
    serialized = keras.saving.serialize_keras_object(instance)
    restored = keras.saving.deserialize_keras_object(serialized)
    assert type(restored) is type(instance), f"{type(restored)} is not {type(instance)}"
    before = _as_json(serialized)
    after = _as_json(keras.saving.serialize_keras_object(restored))
    assert before == after, f"config changed in the round trip:\n{before}\n!=\n{after}"


def _as_json(config: Any) -> str:
    return json.dumps(config, sort_keys=True, default=str)


def run_model_saving_test(model: keras.Model, inputs: Any, directory: str | Path) -> None:
    """Check that ``.keras`` and ``.weights.h5`` round trips give identical outputs.

    The ``.keras`` file is loaded with ``safe_mode=True`` (no Lambda layers allowed); the
    weights file is loaded into a model re-built from ``model.get_config()``. Outputs are
    compared in inference mode (dropout off, batch norm on its moving statistics).

    Args:
        model: keras.Model. The model to save.
        inputs: array or dict of arrays. A batch to compare outputs on.
        directory: str or Path. Folder for the two files (created if needed).

    Raises:
        AssertionError: if any output differs.
    """
    directory = Path(directory)
    expected = model(inputs, training=False)

    with atomic_path(directory / "model.keras") as path:
        model.save(path)
    loaded = keras.saving.load_model(directory / "model.keras", safe_mode=True)
    _assert_same_outputs(expected, loaded(inputs, training=False), "the .keras round trip")

    with atomic_path(directory / "model.weights.h5") as path:
        model.save_weights(path)
    rebuilt = keras.Model.from_config(model.get_config())
    rebuilt.load_weights(directory / "model.weights.h5")
    _assert_same_outputs(expected, rebuilt(inputs, training=False), "the .weights.h5 round trip")


def _assert_same_outputs(expected: Any, actual: Any, what: str) -> None:
    if isinstance(expected, dict):
        assert set(expected) == set(actual), f"{what} changed the output names"
        for key in expected:
            np.testing.assert_array_equal(
                keras.ops.convert_to_numpy(actual[key]),
                keras.ops.convert_to_numpy(expected[key]),
                err_msg=f"{what} changed output {key!r}",
            )
    else:
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(actual),
            keras.ops.convert_to_numpy(expected),
            err_msg=f"{what} changed the output",
        )


def value_and_grad(fn, x: np.ndarray) -> tuple[float, np.ndarray]:
    """Value and gradient of a scalar keras.ops function, on the active backend.

    Args:
        fn: callable. Maps a tensor shaped like ``x`` to a scalar tensor.
        x: numpy.ndarray. The point.

    Returns:
        tuple ``(value, gradient)``: float and an array shaped like ``x``. Skips the calling
        pytest test on a backend without a helper.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        variable = tf.Variable(x)
        with tf.GradientTape() as tape:
            value = fn(variable)
        return float(value), tape.gradient(value, variable).numpy()
    if backend == "jax":
        import jax

        value, grad = jax.value_and_grad(lambda v: fn(v))(x)
        return float(value), np.asarray(grad)
    if backend == "torch":
        import torch

        variable = torch.tensor(x, requires_grad=True)
        value = fn(variable)
        value.backward()
        return float(value.detach()), variable.grad.numpy()
    import pytest

    pytest.skip(f"no gradient helper for backend {backend}")
