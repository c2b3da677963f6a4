"""Building blocks of the multi-task 3D UNet.

The blocks are made of built-in Keras layers wherever Keras has one (``Conv3D``,
``Conv3DTranspose``, ``UpSampling3D``, ``BatchNormalization``, ``GroupNormalization`` for
instance normalisation), so a saved model loads with ``safe_mode=True`` and shows every
convolution in ``model.summary()``. The only custom layer is :class:`SENormalization`.

Tensors are channels last: ``(batch, D, H, W, C)`` (see the Concepts page).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers, ops

from hnprog.errors import InputError

__all__ = ["NORMALIZATIONS", "SENormalization", "make_normalization", "residual_block"]

NORMALIZATIONS = ("batch", "instance", "se")


@keras.saving.register_keras_serializable(package="hnprog")
class SENormalization(layers.Layer):
    """Squeeze-and-excitation normalisation (SE-norm) of a 5D feature map.

    Instance normalisation without its own affine parameters, followed by a per-sample,
    per-channel scale ``gamma`` and shift ``beta`` computed from the input by two small
    squeeze-and-excitation branches: ``gamma = sigmoid(W2 relu(W1 GAP(x)))`` and
    ``beta = tanh(V2 relu(V1 GAP(x)))``. This is the normalisation of the HECKTOR 2020
    winning model (Iantsen et al., 2021).

    Args:
        reduction: int. Channel reduction ratio of the hidden layer of each
            squeeze-and-excitation branch. Defaults to 2.
        epsilon: float. Added to the variance for numerical stability. Defaults to 1e-5.
        **kwargs: passed to ``keras.layers.Layer`` (``name``, ``dtype``, ...).

    Input shape:
        ``(batch, D, H, W, C)``.

    Output shape:
        Same as the input.

    Example:
        >>> import numpy as np
        >>> layer = SENormalization()
        >>> layer(np.ones((1, 4, 4, 4, 8), "float32")).shape
        (1, 4, 4, 4, 8)
    """

    def __init__(self, reduction: int = 2, epsilon: float = 1e-5, **kwargs: Any):
        super().__init__(**kwargs)
        self.reduction = reduction
        self.epsilon = epsilon
        self.supports_masking = True

    def build(self, input_shape: tuple) -> None:
        channels = input_shape[-1]
        if channels is None:
            raise InputError(
                f"SENormalization needs a known channel count. Received: input_shape={input_shape}"
            )
        hidden = max(1, channels // self.reduction)
        self.gamma_hidden = layers.Dense(hidden, activation="relu", name="gamma_hidden")
        self.gamma_out = layers.Dense(channels, activation="sigmoid", name="gamma_out")
        self.beta_hidden = layers.Dense(hidden, activation="relu", name="beta_hidden")
        self.beta_out = layers.Dense(channels, activation="tanh", name="beta_out")
        for dense, size in (
            (self.gamma_hidden, channels),
            (self.gamma_out, hidden),
            (self.beta_hidden, channels),
            (self.beta_out, hidden),
        ):
            dense.build((None, size))

    def call(self, inputs: Any) -> Any:
        spatial_axes = (1, 2, 3)
        mean, variance = ops.moments(inputs, axes=spatial_axes, keepdims=True)
        normalized = (inputs - mean) * ops.rsqrt(variance + self.epsilon)
        squeezed = ops.mean(inputs, axis=spatial_axes)  # (batch, C)
        gamma = self.gamma_out(self.gamma_hidden(squeezed))
        beta = self.beta_out(self.beta_hidden(squeezed))
        gamma = ops.reshape(gamma, (-1, 1, 1, 1, ops.shape(gamma)[-1]))
        beta = ops.reshape(beta, (-1, 1, 1, 1, ops.shape(beta)[-1]))
        return normalized * gamma + beta

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"reduction": self.reduction, "epsilon": self.epsilon})
        return config


def make_normalization(normalization: str, name: str) -> layers.Layer:
    """Return a fresh normalisation layer for 5D channels-last feature maps.

    Args:
        normalization: str. ``"batch"`` (``BatchNormalization``), ``"instance"``
            (``GroupNormalization`` with one group per channel) or ``"se"``
            (:class:`SENormalization`).
        name: str. Name of the layer.

    Returns:
        keras.layers.Layer.

    Raises:
        InputError: if ``normalization`` is not one of the three.
    """
    if normalization == "batch":
        return layers.BatchNormalization(name=name)
    if normalization == "instance":
        return layers.GroupNormalization(groups=-1, name=name)
    if normalization == "se":
        return SENormalization(name=name)
    raise InputError(
        f"normalization must be one of {NORMALIZATIONS}. Received: normalization={normalization!r}"
    )


def residual_block(
    inputs: Any, filters: int, kernel_size: int, normalization: str, name: str
) -> Any:
    """Apply the authors' residual block to a functional-API tensor.

    Main path: ``Conv3D(filters, kernel_size, ReLU)`` then normalisation. Shortcut:
    ``Conv3D(filters, 1, ReLU)`` then normalisation. The two are summed (no activation after
    the sum). Padding is ``"same"``, so the spatial size is kept.

    Args:
        inputs: KerasTensor of shape ``(batch, D, H, W, C_in)``.
        filters: int. Output channels.
        kernel_size: int. Edge of the cubic kernel of the main path (7 or 3 in the paper).
        normalization: str. ``"batch"``, ``"instance"`` or ``"se"``.
        name: str. Prefix of the block's layer names.

    Returns:
        KerasTensor of shape ``(batch, D, H, W, filters)``.
    """
    main = layers.Conv3D(
        filters, kernel_size, padding="same", activation="relu", name=f"{name}_conv"
    )(inputs)
    main = make_normalization(normalization, f"{name}_norm")(main)
    shortcut = layers.Conv3D(filters, 1, activation="relu", name=f"{name}_shortcut_conv")(inputs)
    shortcut = make_normalization(normalization, f"{name}_shortcut_norm")(shortcut)
    return layers.Add(name=f"{name}_add")([main, shortcut])
