"""A loaded preset (:class:`Preset`) and what every predictor offers (:class:`Predictor`).

:class:`Preset` is one Keras model with its ``hnprog.json``;
:class:`~hnprog.presets.exported.ExportedPreset` the same weights on OpenVINO or ONNX
Runtime; :class:`~hnprog.presets.ensemble.FoldEnsemble` is several of them predicting as
one, and :class:`~hnprog.presets.tta.MirrorTTA` adds test-time mirroring. All
satisfy :class:`Predictor`, the interface prediction code relies on: ``predict``,
``preprocessing``, ``outputs`` and ``metadata``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from hnprog.errors import InputError

__all__ = ["Predictor", "Preset", "PresetRecord", "check_images", "output_names"]


@runtime_checkable
class Predictor(Protocol):
    """What a loaded model offers prediction code: a :class:`Preset` or a ``FoldEnsemble``.

    Attributes:
        preprocessing: dict or None. The preprocessing the weights expect, as recorded in
            ``hnprog.json`` (rebuild it with
            ``hnprog.transforms.PreprocessConfig.from_recorded``); None when unknown.
        outputs: list of str. The output names, sorted: ``"risk"`` and/or
            ``"segmentation"``.
        metadata: dict, or a list of dicts for an ensemble. The ``hnprog.json`` contents.
    """

    @property
    def preprocessing(self) -> dict[str, Any] | None: ...

    @property
    def outputs(self) -> list[str]: ...

    @property
    def metadata(self) -> dict[str, Any] | list[dict[str, Any]]: ...

    def predict(self, x: Any, *, batch_size: int = 1, verbose: int = 0) -> dict[str, np.ndarray]:
        """Predict on preprocessed images.

        Args:
            x: array (N, D, H, W, 2) float32, channels [CT, PET], or ``{"image": array}``.
            batch_size: int. Images per forward pass. Defaults to 1.
            verbose: int. Keras progress output. Defaults to 0.

        Returns:
            dict. ``"risk"`` (N, 1) Cox log-hazard (higher is worse) and/or
            ``"segmentation"`` (N, D, H, W, 1) GTVt probability, float32; a fold ensemble
            also gives ``"risk_fold_sd"`` (N, 1), the spread of the risk across its folds.
        """
        ...


def output_names(model: Any) -> list[str]:
    """The output names of a Keras model: sorted keys of dict outputs, else ``output_names``.

    Args:
        model: keras.Model.

    Returns:
        list of str.
    """
    output = getattr(model, "_outputs_struct", None)
    if isinstance(output, dict):
        return sorted(output)
    return list(getattr(model, "output_names", []) or [])


def check_images(x: Any, expected: Sequence[int | None], name: str) -> np.ndarray:
    """The network input of a predictor, checked: ``x`` as a float32 (N, D, H, W, 2) array.

    Args:
        x: array (N, D, H, W, 2), channels [CT, PET], or ``{"image": array}``.
        expected: sequence of int or None. The model's input shape without the batch axis
            (D, H, W, 2); None for a free axis.
        name: str. The preset named in the error message.

    Returns:
        numpy.ndarray. float32 (N, D, H, W, 2).

    Raises:
        InputError: if ``x`` is not 5-D with 2 channels, or its spatial shape differs from a
            fixed model input shape.
    """
    image = x["image"] if isinstance(x, Mapping) else x
    image = np.asarray(image, dtype="float32")
    if image.ndim != 5 or image.shape[-1] != 2:
        raise InputError(
            "Expected images of shape (N, D, H, W, 2) with channels [CT, PET]. "
            f"Received: x.shape={image.shape}"
        )
    if any(e is not None and e != s for e, s in zip(expected, image.shape[1:])):
        raise InputError(
            f"preset {name} expects images of shape (N, {', '.join(map(str, expected))}). "
            f"Received: x.shape={image.shape}"
        )
    return image


class PresetRecord:
    """What every single-model predictor reads from its ``hnprog.json`` (``metadata``):
    its ``name`` and ``preprocessing``. A base of :class:`Preset` and of
    :class:`~hnprog.presets.exported.ExportedPreset`."""

    metadata: dict[str, Any]
    source: str

    @property
    def name(self) -> str:
        """The preset name recorded in ``hnprog.json``."""
        return str(self.metadata.get("name", self.source))

    @property
    def preprocessing(self) -> dict[str, Any] | None:
        """The preprocessing spec the weights expect (None for an in-memory model)."""
        return self.metadata.get("preprocessing")


@dataclasses.dataclass(frozen=True)
class Preset(PresetRecord):
    """A loaded preset: the Keras model with the description of what it expects and returns.

    Args:
        model: keras.Model. Input ``"image"`` (batch, D, H, W, 2) = [CT, PET]; outputs
            ``"risk"`` (batch, 1) Cox log-hazard (higher is worse) and/or ``"segmentation"``
            (batch, D, H, W, 1) GTVt probability.
        metadata: dict. The preset's ``hnprog.json``.
        path: pathlib.Path or None. The folder it was loaded from (a Hub cache snapshot for
            ``hf://`` presets); None for an in-memory model.
        source: str. What the user asked for (name, URI or folder).

    Example:
        >>> import hnprog
        >>> preset = hnprog.from_preset("unet3d_multitask_synthetic_petct_fold1")  # doctest: +SKIP
        >>> config = hnprog.PreprocessConfig.from_recorded(preset.preprocessing)  # doctest: +SKIP
        >>> out = preset.predict(x)  # x: (N, 32, 32, 32, 2), [CT, PET]  # doctest: +SKIP
    """

    model: Any
    metadata: dict[str, Any]
    path: Path | None = None
    source: str = ""

    @property
    def outputs(self) -> list[str]:
        """The model's output names, sorted (``"risk"``, ``"segmentation"``)."""
        return output_names(self.model)

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        """The model's input shape without the batch axis: (D, H, W, 2), None if free."""
        return tuple(self.model.inputs[0].shape[1:])

    def predict(self, x: Any, *, batch_size: int = 1, verbose: int = 0) -> dict[str, np.ndarray]:
        """Run the model on preprocessed images.

        Args:
            x: array (N, D, H, W, 2) float32, channels [CT, PET] preprocessed as
                :attr:`preprocessing` says, or ``{"image": array}``.
            batch_size: int. Images per forward pass. Defaults to 1.
            verbose: int. Keras progress output. Defaults to 0.

        Returns:
            dict. ``"risk"`` (N, 1) log-hazard and/or ``"segmentation"`` (N, D, H, W, 1)
            probabilities, as float32 NumPy arrays.

        Raises:
            InputError: if ``x`` is not 5-D with 2 channels, or its spatial shape differs
                from a fixed model input shape.
        """
        image = check_images(x, self.input_shape, self.name)
        inputs = {"image": image} if isinstance(getattr(self.model, "_inputs_struct", None),
                                                 Mapping) else image
        result = self.model.predict(inputs, batch_size=batch_size, verbose=verbose)
        if not isinstance(result, dict):
            result = dict(zip(self.outputs, result if isinstance(result, list) else [result]))
        return {key: np.asarray(value, dtype="float32") for key, value in result.items()}
