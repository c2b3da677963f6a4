"""Building blocks of the multi-task 3D UNet.

The blocks are made of built-in Keras layers wherever Keras has one (``Conv3D``,
``Conv3DTranspose``, ``UpSampling3D``, ``BatchNormalization``, ``GroupNormalization`` for
instance normalisation), so a saved model loads with ``safe_mode=True`` and shows every
convolution in ``model.summary()``. The custom layers are :class:`SENormalization` and the
two optional training layers :class:`GradientReversal` (centre-adversarial branch) and
:class:`UncertaintyWeighting` (learnt loss weights).

Tensors are channels last: ``(batch, D, H, W, C)`` (see the Concepts page).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers, ops

from hnprog.errors import InputError

__all__ = [
    "NORMALIZATIONS",
    "GradientReversal",
    "SENormalization",
    "UncertaintyWeighting",
    "make_normalization",
    "residual_block",
]

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


@keras.saving.register_keras_serializable(package="hnprog")
class GradientReversal(layers.Layer):
    """Identity in the forward pass, ``-weight`` times the gradient in the backward pass.

    The gradient reversal layer of domain-adversarial training (Ganin and Lempitsky, ICML
    2015): put between shared features and a domain (here: centre) classifier, it lets the
    classifier learn to recognise the domain while pushing the features below it to make
    the domain unrecognisable.

    Built on ``keras.ops.custom_gradient``, so it runs on the TensorFlow and JAX backends
    (tested) and on PyTorch through Keras' ``torch.autograd.Function`` wrapper (written for
    it, not tested here: PyTorch is not a dependency).

    Args:
        weight: float. Factor of the reversed gradient (Ganin's lambda), >= 0. Defaults to 1.0.
        **kwargs: passed to ``keras.layers.Layer``.

    Input shape:
        Any.

    Output shape:
        Same as the input (the same values).

    Raises:
        InputError: if ``weight`` is negative or not finite.

    Example:
        >>> import numpy as np
        >>> GradientReversal(0.5)(np.ones((2, 3), "float32")).shape
        (2, 3)
    """

    def __init__(self, weight: float = 1.0, **kwargs: Any):
        super().__init__(**kwargs)
        weight = float(weight)
        if not (weight >= 0 and weight < float("inf")):
            raise InputError(f"GradientReversal weight must be >= 0. Received: weight={weight}")
        self.weight = weight
        self.supports_masking = True

    def call(self, inputs: Any) -> Any:
        weight = self.weight

        @ops.custom_gradient
        def reverse(x: Any) -> Any:
            def grad(*args: Any, upstream: Any = None) -> Any:
                if upstream is None:  # TensorFlow and JAX pass the upstream gradient positionally
                    (upstream,) = args
                return ops.multiply(upstream, ops.cast(-weight, upstream.dtype))

            return ops.multiply(x, ops.cast(1.0, x.dtype)), grad

        return reverse(inputs)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"weight": self.weight})
        return config


@keras.saving.register_keras_serializable(package="hnprog")
class UncertaintyWeighting(layers.Layer):
    """Learnable log-variances ``s_i`` of the multi-task loss (Kendall, Gal and Cipolla, 2018).

    The layer holds one trainable scalar per task; the training loss of task ``i`` becomes
    ``exp(-s_i) * L_i + s_i`` (:class:`hnprog.losses.UncertaintyWeightedLoss`), so each task's
    weight ``exp(-s_i)`` is learnt with the network and settles where ``exp(s_i) = L_i``.
    This is the form of Kendall et al.'s Eq. 10 with the constant factors folded into ``s``
    (as in their classification case); it needs ``L_i >= 0`` (see the loss).

    In the model graph the layer is the identity on its input (the model input), so the
    log-variances are part of the model: trained by its optimizer, saved and loaded with its
    preset, and ignored at prediction.

    Args:
        tasks: sequence of str. Names of the weighted outputs, e.g. ``("risk",
            "segmentation")``. Defaults to ``("risk", "segmentation")``.
        **kwargs: passed to ``keras.layers.Layer``.

    Attributes:
        log_variances: Variable of shape ``(len(tasks),)``, initialised to 0 (weights 1).

    Example:
        >>> layer = UncertaintyWeighting(("risk", "segmentation"))
        >>> layer.build((None, 4))
        >>> [float(w) for w in layer.weights_by_task().values()]
        [1.0, 1.0]
    """

    def __init__(self, tasks: tuple[str, ...] | list[str] = ("risk", "segmentation"),
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.tasks = tuple(str(t) for t in tasks)
        if not self.tasks or len(set(self.tasks)) != len(self.tasks):
            raise InputError(f"tasks must be distinct names. Received: tasks={list(tasks)}")
        self.supports_masking = True

    def build(self, input_shape: Any = None) -> None:
        self.log_variances = self.add_weight(
            shape=(len(self.tasks),), initializer="zeros", trainable=True, name="log_variances",
            dtype="float32",
        )

    def index(self, task: str) -> int:
        """Position of ``task`` in :attr:`log_variances`.

        Raises:
            InputError: if the layer does not weight ``task``.
        """
        if task not in self.tasks:
            raise InputError(f"UncertaintyWeighting has no task {task!r}; it has {self.tasks}")
        return self.tasks.index(task)

    def weights_by_task(self) -> dict[str, float]:
        """The current weights ``exp(-s_i)`` by task name."""
        values = ops.convert_to_numpy(ops.exp(-self.log_variances))
        return {task: float(values[i]) for i, task in enumerate(self.tasks)}

    def call(self, inputs: Any) -> Any:
        return inputs

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"tasks": list(self.tasks)})
        return config
