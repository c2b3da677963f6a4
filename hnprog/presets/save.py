"""Saving a model as a preset folder (:func:`save_to_preset`).

The folder's files are those of :mod:`hnprog.presets.format`. What the weights expect is
recorded in ``hnprog.json``; in particular the preprocessing, as a validated
:class:`hnprog.transforms.PreprocessConfig` (:func:`preprocessing_record`), so that every
preset that saves also loads for prediction: the record is refused at save time, naming the
field, if ``PreprocessConfig.from_recorded`` could not rebuild it.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hnprog import __version__
from hnprog.errors import InputError
from hnprog.io import atomic_path, atomic_write, write_json
from hnprog.presets.cards import render_card
from hnprog.presets.format import (
    CARD_FILE,
    CONFIG_FILE,
    FORMAT_VERSION,
    WEIGHTS_FILE,
    check_config_classes,
    checked_baseline,
    checked_clinical_model,
    sha256_file,
    write_metadata,
)
from hnprog.presets.preset import output_names

if TYPE_CHECKING:  # pragma: no cover
    import keras

    from hnprog.models.task import Task
    from hnprog.transforms import PreprocessConfig

# Keras, the task vocabulary (hnprog.models loads Keras) and the transforms are imported when
# a preset is saved, so that importing hnprog.presets to list or download presets stays light.

__all__ = [
    "INTENDED_USE",
    "RISK_MEANING",
    "SEGMENTATION_MEANING",
    "preprocessing_record",
    "save_to_preset",
]

INTENDED_USE = (
    "Research only. These weights are not a medical device and must not be used for "
    "diagnosis, prognosis or treatment decisions about patients."
)
RISK_MEANING = "Cox log-hazard; higher means worse (an earlier event). Not a survival probability."
SEGMENTATION_MEANING = "GTVt probability in [0, 1] per voxel; binary mask at 0.5."
CHANNEL_ORDER = ["CT", "PET"]


def save_to_preset(
    model: keras.Model,
    folder: str | os.PathLike,
    *,
    preprocessing: PreprocessConfig | Mapping[str, Any],
    name: str | None = None,
    description: str | None = None,
    task: str | Task | None = None,
    fold: int | None = None,
    n_folds: int | None = None,
    split_seed: int | None = None,
    endpoint: str = "progression-free survival",
    risk_threshold: float | None = None,
    baseline: Mapping[str, Any] | None = None,
    clinical_model: Mapping[str, Any] | None = None,
    dataset: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Mapping[str, float]] | None = None,
    license: str = "apache-2.0",
    overwrite: bool = False,
    write_card: bool = True,
) -> Path:
    """Write a model and its description as a preset folder.

    The files are written atomically one by one and ``hnprog.json`` last, so a folder without
    ``hnprog.json`` is never mistaken for a finished preset. A compiled model's compile
    settings are not stored: a preset holds the architecture and weights, and the training
    recipe is recorded in ``hnprog.json``.

    Args:
        model: keras.Model. A functional model with one input named ``"image"``
            (batch, D, H, W, 2) = [CT, PET] and named outputs ``"risk"`` (batch, 1) and/or
            ``"segmentation"`` (batch, D, H, W, 1), e.g. from
            ``hnprog.models.build_multitask_unet``.
        folder: str or PathLike. The preset folder to create.
        preprocessing: PreprocessConfig or dict. The preprocessing the weights expect
            (isotropic spacing in mm, crop size in voxels, CT clip in HU, ...). A dict (or an
            object with ``to_dict()``) is validated into a ``PreprocessConfig`` here, see
            :func:`preprocessing_record`. ``hnprog.json`` records the full config plus
            ``channel_order`` ``["CT", "PET"]``.
        name: str, optional. Preset name, e.g. ``"unet3d_multitask_hecktor_petct_fold0"``.
            Defaults to the folder name.
        description: str, optional. One sentence for ``list_presets`` and the card.
            Defaults to a sentence built from the task and dataset.
        task: str or Task, optional. ``"multitask"``, ``"radiomics"`` or
            ``"segmentation"`` (:class:`hnprog.models.task.Task`). Defaults to what the
            model's outputs imply.
        fold: int, optional. The cross-validation fold these weights come from. Defaults to
            None.
        n_folds: int, optional. The number of folds of the run. Defaults to None.
        split_seed: int, optional. The seed of the fold split. Defaults to None.
        endpoint: str. What the risk predicts. Defaults to ``"progression-free survival"``.
        risk_threshold: float, optional. Log-hazard above which a patient is called high
            risk (for example the median risk of the validation patients), recorded as
            ``outputs.risk.threshold`` and used by ``hnprog predict``. Defaults to None.
        baseline: dict, optional. The Breslow baseline cumulative hazard of the training
            patients (:func:`hnprog.survival.breslow_baseline`, times in days), recorded as
            ``outputs.risk.baseline``; ``hnprog predict`` turns risks into survival
            probabilities with it. Defaults to None (the preset predicts risks only).
        clinical_model: dict, optional. A Cox model on this model's risk and clinical
            covariates, fitted on the training patients
            (:func:`hnprog.radiomics.clinical.fit_deep_clinical_model`), recorded as
            ``outputs.risk.clinical``; ``hnprog predict --clinical`` applies it and the card
            lists the covariates it needs. Defaults to None.
        dataset: dict, optional. The training data: ``name`` (str), ``id`` (str, a short
            identifier used in the card's model-index), ``n_patients`` (int) and
            ``synthetic`` (bool; True labels the weights everywhere as synthetic-data weights
            for trying the tool). Defaults to ``{"name": "unknown"}``.
        training: dict, optional. The training recipe (loss weights, optimiser, learning
            rate, epochs, batch size, ...). Defaults to None.
        metrics: dict, optional. The run's own metrics per split, e.g.
            ``{"test": {"c_index": 0.71, "dice": 0.60}, "validation": {...}}``; values are
            finite floats. The card's model-index reports ``c_index`` and ``dice``.
            Defaults to None.
        license: str. A Hugging Face licence identifier for the weights. Defaults to
            ``"apache-2.0"``.
        overwrite: bool. Replace the files of an existing preset folder. Defaults to False.
        write_card: bool. Also write the ``README.md`` model card. Defaults to True.

    Returns:
        pathlib.Path. The preset folder.

    Raises:
        InputError: if the folder already holds files and ``overwrite`` is False, the model
            does not have the expected input and outputs or names classes outside Keras and
            hnprog, the preprocessing record is invalid (naming the field) or its
            ``crop_size`` differs from the model's fixed input grid, or another argument is
            invalid. Nothing is written then.

    Example:
        >>> from hnprog.models import build_multitask_unet  # doctest: +SKIP
        >>> from hnprog.transforms import PreprocessConfig
        >>> model = build_multitask_unet((32, 32, 32, 2), filters=(2, 4, 4, 8, 8))
        >>> save_to_preset(model, "my_preset",
        ...                preprocessing=PreprocessConfig(spacing=4.5, crop_size=32))
        >>> # the same record from a dict; a spacing of 3 equal numbers is one isotropic spacing
        >>> save_to_preset(model, "my_preset", overwrite=True,
        ...                preprocessing={"spacing": [4.5, 4.5, 4.5], "crop_size": 32})
    """
    import keras

    from hnprog.models.task import Task

    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise InputError(
            f"Preset folder {folder} already exists and is not empty; pass overwrite=True to "
            "replace it."
        )
    outputs = output_names(model)
    task = Task.parse(Task.from_outputs(outputs) if task is None else task)
    input_names = [t.name for t in model.inputs]
    if input_names != ["image"] or not set(outputs) <= {"risk", "segmentation"} or not outputs:
        raise InputError(
            "A preset model needs one input named 'image' and outputs named 'risk' and/or "
            f"'segmentation'. Received: inputs={input_names}, outputs={outputs}"
        )
    preprocessing = preprocessing_record(preprocessing)
    metrics = _check_metrics(metrics)
    for label, value in (("fold", fold), ("n_folds", n_folds), ("split_seed", split_seed)):
        if value is not None and (not isinstance(value, (int, np.integer)) or value < 0):
            raise InputError(f"{label} must be a non-negative integer. Received: {label}={value!r}")
    dataset = dict(dataset or {"name": "unknown"})
    name = name or folder.name

    config = keras.saving.serialize_keras_object(model)
    config.pop("compile_config", None)
    check_config_classes(config, source=f"model {model.name!r}")
    _check_grid(model, preprocessing)
    outputs_description = _outputs_description(outputs, endpoint, risk_threshold)
    if baseline is not None:
        if "risk" not in outputs_description:
            raise InputError("baseline needs a model with a 'risk' output")
        outputs_description["risk"]["baseline"] = checked_baseline(baseline)
    if clinical_model is not None:
        if "risk" not in outputs_description:
            raise InputError("clinical_model needs a model with a 'risk' output")
        outputs_description["risk"]["clinical"] = checked_clinical_model(clinical_model)

    write_json(config, folder / CONFIG_FILE)
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        model.save_weights(str(tmp))

    input_shape = list(model.inputs[0].shape[1:])
    metadata: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "description": description or _default_description(task, dataset),
        "task": task.value,
        "fold": None if fold is None else int(fold),
        "n_folds": None if n_folds is None else int(n_folds),
        "split_seed": None if split_seed is None else int(split_seed),
        "input": {"name": "image", "shape": input_shape, "channels": ["CT", "PET"],
                  "axes": "(batch, D, H, W, C) with D, H, W = z, y, x"},
        "outputs": outputs_description,
        "preprocessing": preprocessing,
        "dataset": dataset,
        "training": dict(training or {}),
        "metrics": metrics,
        "versions": {"hnprog": __version__, "keras": keras.__version__,
                     "backend": keras.backend.backend()},
        "license": license,
        "intended_use": INTENDED_USE,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "files": {f: sha256_file(folder / f) for f in (CONFIG_FILE, WEIGHTS_FILE)},
    }
    if write_card:
        with atomic_write(folder / CARD_FILE, encoding="utf-8") as f:
            f.write(render_card(metadata))
    write_metadata(folder, metadata)
    return folder


def _check_grid(model: Any, preprocessing: Mapping[str, Any]) -> None:
    """Prediction feeds the model crop_size^3 images: a fixed input grid must be that size."""
    grid = tuple(model.inputs[0].shape[1:4])
    crop = preprocessing["crop_size"]
    if all(size is not None for size in grid) and grid != (crop,) * 3:
        raise InputError(
            f"preprocessing crop_size must match the model's input grid {grid} (voxels): "
            f"prediction feeds the model crop_size^3 images. "
            f"Received: preprocessing['crop_size']={crop}"
        )


def _check_metrics(metrics: Mapping[str, Mapping[str, float]] | None) -> dict:
    checked: dict[str, dict[str, float]] = {}
    for split, values in (metrics or {}).items():
        if not isinstance(values, Mapping):
            raise InputError(
                "metrics must map a split name to {metric: value}, e.g. "
                f"{{'test': {{'c_index': 0.7}}}}. Received: metrics[{split!r}]={values!r}"
            )
        checked[str(split)] = {}
        for metric, value in values.items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = math.nan
            if not math.isfinite(number):
                raise InputError(
                    f"metric values must be finite numbers. Received: "
                    f"metrics[{split!r}][{metric!r}]={value!r}"
                )
            checked[str(split)][str(metric)] = number
    return checked


def _outputs_description(outputs: Sequence[str], endpoint: str,
                         risk_threshold: float | None = None) -> dict[str, Any]:
    description: dict[str, Any] = {}
    if "risk" in outputs:
        description["risk"] = {"shape": ["batch", 1], "meaning": RISK_MEANING,
                               "endpoint": endpoint}
        if risk_threshold is not None:
            if not math.isfinite(float(risk_threshold)):
                raise InputError(f"risk_threshold must be finite. Received: {risk_threshold!r}")
            description["risk"]["threshold"] = float(risk_threshold)
    if "segmentation" in outputs:
        description["segmentation"] = {"shape": ["batch", "D", "H", "W", 1],
                                       "meaning": SEGMENTATION_MEANING}
    return description


def _default_description(task: Task, dataset: Mapping[str, Any]) -> str:
    words = {"multitask": "Multi-task 3D UNet (GTVt segmentation + Cox risk)",
             "radiomics": "Deep radiomics 3D CNN (Cox risk)",
             "segmentation": "3D UNet GTVt segmentation"}[task.value]
    return f"{words} on FDG-PET/CT, trained on {dataset.get('name', 'unknown data')}."




# ---------------------------------------------------------------------------------------------
# The preprocessing record
# ---------------------------------------------------------------------------------------------


def preprocessing_record(preprocessing: PreprocessConfig | Mapping[str, Any] | Any
                         ) -> dict[str, Any]:
    """The ``preprocessing`` entry of ``hnprog.json``: a validated, complete record.

    Accepted forms:

    - a :class:`~hnprog.transforms.PreprocessConfig`;
    - a dict of its fields (missing ones take the config's defaults), where ``spacing`` may
      be one number or 3 equal numbers (one isotropic voxel size, in mm), numbers may be
      NumPy scalars and ``channel_order``, if given, must be ``["CT", "PET"]``; a recorded
      ``preprocessing`` of another preset is such a dict;
    - an object with ``to_dict()`` returning such a dict.

    Args:
        preprocessing: PreprocessConfig, dict or an object with ``to_dict()``.

    Returns:
        dict. ``PreprocessConfig.to_dict()`` plus ``"channel_order": ["CT", "PET"]``, which
        ``PreprocessConfig.from_recorded`` turns back into the same config.

    Raises:
        InputError: naming the field, for an unknown field, a spacing of 3 different numbers
            (hnprog resamples to isotropic grids), a value of the wrong type or out of range,
            another channel order, or an empty dict.

    Example:
        >>> preprocessing_record({"spacing": [4.5, 4.5, 4.5], "crop_size": 32})["spacing"]
        4.5
    """
    from hnprog.transforms import PreprocessConfig

    if isinstance(preprocessing, PreprocessConfig):
        config = preprocessing
    else:
        values = preprocessing
        if not isinstance(values, Mapping) and callable(getattr(values, "to_dict", None)):
            values = values.to_dict()
        if not isinstance(values, Mapping) or not values:
            raise InputError(
                "preprocessing must be a PreprocessConfig or a non-empty dict of its fields. "
                f"Received: preprocessing={preprocessing!r}"
            )
        config = _config_from_mapping(values)
    return {**config.to_dict(), "channel_order": list(CHANNEL_ORDER)}


def _config_from_mapping(values: Mapping[str, Any]) -> PreprocessConfig:
    from hnprog.transforms import PreprocessConfig

    known = [f.name for f in dataclasses.fields(PreprocessConfig)]
    checked: dict[str, Any] = {}
    for key, value in values.items():
        if key == "channel_order":
            _check_channel_order(value)
        elif key not in known:
            raise InputError(
                f"preprocessing has no field {key!r} (fields: {', '.join(known)}, "
                f"channel_order). Received: preprocessing[{key!r}]={value!r}"
            )
        else:
            checked[key] = _FIELD_CHECKS.get(key, _any)(key, value)
    try:
        return PreprocessConfig(**checked)
    except InputError as exc:
        raise InputError(f"preprocessing: {exc}") from None


def _received(key: str, value: Any) -> str:
    return f"Received: preprocessing[{key!r}]={value!r}"


def _is_number(value: Any) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
            and math.isfinite(float(value)))


def _items(value: Any) -> list[Any] | None:
    """The items of a list, tuple or 1-D array; None for anything else."""
    if isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim == 1):
        return list(value)
    return None


def _number(key: str, value: Any) -> float:
    if not _is_number(value):
        raise InputError(f"preprocessing {key} must be a finite number. {_received(key, value)}")
    return float(value)


def _integer(key: str, value: Any) -> int:
    if not _is_number(value) or float(value) != int(value):
        raise InputError(f"preprocessing {key} must be an integer. {_received(key, value)}")
    return int(value)


def _spacing(key: str, value: Any) -> float:
    items = _items(value)
    if items is None:
        return _number(key, value)
    if len(items) != 3 or not all(_is_number(v) for v in items):
        raise InputError(f"preprocessing {key} must be one voxel size in mm, or 3 equal ones. "
                         f"{_received(key, value)}")
    if len({float(v) for v in items}) != 1:
        raise InputError(
            f"preprocessing {key} must be isotropic (hnprog resamples to a cubic grid of one "
            f"voxel size): give one number of mm, or 3 equal ones. {_received(key, value)}"
        )
    return float(items[0])


def _pair(key: str, value: Any) -> tuple[float, float]:
    items = _items(value)
    if items is None or len(items) != 2 or not all(_is_number(v) for v in items):
        raise InputError(f"preprocessing {key} must be 2 numbers (low, high). "
                         f"{_received(key, value)}")
    return (float(items[0]), float(items[1]))


def _optional_integer(key: str, value: Any) -> int | None:
    return None if value is None else _integer(key, value)


def _flag(key: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"preprocessing {key} must be true or false. {_received(key, value)}")
    return bool(value)


def _any(key: str, value: Any) -> Any:
    """A field added to PreprocessConfig after this table: its own checks apply."""
    return value


_FIELD_CHECKS = {
    "spacing": _spacing,
    "crop_size": _integer,
    "ct_clip": _pair,
    "ct_outside": _number,
    "pet_outside": _number,
    "max_shift": _optional_integer,
    "max_rotation": _number,
    "mirror": _flag,
}


def _check_channel_order(value: Any) -> None:
    items = _items(value)
    if items is None or [str(c).upper() for c in items] != CHANNEL_ORDER:
        raise InputError(
            "preprocessing channel_order must be ['CT', 'PET'] (the order hnprog stacks the "
            f"channels in). {_received('channel_order', value)}"
        )
