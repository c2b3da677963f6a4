"""Test-time augmentation: predict on the image and its left-right mirror, and average.

hnprog trains with left-right (x axis) flips when ``PreprocessConfig.mirror`` is on, so a
model has seen both sides; averaging its prediction on the image and on the mirrored image
(the segmentation mirrored back) removes part of its left-right bias at twice the cost of a
forward pass. It is off by default (``hnprog predict --tta``), because on a CPU the forward
pass is most of a prediction's time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["MIRROR_AXIS", "MirrorTTA"]

#: the x axis of a (N, D, H, W, C) network input: D, H, W = z, y, x
MIRROR_AXIS = 3


class MirrorTTA:
    """A predictor that averages another one's outputs on the image and its x mirror.

    It is a :class:`~hnprog.presets.preset.Predictor` with the wrapped one's
    ``preprocessing``, ``outputs``, ``metadata`` (and ``members``, ``source`` or ``name``
    when it has them, so reports name the same models).

    Args:
        predictor: Predictor. A Preset, ExportedPreset or FoldEnsemble.

    Example:
        >>> tta = MirrorTTA(hnprog.from_preset("unet3d_multitask_synthetic_petct"))
        ... # doctest: +SKIP
        >>> out = tta.predict(x)  # x: (N, D, H, W, 2), [CT, PET]  # doctest: +SKIP
    """

    def __init__(self, predictor: Any):
        self.predictor = predictor

    def __getattr__(self, name: str) -> Any:
        if name == "predictor":  # not set yet (unpickling)
            raise AttributeError(name)
        return getattr(self.predictor, name)

    def __repr__(self) -> str:
        return f"MirrorTTA({self.predictor!r})"

    @property
    def preprocessing(self) -> dict[str, Any] | None:
        """The wrapped predictor's preprocessing spec."""
        return self.predictor.preprocessing

    @property
    def outputs(self) -> list[str]:
        """The wrapped predictor's output names."""
        return self.predictor.outputs

    @property
    def metadata(self) -> Any:
        """The wrapped predictor's ``hnprog.json`` (a list for an ensemble)."""
        return self.predictor.metadata

    def predict(self, x: Any, *, batch_size: int = 1, verbose: int = 0) -> dict[str, np.ndarray]:
        """The mean of the predictions on ``x`` and on ``x`` mirrored along x.

        Args:
            x: array (N, D, H, W, 2) float32, [CT, PET], or ``{"image": array}``.
            batch_size: int. Images per forward pass. Defaults to 1.
            verbose: int. Keras progress output. Defaults to 0.

        Returns:
            dict. As the wrapped predictor: ``"risk"`` (N, 1) mean log-hazard,
            ``"segmentation"`` (N, D, H, W, 1) mean probability (the mirrored prediction
            mirrored back first), and for an ensemble ``"risk_fold_sd"`` (N, 1), the mean
            of the two spreads; float32.
        """
        image = np.asarray(x["image"] if isinstance(x, Mapping) else x, dtype="float32")
        plain = self.predictor.predict(image, batch_size=batch_size, verbose=verbose)
        mirrored = self.predictor.predict(np.flip(image, axis=MIRROR_AXIS).copy(),
                                          batch_size=batch_size, verbose=verbose)
        result = {}
        for key, value in plain.items():
            other = mirrored[key]
            if key == "segmentation":
                other = np.flip(other, axis=MIRROR_AXIS)
            result[key] = ((value.astype("float64") + other) / 2).astype("float32")
        return result
