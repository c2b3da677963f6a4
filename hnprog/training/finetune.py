"""Fine-tuning a trained model or preset on a new cohort.

The starting model comes from a ``.keras`` file, a run folder of :func:`hnprog.training.train_model`
(``model.keras`` + ``preprocessing.json``) or a preset (a registered name, ``hf://org/repo`` or
a preset folder, loaded with :func:`hnprog.presets.from_preset`). Its recorded preprocessing
(voxel spacing and crop size) is kept: the new cohort is preprocessed the same way and the
fine-tuned model is saved with the same ``preprocessing.json``. The encoder can be frozen and
the learning rate is lower than for training from scratch (1e-4 by default).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import keras

from hnprog.errors import InputError
from hnprog.training.config import FINETUNE_DEFAULTS, TrainingConfig
from hnprog.training.trainer import PREPROCESSING_FILE, TrainingResult, train_on_cohort

__all__ = [
    "ENCODER_PREFIXES",
    "FINETUNE_DEFAULTS",
    "finetune",
    "freeze_encoder",
    "load_start_model",
]

#: Layer-name prefixes of the UNet encoder (hnprog.models.build_multitask_unet).
ENCODER_PREFIXES = ("enc",)



def load_start_model(source: str | os.PathLike) -> tuple[keras.Model, dict[str, Any] | None]:
    """Load the model to fine-tune and the preprocessing recorded with it.

    Args:
        source: str or PathLike. A ``.keras`` file (with an optional ``preprocessing.json``
            next to it), a folder holding ``model.keras``, or a preset name, ``hf://`` URI or
            preset folder.

    Returns:
        tuple ``(model, preprocessing)``: the uncompiled model and the preprocessing dict
        (``spacing`` in mm, ``crop_size`` in voxels, ...) or None when none is recorded.

    Raises:
        InputError: if the source cannot be found or loaded.
    """
    path = Path(source)
    if path.is_dir() and (path / "model.keras").is_file():
        path = path / "model.keras"
    if path.suffix == ".keras":
        if not path.is_file():
            raise InputError(f"model file not found: {path}")
        import hnprog.models  # noqa: F401  (registers the custom layers)

        try:
            model = keras.models.load_model(path, compile=False)
        except (ValueError, OSError) as exc:
            raise InputError(f"cannot load model {path}: {exc}") from None
        recorded = path.parent / PREPROCESSING_FILE
        preprocessing = json.loads(recorded.read_text()) if recorded.is_file() else None
        return model, preprocessing
    from hnprog.presets import from_preset

    preset = from_preset(source)
    if not hasattr(preset, "model"):
        raise InputError(f"{source} is an ensemble of presets; fine-tune one member at a time")
    return preset.model, preset.preprocessing


def freeze_encoder(model: keras.Model, prefixes: tuple[str, ...] = ENCODER_PREFIXES) -> int:
    """Make the encoder layers (names starting with one of ``prefixes``) not trainable.

    Batch-normalisation layers in a frozen encoder then run in inference mode (Keras
    behaviour), so their statistics stay those of the original training.

    Args:
        model: keras.Model. The UNet.
        prefixes: tuple of str. Encoder layer-name prefixes. Defaults to ``("enc",)``.

    Returns:
        int. The number of layers frozen.

    Raises:
        InputError: if no layer matches (not an hnprog UNet).
    """
    frozen = 0
    for layer in model.layers:
        if layer.name.startswith(prefixes):
            layer.trainable = False
            frozen += 1
    if not frozen:
        raise InputError(
            f"no encoder layer found (names starting with {prefixes}) in model {model.name!r}"
        )
    return frozen


def finetune(
    data: str | os.PathLike | Any,
    out_dir: str | os.PathLike,
    *,
    source: str | os.PathLike,
    config: TrainingConfig | None = None,
    freeze: bool = False,
    cache_dir: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
    verbose: int | str = "auto",
) -> TrainingResult:
    """Fine-tune a saved model or preset on a cohort, keeping its preprocessing.

    Args:
        data: str, PathLike or Cohort. The new cohort (with masks and endpoints).
        out_dir: str or PathLike. The run folder (``model.keras``, ``preprocessing.json``,
            ``history.csv``, ``checkpoint/``).
        source: str or PathLike. Where the starting model comes from (see
            :func:`load_start_model`).
        config: TrainingConfig, optional. Training settings; its ``spacing`` and
            ``crop_size`` are replaced by the recorded preprocessing (they apply only to a
            model that records none), and its ``filters``, ``dropout`` and
            ``mixed_precision`` are unused (the model is already built). Defaults to
            ``TrainingConfig(**FINETUNE_DEFAULTS)`` (20 epochs, learning rate 1e-4).
        freeze: bool. Freeze the encoder (train only the decoder and the risk head).
            Defaults to False.
        cache_dir: str or PathLike, optional. Case cache. Defaults to ``out_dir/cache``.
        resume: bool. Continue the run in ``out_dir``. Defaults to False.
        overwrite: bool. Replace the run in ``out_dir``. Defaults to False.
        verbose: int or str. Keras verbosity. Defaults to ``"auto"``.

    Returns:
        TrainingResult.

    Raises:
        InputError: on an unloadable source, a model whose input size differs from the
            recorded crop size, or any error of :func:`hnprog.training.trainer.train_on_cohort`.

    Example:
        >>> finetune("my_cohort/", "ft/", source="runs/fold1/model.keras",  # doctest: +SKIP
        ...          freeze=True)
    """
    config = config or TrainingConfig(**FINETUNE_DEFAULTS)
    model, preprocessing = load_start_model(source)
    if preprocessing:
        config = config.replace(
            spacing=float(preprocessing.get("spacing", config.spacing)),
            crop_size=int(preprocessing.get("crop_size", config.crop_size)),
        )
    input_size = model.inputs[0].shape[1]
    if input_size is not None and input_size != config.crop_size:
        raise InputError(
            f"model {source} takes {input_size}^3 inputs but the preprocessing crops "
            f"{config.crop_size}^3. Received: crop_size={config.crop_size}"
        )
    if freeze:
        freeze_encoder(model)
    config = config.replace(extra={
        **config.extra, "source": str(source), "freeze": freeze, "preprocessing": preprocessing,
    })
    return train_on_cohort(
        data, out_dir, config=config, model=model, cache_dir=cache_dir, resume=resume,
        overwrite=overwrite, verbose=verbose,
    )
