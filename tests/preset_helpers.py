"""Tiny models and presets shared by the model-zoo tests (presets, hub, ensemble, cards)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

PREPROCESSING = {"spacing": [1.0, 1.0, 1.0], "crop_size": 16, "ct_clip": [-1024.0, 1024.0],
                 "pet_normalisation": "zscore"}
SHAPE = (16, 16, 16, 2)


def tiny_model(seed: int = 0, *, outputs: tuple[str, ...] = ("risk", "segmentation"),
               unet: str | None = None):
    """A small functional model with the preset contract: input "image", dict outputs.

    With ``unet="batch"`` or ``"se"``, a tiny ``hnprog.models.build_multitask_unet`` with that
    normalisation (``"se"`` uses hnprog's registered ``SENormalization`` layer); otherwise a
    toy model with the same input and outputs, which is much faster to build and run.
    """
    import keras

    keras.utils.set_random_seed(seed)
    if unet is not None:
        from hnprog.models import build_multitask_unet

        task = {("risk", "segmentation"): "multitask", ("risk",): "radiomics",
                 ("segmentation",): "segmentation"}[tuple(sorted(outputs))]
        return build_multitask_unet(input_shape=SHAPE, task=task, filters=(2, 4, 4, 8, 8),
                                    dense_units=4, normalization=unet)
    image = keras.Input(SHAPE, name="image")
    features = keras.layers.Conv3D(2, 3, padding="same", activation="relu")(image)
    heads = {}
    if "segmentation" in outputs:
        heads["segmentation"] = keras.layers.Conv3D(1, 1, activation="sigmoid",
                                                    name="segmentation")(features)
    if "risk" in outputs:
        pooled = keras.layers.GlobalAveragePooling3D()(features)
        heads["risk"] = keras.layers.Dense(1, name="risk")(pooled)
    return keras.Model(image, heads, name=f"tiny_{seed}")


def make_preset(folder: Path, seed: int = 0, **kwargs) -> Path:
    """Save a tiny model as a preset with a fold, metrics and synthetic-data labels."""
    from hnprog.presets import save_to_preset

    options = dict(
        preprocessing=PREPROCESSING, fold=seed, n_folds=5, split_seed=0,
        dataset={"name": "hnprog synthetic cohort", "id": "hnprog-synthetic", "synthetic": True,
                 "n_patients": 20},
        training={"loss_weights": {"risk": 1.0, "segmentation": 1.0}, "epochs": 1},
        metrics={"test": {"c_index": 0.6125 + seed / 100, "dice": 0.25}},
    )
    options.update(kwargs)
    model = options.pop("model", None) or tiny_model(seed)
    return save_to_preset(model, folder, **options)


def images(n: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, *SHAPE)).astype("float32")
