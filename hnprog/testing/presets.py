"""Tiny models and presets with the preset contract, built in a second on the CPU.

Used by hnprog's model-zoo tests (presets, Hub, ensembles, cards) and usable by code built on
hnprog that needs a real preset folder without training one.

Example:
    >>> import hnprog
    >>> from hnprog.testing.presets import make_tiny_preset, tiny_images
    >>> folder = make_tiny_preset(tmp_path / "preset")  # doctest: +SKIP
    >>> hnprog.from_preset(folder).predict(tiny_images(1))["risk"].shape  # doctest: +SKIP
    (1, 1)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from hnprog.transforms import PreprocessConfig

__all__ = ["TINY_PREPROCESSING", "TINY_SHAPE", "make_tiny_preset", "tiny_images", "tiny_model"]

TINY_SHAPE = (16, 16, 16, 2)
# the record a tiny preset carries (hnprog.json 'preprocessing' without channel_order)
TINY_PREPROCESSING = PreprocessConfig(spacing=1.0, crop_size=TINY_SHAPE[0]).to_dict()


def tiny_model(seed: int = 0, *, outputs: tuple[str, ...] = ("risk", "segmentation"),
               unet: str | None = None) -> Any:
    """A small functional model with the preset contract: input ``"image"``, dict outputs.

    Args:
        seed: int. Keras random seed of the weights. Defaults to 0.
        outputs: tuple of str. ``"risk"`` and/or ``"segmentation"``. Defaults to both.
        unet: str, optional. ``"batch"`` or ``"se"``: a tiny
            ``hnprog.models.build_multitask_unet`` with that normalisation (``"se"`` uses
            hnprog's registered ``SENormalization`` layer). Defaults to None: a toy model with
            the same input and outputs, much faster to build and run.

    Returns:
        keras.Model. Input (batch, 16, 16, 16, 2); outputs ``"risk"`` (batch, 1) and/or
        ``"segmentation"`` (batch, 16, 16, 16, 1).
    """
    import keras

    keras.utils.set_random_seed(seed)
    if unet is not None:
        from hnprog.models import build_multitask_unet

        tasks = {("risk", "segmentation"): "multitask", ("risk",): "radiomics",
                 ("segmentation",): "segmentation"}[tuple(sorted(outputs))]
        return build_multitask_unet(input_shape=TINY_SHAPE, tasks=tasks, filters=(2, 4, 4, 8, 8),
                                    dense_units=4, normalization=unet)
    image = keras.Input(TINY_SHAPE, name="image")
    features = keras.layers.Conv3D(2, 3, padding="same", activation="relu")(image)
    heads = {}
    if "segmentation" in outputs:
        heads["segmentation"] = keras.layers.Conv3D(1, 1, activation="sigmoid",
                                                    name="segmentation")(features)
    if "risk" in outputs:
        pooled = keras.layers.GlobalAveragePooling3D()(features)
        heads["risk"] = keras.layers.Dense(1, name="risk")(pooled)
    return keras.Model(image, heads, name=f"tiny_{seed}")


def make_tiny_preset(folder: str | os.PathLike, seed: int = 0, **kwargs: Any) -> Path:
    """Save a tiny model as a preset with a fold, metrics and synthetic-data labels.

    Args:
        folder: str or PathLike. The preset folder to write.
        seed: int. Seed of the weights, also recorded as the fold; the test C-index is
            ``0.6125 + seed / 100``. Defaults to 0.
        **kwargs: override any argument of :func:`hnprog.presets.save_to_preset`, and
            ``model`` (defaults to ``tiny_model(seed)``).

    Returns:
        pathlib.Path. The preset folder.
    """
    from hnprog.presets import save_to_preset

    options: dict[str, Any] = dict(
        preprocessing=TINY_PREPROCESSING, fold=seed, n_folds=5, split_seed=0,
        dataset={"name": "hnprog synthetic cohort", "id": "hnprog-synthetic", "synthetic": True,
                 "n_patients": 20},
        training={"loss_weights": {"risk": 1.0, "segmentation": 1.0}, "epochs": 1},
        metrics={"test": {"c_index": 0.6125 + seed / 100, "dice": 0.25}},
    )
    options.update(kwargs)
    model = options.pop("model", None) or tiny_model(seed)
    return save_to_preset(model, folder, **options)


def tiny_images(n: int = 2, seed: int = 0) -> np.ndarray:
    """Random preprocessed images for a tiny preset: (n, 16, 16, 16, 2) float32."""
    return np.random.default_rng(seed).normal(size=(n, *TINY_SHAPE)).astype("float32")
