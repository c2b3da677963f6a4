"""Fine-tuning a trained model or preset on a new cohort.

The starting model is loaded through :func:`hnprog.presets.from_preset`: a registered preset
name, an ``hf://org/repo`` URI, a preset folder, or a run folder holding ``preset/`` (what
``train``, ``cv`` and ``finetune`` write). Its recorded preprocessing
(:class:`~hnprog.transforms.PreprocessConfig`: voxel spacing, crop size, CT window, ...) is
kept: the new cohort is prepared the same way and the fine-tuned preset records it again. The
encoder can be frozen and the learning rate is lower than for training from scratch (1e-4 by
default, :data:`~hnprog.training.config.FINETUNE_DEFAULTS`).

Run folders of older versions (``model.keras`` with ``preprocessing.json``) and bare
``.keras`` files still load for one release, with a :class:`DeprecationWarning`.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras

from hnprog.errors import InputError
from hnprog.models.task import Task
from hnprog.training.callbacks import output_names
from hnprog.training.config import FINETUNE_DEFAULTS, TrainingConfig
from hnprog.training.fit import (
    LEGACY_MODEL_FILE,
    LEGACY_PREPROCESSING_FILE,
    PRESET_DIR,
    TrainingResult,
)
from hnprog.training.runs import train_on_cohort

__all__ = [
    "ENCODER_PREFIXES",
    "FINETUNE_DEFAULTS",
    "finetune",
    "freeze_encoder",
    "load_start_model",
]

#: Layer-name prefixes of the UNet encoder (hnprog.models.build_multitask_unet).
ENCODER_PREFIXES = ("enc",)


def load_start_model(source: str | os.PathLike) -> tuple[keras.Model, Any]:
    """Load the model to fine-tune and the preprocessing recorded with it.

    Args:
        source: str or PathLike. A preset name, ``hf://`` URI or preset folder, or a run
            folder holding ``preset/``; deprecated for one release: an older run folder
            holding ``model.keras`` (and ``preprocessing.json``) or a ``.keras`` file.

    Returns:
        tuple ``(model, preprocessing)``: the uncompiled model and its
        :class:`~hnprog.transforms.PreprocessConfig`, or None for a ``.keras`` file saved
        without a ``preprocessing.json``.

    Raises:
        InputError: if the source cannot be found or loaded, or is an ensemble of presets.
    """
    from hnprog.presets import from_preset
    from hnprog.transforms import PreprocessConfig

    path = Path(source)
    if path.is_dir() and (path / PRESET_DIR).is_dir():
        source = path / PRESET_DIR
    elif path.suffix == ".keras" or (path / LEGACY_MODEL_FILE).is_file():
        return _load_legacy_model(path)
    preset = from_preset(source)
    if not hasattr(preset, "model"):
        raise InputError(f"{source} is an ensemble of presets; fine-tune one member at a time")
    recorded = preset.preprocessing
    if isinstance(recorded, Mapping):
        recorded = PreprocessConfig.from_recorded(recorded)
    return preset.model, recorded


def _load_legacy_model(path: Path) -> tuple[keras.Model, Any]:
    """A ``.keras`` file (or a run folder's ``model.keras``) with its ``preprocessing.json``."""
    from hnprog.transforms import PreprocessConfig

    if path.is_dir():
        path = path / LEGACY_MODEL_FILE
    if not path.is_file():
        raise InputError(f"model file not found: {path}")
    warnings.warn(
        f"loading {path} (a .keras model file) is deprecated and will be removed in the next "
        "release; re-export it as a preset folder with hnprog.save_to_preset(model, folder, "
        "preprocessing=PreprocessConfig(...)), or give a run folder holding preset/",
        DeprecationWarning, stacklevel=3,
    )
    from hnprog.presets.loading import load_keras_file

    model = load_keras_file(path)  # the presets' size, depth and class checks, then safe mode
    recorded = path.parent / LEGACY_PREPROCESSING_FILE
    if not recorded.is_file():
        return model, None
    return model, PreprocessConfig.from_recorded(json.loads(recorded.read_text()))


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
    centres: Mapping[str, Any] | None = None,
    clinical: str | os.PathLike | Any = None,
    endpoints: str | os.PathLike | Any = None,
    bboxes: str | os.PathLike | Mapping[str, Any] | None = None,
    skip_bad: bool = False,
    progress: bool = True,
) -> TrainingResult:
    """Fine-tune a saved preset (or run) on a cohort, keeping its preprocessing.

    ``data``, ``out_dir``, ``cache_dir``, ``resume``, ``overwrite``, ``verbose``,
    ``centres``, ``endpoints``, ``bboxes``, ``skip_bad`` (every patient is checked before
    training: :func:`hnprog.training.precheck.precheck_cohort`), ``progress`` and ``clinical`` (a deep + clinical Cox model refitted on the fine-tuned
    model's risks of its training patients) are those of :func:`~hnprog.training.runs.train_on_cohort`; the run folder ends
    with ``preset/``, the fine-tuned model. ``config.loss_weighting="uncertainty"`` and
    ``config.adversarial_centres`` add the loss-weighting layer (log-variances from 0, or the
    source's own) and a new centre branch to the loaded model
    (:func:`hnprog.models.unet.add_training_heads`).

    Args:
        source: str or PathLike. Where the starting model comes from (see
            :func:`load_start_model`).
        config: TrainingConfig, optional. Training settings; its ``preprocessing`` is
            replaced by the recorded one (it applies only to a ``.keras`` file that records
            none), its ``heads`` by the model's outputs (an output the model lacks gets loss
            weight 0), and its ``filters``, ``dropout`` and ``mixed_precision`` are unused (the
            model is already built). Defaults to ``TrainingConfig(**FINETUNE_DEFAULTS)``
            (20 epochs, learning rate 1e-4).
        freeze: bool. Freeze the encoder (train only the decoder and the risk head).
            Defaults to False.

    Returns:
        TrainingResult.

    Raises:
        InputError: on an unloadable source, a model whose input size differs from the
            recorded crop size, or any error of :func:`~hnprog.training.runs.train_on_cohort`.

    Example:
        >>> finetune("my_cohort/", "ft/", source="runs/fold1", freeze=True)  # doctest: +SKIP
    """
    config = config or TrainingConfig(**FINETUNE_DEFAULTS)
    model, preprocessing = load_start_model(source)
    outputs = [name for name in output_names(model) if name != "centre"]
    changes: dict[str, Any] = {
        "heads": Task.from_outputs(outputs),
        "w_rad": config.w_rad if "risk" in outputs else 0.0,
        "w_seg": config.w_seg if "segmentation" in outputs else 0.0,
        "extra": {**config.extra, "source": str(source), "freeze": freeze},
    }
    if preprocessing is not None:
        changes["preprocessing"] = preprocessing
    config = config.replace(**changes)
    input_size = model.inputs[0].shape[1]
    if input_size is not None and input_size != config.crop_size:
        raise InputError(
            f"model {source} takes {input_size}^3 inputs but the preprocessing crops "
            f"{config.crop_size}^3. Received: crop_size={config.crop_size}"
        )
    if freeze:
        freeze_encoder(model)
    return train_on_cohort(
        data, out_dir, config=config, model=model, cache_dir=cache_dir, resume=resume,
        overwrite=overwrite, verbose=verbose, centres=centres, clinical=clinical,
        endpoints=endpoints, bboxes=bboxes, skip_bad=skip_bad, progress=progress,
    )
