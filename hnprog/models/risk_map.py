"""Risk activation maps: where in the image the predicted risk comes from.

Two methods, chosen with ``method=``:

- ``"occlusion"`` (the default): occlusion sensitivity (Zeiler and Fergus, ECCV 2014). Blocks
  of the input are replaced by the image's background (each channel's median) and the map
  holds, per voxel, how much the risk drops when its block is hidden. Coarse to fine: the
  cube is cut into 4 x 4 x 4 blocks, and the 8 blocks whose occlusion lowers the risk most are
  cut again into 2 x 2 x 2, so a map costs 1 + 64 + 64 forward passes of the risk branch
  (about 1.5 s for a 32^3 tiny model on 2 cores; minutes for the paper's 144^3 network on a
  CPU). It measures what the risk actually depends on, for any model, runtime or fold
  ensemble, and on a trained tiny model puts 0.91 of its mass within 10 mm of the GTVt.
- ``"gradcam"``: Grad-CAM over the encoder levels, one forward pass, described below. It is
  fast but coarse: on the same model only 0.20 of its mass lies within 10 mm of the GTVt,
  since the deepest level, which carries most of the risk, has the coarsest voxels.

For Grad-CAM: for the multi-task UNet the risk is a small dense head on the global average pools ``p_l`` of
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

import contextlib
import logging
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import keras
import numpy as np
from scipy import ndimage

from hnprog.errors import InputError

__all__ = ["RISK_MAP_METHODS", "risk_activation_map"]

_HEAD_HIDDEN, _HEAD_OUTPUT, _POOLED = "risk_dense", "risk", "risk_concat"
RISK_MAP_METHODS = ("occlusion", "gradcam")


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
    model: Any,
    image: np.ndarray,
    *,
    method: str = "occlusion",
    levels: Sequence[int] | None = None,
    blocks: int = 4,
    refine: int = 8,
    batch_size: int = 8,
) -> np.ndarray:
    """Map of where the predicted risk comes from, on the network grid (see the module
    docstring for the two methods).

    Args:
        model: keras.Model, or (occlusion only) a preset, fold ensemble or exported model:
            anything whose ``predict(x)`` returns ``{"risk": (N, 1)}``. An hnprog UNet with
            a risk output for Grad-CAM (:func:`hnprog.models.unet.build_multitask_unet`).
        image: numpy.ndarray ``(N, D, H, W, 2)`` float32 (or ``(D, H, W, 2)``), the
            preprocessed ``[CT, PET]`` network input.
        method: str. ``"occlusion"`` or ``"gradcam"``. Defaults to ``"occlusion"``.
        levels: sequence of int, optional. Grad-CAM only: the encoder levels (1 = full
            resolution) whose maps are summed. The deepest level usually carries most of the
            risk but has the coarsest voxels (16x the input's with five levels); the
            shallower ones give sharper, partial maps. Defaults to all levels.
        blocks: int. Occlusion only: blocks per axis of the first pass. Defaults to 4.
        refine: int. Occlusion only: how many first-pass blocks (those whose occlusion
            lowers the risk most) are cut into 2 x 2 x 2 in the second pass. Defaults to 8.
        batch_size: int. Occlusion only: occluded images per forward pass. Defaults to 8.

    Returns:
        numpy.ndarray ``(N, D, H, W)`` float32 (or ``(D, H, W)``), >= 0, log-hazard units
        per voxel. Occlusion: each voxel holds the risk drop of the finest block hidden
        around it, divided by that block's voxels. Grad-CAM: each voxel's share of the risk,
        0 where the voxel's evidence lowers it.

    Raises:
        InputError: on an unknown method, bad block counts, a Grad-CAM model without the
            UNet's risk branch, an image of another shape or an unknown level.

    Example:
        >>> from hnprog.models.unet import build_multitask_unet
        >>> model = build_multitask_unet((16, 16, 16, 2), filters=(2, 4))
        >>> risk_activation_map(model, np.ones((16, 16, 16, 2), "float32")).shape
        (16, 16, 16)
    """
    if method not in RISK_MAP_METHODS:
        raise InputError(f"method must be one of {RISK_MAP_METHODS}. Received: method={method!r}")
    if method == "occlusion":
        return _occlusion_map(model, image, blocks=blocks, refine=refine,
                              batch_size=batch_size)
    return _gradcam_map(model, image, levels=levels)


def _gradcam_map(model: keras.Model, image: np.ndarray,
                 levels: Sequence[int] | None) -> np.ndarray:
    """Grad-CAM over the encoder levels (the module docstring)."""
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
    with _quiet_tracing():
        outputs = features.predict({"image": image} if isinstance(model.input, dict)
                                   else image, verbose=0)
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


# model -> its risk branch as a model of its own (the encoder and the risk head, no decoder)
_RISK_BRANCHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _risk_function(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """``images (N, D, H, W, 2) -> risks (N,)`` for a Keras model (its risk branch only: the
    decoder is not run), a preset or fold ensemble of Keras models, or any predictor."""
    if isinstance(model, keras.Model):
        if _HEAD_OUTPUT not in {layer.name for layer in model.layers}:
            raise InputError(f"model {model.name!r} has no risk output (layer "
                             f"{_HEAD_OUTPUT!r}); a risk map needs a model with a risk output")
        risk_only = _RISK_BRANCHES.get(model)
        if risk_only is None:  # built once per model: a cohort run would trace it per patient
            risk_only = keras.Model(model.inputs, model.get_layer(_HEAD_OUTPUT).output)
            _RISK_BRANCHES[model] = risk_only
        dict_input = isinstance(model.input, dict)

        def run(batch: np.ndarray) -> np.ndarray:
            with _quiet_tracing():
                out = risk_only.predict_on_batch({"image": batch} if dict_input else batch)
            return np.asarray(out, np.float64).reshape(len(batch))

        return run
    members = getattr(model, "members", None)
    if members and all(isinstance(getattr(m, "model", None), keras.Model) for m in members):
        runs = [_risk_function(m.model) for m in members]
        return lambda batch: np.mean([r(batch) for r in runs], axis=0)
    if isinstance(getattr(model, "model", None), keras.Model):
        return _risk_function(model.model)
    if not callable(getattr(model, "predict", None)):
        raise InputError(f"a risk map needs a Keras model or a predictor with predict(); "
                         f"received {type(model).__name__}")

    def run_predictor(batch: np.ndarray) -> np.ndarray:
        out = model.predict(batch, batch_size=len(batch))
        if "risk" not in out:
            raise InputError("a risk map needs a model with a risk output")
        return np.asarray(out["risk"], np.float64).reshape(len(batch))

    return run_predictor


@contextlib.contextmanager
def _quiet_tracing() -> Iterator[None]:
    """Hide TensorFlow's "triggered tf.function retracing" warning: the risk branch (or the
    feature model of Grad-CAM) of each fold is a new model traced once, which TensorFlow
    reports as retracing (std logging; a no-op on the other backends)."""
    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level
    tf_logger.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        tf_logger.setLevel(level)


def _split(size: int, parts: int, start: int = 0) -> list[tuple[int, int]]:
    """``parts`` contiguous ranges ``(begin, end)`` covering ``start .. start + size``."""
    edges = np.linspace(0, size, min(parts, size) + 1).round().astype(int) + start
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def _occlusion_map(model: Any, image: np.ndarray, *, blocks: int, refine: int,
                   batch_size: int) -> np.ndarray:
    """Coarse-to-fine occlusion sensitivity (the module docstring)."""
    for name, value in (("blocks", blocks), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be a positive integer. Received: {name}={value!r}")
    if isinstance(refine, bool) or not isinstance(refine, int) or refine < 0:
        raise InputError(f"refine must be an integer >= 0. Received: refine={refine!r}")
    image = np.asarray(image, dtype=np.float32)
    single = image.ndim == 4
    if single:
        image = image[None]
    if image.ndim != 5 or image.shape[-1] != 2:
        raise InputError(f"image must have shape (N, D, H, W, 2). Received: {image.shape}")
    risk = _risk_function(model)
    maps = np.zeros(image.shape[:4], np.float32)
    for n, patient in enumerate(image):
        fill = np.median(patient.reshape(-1, 2), axis=0).astype(np.float32)

        def risks(boxes: list[Any]) -> np.ndarray:
            """The risk with each box occluded (None: the image itself), in batches of one
            size (a last short batch is padded), so that the model is traced once."""
            result = []
            for first in range(0, len(boxes), batch_size):
                chunk = boxes[first:first + batch_size]
                batch = np.repeat(patient[None], batch_size, axis=0)
                for k, box in enumerate(chunk):
                    if box is not None:
                        (z0, z1), (y0, y1), (x0, x1) = box
                        batch[k, z0:z1, y0:y1, x0:x1] = fill
                result.append(risk(batch)[:len(chunk)])
            return np.concatenate(result)

        coarse = [(z, y, x) for z in _split(patient.shape[0], blocks)
                  for y in _split(patient.shape[1], blocks)
                  for x in _split(patient.shape[2], blocks)]
        first_pass = risks([None, *coarse])
        reference = first_pass[0]
        coarse_drop = reference - first_pass[1:]
        order = [k for k in np.argsort(-coarse_drop, kind="stable")[:refine]
                 if coarse_drop[k] > 0]
        fine = [box for k in order for box in _sub_boxes(coarse[k])]
        fine_drop = reference - risks(fine) if fine else np.zeros(0)
        refined = set(order)
        for k, box in enumerate(coarse):
            if k not in refined:
                _paint(maps[n], box, coarse_drop[k])
        for box, value in zip(fine, fine_drop):
            _paint(maps[n], box, value)
    return maps[0] if single else maps


def _sub_boxes(box: tuple[tuple[int, int], ...]) -> list[tuple[tuple[int, int], ...]]:
    """The 2 x 2 x 2 sub-boxes of ``box`` (fewer along an axis one voxel long)."""
    halves = [_split(end - begin, 2, begin) for begin, end in box]
    return [(z, y, x) for z in halves[0] for y in halves[1] for x in halves[2]]


def _paint(target: np.ndarray, box: tuple[tuple[int, int], ...], drop: float) -> None:
    (z0, z1), (y0, y1), (x0, x1) = box
    voxels = (z1 - z0) * (y1 - y0) * (x1 - x0)
    target[z0:z1, y0:y1, x0:x1] = max(float(drop), 0.0) / voxels
