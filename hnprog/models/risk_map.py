"""Risk activation maps: where in the image the predicted risk comes from (Grad-CAM).

For the multi-task UNet the risk is a small dense head on the global average pools ``p_l`` of
the encoder levels' feature maps ``A_l`` (:func:`hnprog.models.unet.build_multitask_unet`).
The map of level ``l`` is Grad-CAM's (Selvaraju et al., ICCV 2017) weighted sum of its
channels, with the gradient of the risk ``y`` taken along the level's own pooling::

    M_l(v) = sum_k (dy / dp_lk) * (A_lk(v) - b_lk) / Z_l

with ``Z_l`` the voxels of level ``l`` and ``b_lk`` the channel's median over the image (its
background level, so that the uniform background, most of the volume, carries no share);
``sum_v M_l(v) = sum_k (dy / dp_lk) (p_lk - b_lk)``, the level's first-order share of the risk
relative to a background image.
The gradient of the dense head (ReLU hidden layer, linear output; dropout is off at
inference) is computed in closed form, so the maps need no automatic differentiation and run
on every Keras backend. Paths from a level through the deeper encoder levels are not
followed (each deeper level has its own map). Each level's map is upsampled trilinearly to
the network grid, the levels are summed, and negative values (evidence for a lower risk) are
set to 0, as in Grad-CAM.

The maps live on the network grid; :mod:`hnprog.predict` puts them back on the patient's CT
grid (``risk_map.nii.gz``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from scipy import ndimage

from hnprog.errors import InputError

__all__ = ["risk_activation_map"]

_HEAD_HIDDEN, _HEAD_OUTPUT, _POOLED = "risk_dense", "risk", "risk_concat"


def _pooling_layers(model: keras.Model) -> list[Any]:
    layers = sorted((layer for layer in model.layers if layer.name.startswith("risk_gap")),
                    key=lambda layer: int(layer.name.removeprefix("risk_gap")))
    names = {layer.name for layer in model.layers}
    if not layers or not {_HEAD_HIDDEN, _HEAD_OUTPUT, _POOLED} <= names:
        raise InputError(
            f"model {model.name!r} has no risk branch of build_multitask_unet (layers "
            f"risk_gap1.., {_POOLED}, {_HEAD_HIDDEN}, {_HEAD_OUTPUT}); a risk activation map "
            "needs a model with a risk output"
        )
    return layers


def _head_gradient(model: keras.Model, pooled: np.ndarray) -> np.ndarray:
    """``dy / dp`` of the risk head at the pooled features ``p``, shape ``(N, F)``."""
    hidden, output = model.get_layer(_HEAD_HIDDEN), model.get_layer(_HEAD_OUTPUT)
    if getattr(hidden.activation, "__name__", "") != "relu":
        raise InputError(f"the risk head's hidden layer must use ReLU; {hidden.name!r} uses "
                         f"{hidden.activation}")
    w1, b1 = (np.asarray(keras.ops.convert_to_numpy(v), np.float64) for v in hidden.weights[:2])
    w2 = np.asarray(keras.ops.convert_to_numpy(output.weights[0]), np.float64)[:, 0]
    active = (pooled @ w1 + b1) > 0  # (N, U)
    return (active * w2) @ w1.T


def risk_activation_map(
    model: keras.Model, image: np.ndarray, *, levels: Sequence[int] | None = None
) -> np.ndarray:
    """Grad-CAM map of the predicted risk on the network grid (see the module docstring).

    Args:
        model: keras.Model. An hnprog UNet with a risk output
            (:func:`hnprog.models.unet.build_multitask_unet`, a preset's ``model``).
        image: numpy.ndarray ``(N, D, H, W, 2)`` float32 (or ``(D, H, W, 2)``), the
            preprocessed ``[CT, PET]`` network input.
        levels: sequence of int, optional. The encoder levels (1 = full resolution) whose
            maps are summed. The deepest level usually carries most of the risk but has the
            coarsest voxels (16x the input's with five levels); the shallower ones give
            sharper, partial maps. Defaults to all levels.

    Returns:
        numpy.ndarray ``(N, D, H, W)`` float32 (or ``(D, H, W)``), >= 0: each voxel's share
        of the risk (log-hazard units per voxel), 0 where the voxel's evidence lowers it.

    Raises:
        InputError: on a model without the UNet's risk branch, an image of another shape or
            an unknown level.

    Example:
        >>> from hnprog.models.unet import build_multitask_unet
        >>> model = build_multitask_unet((16, 16, 16, 2), filters=(2, 4))
        >>> risk_activation_map(model, np.ones((16, 16, 16, 2), "float32")).shape
        (16, 16, 16)
    """
    image = np.asarray(image, dtype=np.float32)
    single = image.ndim == 4
    if single:
        image = image[None]
    expected = tuple(model.inputs[0].shape[1:])
    if image.ndim != 5 or any(e is not None and e != s for e, s in zip(expected, image.shape[1:])):
        raise InputError(f"image must have shape (N, *{expected}). Received: {image.shape}")
    pools = _pooling_layers(model)
    chosen = range(1, len(pools) + 1) if levels is None else [int(v) for v in levels]
    if not chosen or any(not 1 <= v <= len(pools) for v in chosen):
        raise InputError(f"levels must be among 1..{len(pools)}. Received: levels={levels}")
    features = keras.Model(model.inputs, [layer.input for layer in pools]
                           + [model.get_layer(_POOLED).output])
    outputs = features.predict({"image": image} if isinstance(model.input, dict) else image,
                               verbose=0)
    levels, pooled = outputs[:-1], np.asarray(outputs[-1], np.float64)
    gradient = _head_gradient(model, pooled)  # (N, sum of channels)
    size = image.shape[1:4]
    total = np.zeros((image.shape[0], *size), np.float64)
    start = 0
    for number, level in enumerate(levels, start=1):
        level = np.asarray(level, np.float64)
        channels = level.shape[-1]
        weights = gradient[:, start:start + channels]
        start += channels
        if number not in chosen:
            continue
        voxels = float(np.prod(level.shape[1:4]))
        background = np.median(level, axis=(1, 2, 3), keepdims=True)
        level_map = np.einsum("nzyxc,nc->nzyx", level - background, weights) / voxels
        factor = np.asarray(size, float) / np.asarray(level.shape[1:4], float)
        for n in range(len(level_map)):
            up = ndimage.zoom(level_map[n], factor, order=1, mode="nearest", grid_mode=True)
            total[n] += up / float(np.prod(factor))  # keeps the level's sum
    result = np.maximum(total, 0.0).astype(np.float32)
    return result[0] if single else result
