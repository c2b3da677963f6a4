"""The multi-task 3D UNet of Andrearczyk et al. (PRIME/MICCAI 2021) and its two variants."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import keras
from keras import layers

from hnprog.errors import InputError
from hnprog.models.layers import NORMALIZATIONS, GradientReversal, residual_block
from hnprog.models.task import Task

__all__ = ["LOSS_WEIGHTINGS", "add_training_heads", "build_multitask_unet",
           "without_centre_branch"]

#: How the task losses are weighted: the paper's fixed weights, or learnt (Kendall et al.).
LOSS_WEIGHTINGS = ("fixed", "uncertainty")


def build_multitask_unet(
    input_shape: Sequence[int | None] = (144, 144, 144, 2),
    task: Task | str = Task.MULTITASK,
    filters: Sequence[int] = (8, 16, 32, 64, 128),
    dropout: float = 0.5,
    dense_units: int = 128,
    normalization: str = "batch",
    name: str | None = None,
    seed: int | None = None,
    *,
    tasks: Task | str | None = None,
    loss_weighting: str = "fixed",
    n_centres: int | None = None,
    adversarial_weight: float = 1.0,
) -> keras.Model:
    """Build the multi-task 3D UNet that segments the GTVt and predicts a Cox log-hazard.

    The defaults give the authors' ``UnetRadiomics`` architecture: 1,548,602 parameters
    (1,546,618 trainable), 112.6 GFLOP per 144^3 forward pass:

    - **Encoder**, one level per entry of ``filters``. Level 1: a residual block with a 7^3
      kernel, then one with a 3^3 kernel. Every further level: 2x max-pooling, then two
      residual blocks with 3^3 kernels. A residual block sums ``conv(ReLU) + norm`` and a
      ``1x1 conv(ReLU) + norm`` shortcut.
    - **Decoder** (``task`` ``"multitask"`` and ``"segmentation"``), one level per encoder
      level but the deepest: a stride-2 3^3 transposed convolution (ReLU), concatenation of
      the encoder skip, one 3^3 convolution (ReLU). All decoder levels but the last emit a side
      output (1x1 convolution to ``filters[0]`` = 8 channels, upsampled to full size: x8, x4,
      x2 by default), summed into the last decoder feature map. Head: 3^3 convolution
      (``filters[0]`` channels, ReLU), then a 1x1 convolution with a sigmoid.
    - **Risk branch** (``task`` ``"multitask"`` and ``"radiomics"``): global average pooling
      of the output of every encoder level, concatenated (8+16+32+64+128 = 248 features),
      dropout, dense ``dense_units`` ReLU, dropout, dense 1 linear.

    Two optional training parts (off by default; models without them load as before), added
    by :func:`add_training_heads`:

    - ``loss_weighting="uncertainty"``: a ``"loss_weighting"`` layer holding one learnt
      log-variance per output (Kendall et al., 2018).
    - ``n_centres``: the domain-adversarial centre branch (Ganin and Lempitsky, 2015) on the
      pooled encoder features (the risk branch's input, also built for a segmentation-only
      model then): gradient reversal, a dense ``dense_units`` ReLU layer and a softmax over the
      training centres, output ``"centre"``.

    The output layers compute in float32 even under a ``mixed_float16`` policy.

    Reference: V. Andrearczyk et al., "Multi-task Deep Segmentation and Radiomics for
    Automatic Prognosis in Head and Neck Cancer", PRIME 2021, LNCS 12928.

    Args:
        input_shape: tuple of 4 ints or None. ``(D, H, W, 2)`` with channels ``[CT, PET]``.
            Each spatial size must be divisible by ``2 ** (len(filters) - 1)`` (16 by default)
            or be None (any such size at call time). Defaults to ``(144, 144, 144, 2)``.
        task: Task or str. The heads to build (:class:`hnprog.models.task.Task`):
            ``"multitask"`` (both outputs), ``"radiomics"`` (encoder and risk branch only: the
            paper's deep radiomics model) or ``"segmentation"`` (no risk branch).
            Defaults to ``"multitask"``.
        filters: sequence of int. Channels of each encoder level, shallowest first; at least
            two levels. Defaults to ``(8, 16, 32, 64, 128)``.
        dropout: float. Dropout rate before each dense layer of the risk branch, in [0, 1).
            Defaults to 0.5.
        dense_units: int. Width of the hidden dense layer of the risk branch. Defaults to 128.
        normalization: str. ``"batch"`` (the paper), ``"instance"`` (``GroupNormalization``
            with one group per channel) or ``"se"`` (squeeze-and-excitation normalisation,
            :class:`hnprog.models.layers.SENormalization`). Defaults to ``"batch"``.
        name: str, optional. Model name. Defaults to ``f"unet_{task}"``.
        seed: int, optional. Seed of the two dropout layers' masks (``seed`` and
            ``seed + 1``). Seeded masks come from SeedGenerator variables on every backend,
            which a training checkpoint stores; without a seed the PyTorch backend draws
            them from torch's global generator, so a resumed run no longer repeats an
            uninterrupted one exactly. Defaults to None (Keras' global seed).
        tasks: Task or str, optional. Deprecated alias of ``task``, removed in the next
            release.
        loss_weighting: str. ``"fixed"`` (the paper) or ``"uncertainty"`` (adds the
            ``"loss_weighting"`` layer). Defaults to ``"fixed"``.
        n_centres: int, optional. Number of training centres (>= 2) of the adversarial
            centre classifier. Defaults to None (no centre branch).
        adversarial_weight: float. Factor of the reversed gradient of the centre branch
            (>= 0). Defaults to 1.0.

    Returns:
        keras.Model with one input named ``"image"``, shape ``(N, D, H, W, 2)``, that returns
        a dict holding ``"segmentation"`` (``(N, D, H, W, 1)``, GTVt probabilities in [0, 1];
        threshold at 0.5) and/or ``"risk"`` (``(N, 1)``, log-hazard, higher means worse), and
        ``"centre"`` (``(N, n_centres)``) with the centre branch.

    Raises:
        InputError: on an unknown ``task``, ``normalization`` or ``loss_weighting``, a spatial
            size not divisible by ``2 ** (len(filters) - 1)``, fewer than two levels, a bad
            ``dropout``, fewer than two centres or a negative ``adversarial_weight``.

    Example:
        >>> model = build_multitask_unet((32, 32, 32, 2), filters=(4, 8, 16))
        >>> import numpy as np
        >>> out = model.predict(np.zeros((1, 32, 32, 32, 2), "float32"), verbose=0)
        >>> out["segmentation"].shape, out["risk"].shape
        ((1, 32, 32, 32, 1), (1, 1))
    """
    argument = "task"
    if tasks is not None:
        warnings.warn("build_multitask_unet(tasks=...) is deprecated; use task=...",
                      DeprecationWarning, stacklevel=2)
        task, argument = tasks, "tasks"
    task = Task.parse(task, name=argument)
    input_shape = tuple(input_shape)
    filters = tuple(int(f) for f in filters)
    _check_arguments(input_shape, filters, dropout, dense_units, normalization)
    _check_training_heads(loss_weighting, n_centres)
    with_decoder = "segmentation" in task.outputs
    with_risk = "risk" in task.outputs

    # === Encoder ===
    image = keras.Input(shape=input_shape, name="image")
    x = residual_block(image, filters[0], 7, normalization, name="enc1_block1")
    x = residual_block(x, filters[0], 3, normalization, name="enc1_block2")
    encoder_outputs = [x]
    for level, level_filters in enumerate(filters[1:], start=2):
        x = layers.MaxPooling3D(2, name=f"enc{level}_pool")(x)
        x = residual_block(x, level_filters, 3, normalization, name=f"enc{level}_block1")
        x = residual_block(x, level_filters, 3, normalization, name=f"enc{level}_block2")
        encoder_outputs.append(x)

    outputs = {}
    # === Decoder with summed side outputs ===
    if with_decoder:
        side_outputs = []
        n_decoder_levels = len(filters) - 1
        for step, skip_index in enumerate(range(n_decoder_levels - 1, -1, -1), start=1):
            skip = encoder_outputs[skip_index]
            level_filters = filters[skip_index]
            x = layers.Conv3DTranspose(
                level_filters,
                3,
                strides=2,
                padding="same",
                activation="relu",
                name=f"dec{step}_upconv",
            )(x)
            x = layers.Concatenate(name=f"dec{step}_concat")([x, skip])
            x = layers.Conv3D(
                level_filters, 3, padding="same", activation="relu", name=f"dec{step}_conv"
            )(x)
            if step < n_decoder_levels:
                side = layers.Conv3D(filters[0], 1, name=f"dec{step}_side_conv")(x)
                factor = 2 ** (n_decoder_levels - step)
                side = layers.UpSampling3D(factor, name=f"dec{step}_side_up")(side)
                side_outputs.append(side)
        if side_outputs:
            x = layers.Add(name="side_outputs_add")([x, *side_outputs])
        x = layers.Conv3D(
            filters[0], 3, padding="same", activation="relu", name="head_conv"
        )(x)
        outputs["segmentation"] = layers.Conv3D(
            1, 1, activation="sigmoid", dtype="float32", name="segmentation"
        )(x)

    # === Risk (deep radiomics) branch ===
    if with_risk or n_centres is not None:
        pooled = layers.Concatenate(name="risk_concat")([
            layers.GlobalAveragePooling3D(name=f"risk_gap{level}")(features)
            for level, features in enumerate(encoder_outputs, start=1)
        ])
    if with_risk:
        r = layers.Dropout(dropout, seed=seed, name="risk_dropout1")(pooled)
        r = layers.Dense(dense_units, activation="relu", name="risk_dense")(r)
        r = layers.Dropout(dropout, seed=None if seed is None else seed + 1,
                           name="risk_dropout2")(r)
        outputs["risk"] = layers.Dense(1, dtype="float32", name="risk")(r)

    # A dict of inputs matches the {"image": x} batches of CohortDataset, so Keras does not warn
    # about the input structure; plain arrays are still accepted by predict() and call().
    model = keras.Model(inputs={"image": image}, outputs=outputs, name=name or f"unet_{task}")
    if loss_weighting == "fixed" and n_centres is None:
        return model
    return add_training_heads(model, loss_weighting=loss_weighting, n_centres=n_centres,
                              adversarial_weight=adversarial_weight, dense_units=dense_units)


def add_training_heads(
    model: keras.Model,
    *,
    loss_weighting: str = "fixed",
    n_centres: int | None = None,
    adversarial_weight: float = 1.0,
    dense_units: int = 128,
) -> keras.Model:
    """The model with the optional training parts added (its layers and weights shared).

    Used by :func:`build_multitask_unet` and to fine-tune a preset that lacks them:

    - ``loss_weighting="uncertainty"``: an :class:`~hnprog.models.layers.UncertaintyWeighting`
      layer named ``"loss_weighting"`` holding one log-variance per output; it is the identity
      on the first output (so the log-variances are part of the model and its preset).
      Skipped when the model already has one.
    - ``n_centres``: the centre branch on the pooled encoder features (layer
      ``"risk_concat"``): :class:`~hnprog.models.layers.GradientReversal` (``"centre_reversal"``,
      ``adversarial_weight``), ``Dense(dense_units, relu)`` (``"centre_dense"``) and a softmax
      over the centres: output ``"centre"``. An existing branch is replaced.

    Args:
        model: keras.Model. A dict-output hnprog UNet.
        loss_weighting: str. ``"fixed"`` (nothing added) or ``"uncertainty"``.
        n_centres: int, optional. Number of training centres, >= 2. Defaults to None.
        adversarial_weight: float. Factor of the reversed gradient, >= 0. Defaults to 1.0.
        dense_units: int. Width of the centre classifier's hidden layer. Defaults to 128.

    Returns:
        keras.Model with the same input and outputs, plus ``"centre"`` with the branch.

    Raises:
        InputError: on an unknown ``loss_weighting``, fewer than 2 centres, or a centre
            branch asked of a model without pooled encoder features.
    """
    from hnprog.models.layers import UncertaintyWeighting

    _check_training_heads(loss_weighting, n_centres)
    outputs = {k: v for k, v in model.output.items() if k != "centre"}
    if n_centres is not None:
        names = {layer.name for layer in model.layers}
        if "risk_concat" not in names:
            raise InputError(f"model {model.name!r} has no pooled encoder features "
                             "(layer 'risk_concat') for the adversarial centre branch")
        pooled = model.get_layer("risk_concat").output
        c = GradientReversal(adversarial_weight, name="centre_reversal")(pooled)
        c = layers.Dense(dense_units, activation="relu", name="centre_dense")(c)
        outputs["centre"] = layers.Dense(n_centres, activation="softmax", dtype="float32",
                                         name="centre")(c)
    has_weighting = any(isinstance(layer, UncertaintyWeighting) for layer in model.layers)
    if loss_weighting == "uncertainty" and not has_weighting:
        tasks = tuple(k for k in outputs if k != "centre")
        outputs[tasks[0]] = UncertaintyWeighting(tasks, dtype="float32",
                                                 name="loss_weighting")(outputs[tasks[0]])
    return keras.Model(inputs=model.input, outputs=outputs, name=model.name)


def without_centre_branch(model: keras.Model) -> keras.Model:
    """The model without its ``"centre"`` output (the prediction model of a preset).

    The centre classifier is a training device; a preset keeps the risk and segmentation
    outputs (and the loss-weighting layer). Layers and weights are shared.

    Args:
        model: keras.Model. A dict-output hnprog UNet.

    Returns:
        keras.Model. ``model`` itself when it has no ``"centre"`` output.
    """
    if not isinstance(model.output, dict) or "centre" not in model.output:
        return model
    outputs = {k: v for k, v in model.output.items() if k != "centre"}
    return keras.Model(inputs=model.input, outputs=outputs, name=model.name)


def _check_training_heads(loss_weighting: str, n_centres: int | None) -> None:
    if loss_weighting not in LOSS_WEIGHTINGS:
        raise InputError(f"loss_weighting must be one of {LOSS_WEIGHTINGS}. "
                         f"Received: loss_weighting={loss_weighting!r}")
    if n_centres is not None and (isinstance(n_centres, bool)
                                  or not isinstance(n_centres, int) or n_centres < 2):
        raise InputError("the adversarial centre branch needs at least 2 training centres. "
                         f"Received: n_centres={n_centres!r}")


def _check_arguments(
    input_shape: tuple,
    filters: tuple[int, ...],
    dropout: float,
    dense_units: int,
    normalization: str,
) -> None:
    if normalization not in NORMALIZATIONS:
        raise InputError(
            f"normalization must be one of {NORMALIZATIONS}. "
            f"Received: normalization={normalization!r}"
        )
    if len(filters) < 2 or min(filters) < 1:
        raise InputError(
            f"filters must hold at least two positive channel counts. Received: filters={filters}"
        )
    if len(input_shape) != 4:
        raise InputError(
            f"input_shape must be (D, H, W, channels). Received: input_shape={input_shape}"
        )
    factor = 2 ** (len(filters) - 1)
    for size in input_shape[:3]:
        if size is not None and (size < factor or size % factor):
            raise InputError(
                f"each spatial size of input_shape must be a multiple of {factor} (2 ** "
                f"(len(filters) - 1)) or None. Received: input_shape={input_shape}"
            )
    if input_shape[3] is None or input_shape[3] < 1:
        raise InputError(
            f"input_shape needs a known channel count. Received: input_shape={input_shape}"
        )
    if not 0.0 <= dropout < 1.0:
        raise InputError(f"dropout must be in [0, 1). Received: dropout={dropout}")
    if dense_units < 1:
        raise InputError(f"dense_units must be positive. Received: dense_units={dense_units}")


def __getattr__(name: str) -> Any:
    if name == "TASKS":  # deprecated: the task vocabulary is hnprog.models.task.Task
        warnings.warn("hnprog.models.unet.TASKS is deprecated; use hnprog.models.task.Task",
                      DeprecationWarning, stacklevel=2)
        return tuple(task.value for task in Task)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
