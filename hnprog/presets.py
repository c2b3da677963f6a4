"""Preset folders: save a trained model with everything needed to use it, and load it back safely.

A preset is a folder, the same on disk and on the Hugging Face Hub:

| file | content |
| --- | --- |
| `config.json` | the Keras 3 architecture (`keras.saving.serialize_keras_object`) |
| `model.weights.h5` | the weights (`model.save_weights`) |
| `README.md` | the model card (:mod:`hnprog.cards`) |
| `hnprog.json` | preprocessing, outputs, task, fold, training recipe, metrics, versions, licence, intended use and the sha256 of every other file |

:func:`from_preset` accepts a registered name (:func:`list_presets`), an ``hf://org/repo[@revision]``
URI, a local folder, a family name whose members are ``<family>_fold<k>``, or a list of any of
these (the last two give a :class:`hnprog.models.ensemble.FoldEnsemble`). It checks every file's
sha256 before building anything, rejects a ``config.json`` that names classes outside Keras and
hnprog, and builds the model with Keras' safe mode. Nothing is unpickled.

Registered presets live in ``hnprog/presets.json``; each pins a full 40-hex Hub commit (or a
folder shipped inside the package) and the sha256 of every file. The registry lists only weights
that exist.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import hashlib
import json
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hnprog import __version__
from hnprog.errors import InputError
from hnprog.hub import (
    HF_SCHEME,
    METADATA_FILE,
    download_preset_files,
    parse_hf_uri,
    validate_revision,
)
from hnprog.io import atomic_path, atomic_write, write_json

if TYPE_CHECKING:  # pragma: no cover
    import keras

    from hnprog.models.ensemble import FoldEnsemble

__all__ = [
    "Preset",
    "check_config_classes",
    "download_preset",
    "family_members",
    "from_preset",
    "list_families",
    "list_presets",
    "load_registry",
    "save_to_preset",
    "sha256_file",
    "verify_preset",
]

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
CARD_FILE = "README.md"
REGISTRY_PATH = Path(__file__).with_name("presets.json")

INTENDED_USE = (
    "Research only. These weights are not a medical device and must not be used for "
    "diagnosis, prognosis or treatment decisions about patients."
)
RISK_MEANING = "Cox log-hazard; higher means worse (an earlier event). Not a survival probability."
SEGMENTATION_MEANING = "GTVt probability in [0, 1] per voxel; binary mask at 0.5."
TASKS = ("multitask", "radiomics", "segmentation")

# Keras' own markers for tensors, arrays and Python values inside a config: harmless data.
_DATA_CLASS_NAMES = {"__keras_tensor__", "__tensor__", "__numpy__", "__bytes__", "__ellipsis__",
                     "__slice__"}
_FOLD_SUFFIX = re.compile(r"^(?P<family>.+)_fold(?P<fold>\d+)$")


# ---------------------------------------------------------------------------------------------
# Checksums and the security checks
# ---------------------------------------------------------------------------------------------


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes, as 64 lowercase hex digits (symlinks are followed).

    Args:
        path: str or PathLike. The file.

    Returns:
        str. The hex digest.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _allowed_module(module: str) -> bool:
    return module in ("keras", "hnprog", "builtins") or module.startswith(("keras.", "hnprog."))


def check_config_classes(config: Any, source: str = "config.json") -> None:
    """Refuse a Keras config that names a class or function outside Keras and hnprog.

    Every object in the config (at any depth) that has a ``class_name`` is checked: its
    ``module`` must be ``keras``/``keras.*``/``hnprog``/``hnprog.*`` (or ``builtins`` for
    Keras' built-in function names), a ``registered_name`` with a package must be
    ``hnprog>...``, and Python lambdas or TensorFlow type specs are refused. Keras safe mode
    refuses lambdas too; this check also refuses custom objects that another installed
    package may have registered.

    Args:
        config: dict. A config from ``config.json``.
        source: str. Named in the error message. Defaults to ``"config.json"``.

    Raises:
        InputError: naming the first offending class and where it sits in the config.
    """
    for where, node in _walk(config, "config"):
        if not isinstance(node, dict) or "class_name" not in node:
            continue
        class_name = node.get("class_name")
        module = node.get("module")
        registered = node.get("registered_name")
        if class_name in _DATA_CLASS_NAMES:
            continue
        problem = None
        if not isinstance(class_name, str) or class_name.startswith("__"):
            problem = (f"class_name={class_name!r} is not allowed (lambdas and type specs are "
                       "refused)")
        elif module is not None and (not isinstance(module, str) or not _allowed_module(module)):
            problem = f"module={module!r} is outside keras and hnprog"
        elif registered is not None and (
            not isinstance(registered, str)
            or (">" in registered and not registered.startswith("hnprog>"))
        ):
            problem = f"registered_name={registered!r} is not a keras or hnprog object"
        if problem:
            raise InputError(
                f"{source}: refusing to build a model from a config that names a class outside "
                f"keras and hnprog, at {where} ({class_name!r}): {problem}."
            )


def _walk(node: Any, where: str) -> Iterator[tuple[str, Any]]:
    yield where, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{where}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{where}[{index}]")


def verify_preset(
    folder: str | os.PathLike, *, expected_sha256: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Check a preset folder's files against ``hnprog.json`` (and a registry entry).

    Args:
        folder: str or PathLike. The preset folder.
        expected_sha256: mapping of file name to sha256, optional. Pinned checksums (from the
            registry), which may include ``hnprog.json`` itself. Defaults to None.

    Returns:
        dict. The parsed ``hnprog.json``.

    Raises:
        InputError: if ``hnprog.json`` is missing or invalid, lacks ``config.json`` or
            ``model.weights.h5``, or any file is missing or has another sha256 than recorded.
    """
    folder = Path(folder)
    metadata = _read_metadata(folder)
    files = metadata["files"]
    for required in (CONFIG_FILE, WEIGHTS_FILE):
        if required not in files:
            raise InputError(f"{folder / METADATA_FILE}: 'files' does not list {required}.")
    checks: list[tuple[str, str, str]] = [(name, digest, METADATA_FILE) for name, digest in
                                          files.items()]
    for name, digest in (expected_sha256 or {}).items():
        checks.append((name, digest, "the preset registry"))
    for name, digest, recorded_in in checks:
        path = folder / name
        if not path.is_file():
            raise InputError(f"preset {folder}: file {name} is missing (listed in {recorded_in}).")
        actual = sha256_file(path)
        if actual != digest:
            raise InputError(
                f"preset {folder}: sha256 mismatch for {name}: {recorded_in} records {digest}, "
                f"the file has {actual}. The file was modified or corrupted; refusing to load it."
            )
    return metadata


def _read_metadata(folder: Path) -> dict[str, Any]:
    path = folder / METADATA_FILE
    if not path.is_file():
        raise InputError(f"{folder} is not a preset folder: {METADATA_FILE} not found.")
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON ({exc}).") from None
    files = metadata.get("files") if isinstance(metadata, dict) else None
    if not isinstance(files, dict) or not all(
        isinstance(d, str) and re.fullmatch(r"[0-9a-f]{64}", d) for d in files.values()
    ):
        raise InputError(f"{path}: 'files' must map each file name to its sha256 (64 hex).")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise InputError(
            f"{path}: unsupported preset format. Received: "
            f"format_version={metadata.get('format_version')!r} (this hnprog reads "
            f"{FORMAT_VERSION})."
        )
    return metadata


# ---------------------------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------------------------


def save_to_preset(
    model: keras.Model,
    folder: str | os.PathLike,
    *,
    preprocessing: Mapping[str, Any] | Any,
    name: str | None = None,
    description: str | None = None,
    task: str | None = None,
    fold: int | None = None,
    n_folds: int | None = None,
    split_seed: int | None = None,
    endpoint: str = "progression-free survival",
    risk_threshold: float | None = None,
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
        preprocessing: dict, or an object with ``to_dict()`` such as
            ``hnprog.transforms.PreprocessConfig``. The preprocessing the weights expect
            (spacing in mm, crop size in voxels, CT clip in HU, PET normalisation). A
            ``channel_order`` of ``["CT", "PET"]`` is added when absent.
        name: str, optional. Preset name, e.g. ``"unet3d_multitask_hecktor_petct_fold0"``.
            Defaults to the folder name.
        description: str, optional. One sentence for ``list_presets`` and the card.
            Defaults to a sentence built from the task and dataset.
        task: str, optional. ``"multitask"``, ``"radiomics"`` or ``"segmentation"``.
            Defaults to what the model's outputs imply.
        fold: int, optional. The cross-validation fold these weights come from. Defaults to
            None.
        n_folds: int, optional. The number of folds of the run. Defaults to None.
        split_seed: int, optional. The seed of the fold split. Defaults to None.
        endpoint: str. What the risk predicts. Defaults to ``"progression-free survival"``.
        risk_threshold: float, optional. Log-hazard above which a patient is called high
            risk (for example the median risk of the validation patients), recorded as
            ``outputs.risk.threshold`` and used by ``hnprog predict``. Defaults to None.
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
            hnprog, or an argument is invalid.

    Example:
        >>> from hnprog.models import build_multitask_unet  # doctest: +SKIP
        >>> model = build_multitask_unet((16, 16, 16, 2), filters=(2, 4, 4, 8, 8))
        >>> save_to_preset(model, "my_preset", preprocessing={"spacing": [1.0, 1.0, 1.0]})
    """
    import keras

    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise InputError(
            f"Preset folder {folder} already exists and is not empty; pass overwrite=True to "
            "replace it."
        )
    outputs = _output_names(model)
    if task is None:
        task = {frozenset({"risk", "segmentation"}): "multitask", frozenset({"risk"}): "radiomics",
                frozenset({"segmentation"}): "segmentation"}.get(frozenset(outputs), None)
    if task not in TASKS:
        raise InputError(f"task must be one of {TASKS}. Received: task={task!r}")
    input_names = [t.name for t in model.inputs]
    if input_names != ["image"] or not set(outputs) <= {"risk", "segmentation"} or not outputs:
        raise InputError(
            "A preset model needs one input named 'image' and outputs named 'risk' and/or "
            f"'segmentation'. Received: inputs={input_names}, outputs={outputs}"
        )
    preprocessing = _preprocessing_dict(preprocessing)
    metrics = _check_metrics(metrics)
    for label, value in (("fold", fold), ("n_folds", n_folds), ("split_seed", split_seed)):
        if value is not None and (not isinstance(value, (int, np.integer)) or value < 0):
            raise InputError(f"{label} must be a non-negative integer. Received: {label}={value!r}")
    dataset = dict(dataset or {"name": "unknown"})
    name = name or folder.name

    config = keras.saving.serialize_keras_object(model)
    config.pop("compile_config", None)
    check_config_classes(config, source=f"model {model.name!r}")

    write_json(config, folder / CONFIG_FILE)
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        model.save_weights(str(tmp))

    input_shape = list(model.inputs[0].shape[1:])
    metadata: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "description": description or _default_description(task, dataset),
        "task": task,
        "fold": None if fold is None else int(fold),
        "n_folds": None if n_folds is None else int(n_folds),
        "split_seed": None if split_seed is None else int(split_seed),
        "input": {"name": "image", "shape": input_shape, "channels": ["CT", "PET"],
                  "axes": "(batch, D, H, W, C) with D, H, W = z, y, x"},
        "outputs": _outputs_description(outputs, endpoint, risk_threshold),
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
        from hnprog.cards import render_card

        with atomic_write(folder / CARD_FILE, encoding="utf-8") as f:
            f.write(render_card(metadata))
    write_metadata(folder, metadata)
    return folder


def write_metadata(folder: str | os.PathLike, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Recompute the sha256 of the preset's files and write ``hnprog.json`` atomically.

    The files recorded are ``config.json``, ``model.weights.h5`` and ``README.md`` when
    present. Call this after changing any of them (as :func:`hnprog.cards.write_card` does).

    Args:
        folder: str or PathLike. The preset folder.
        metadata: dict. The preset description; its ``files`` entry is replaced.

    Returns:
        dict. The metadata as written.
    """
    folder = Path(folder)
    metadata = copy.deepcopy(dict(metadata))
    metadata["files"] = {
        name: sha256_file(folder / name)
        for name in (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE)
        if (folder / name).is_file()
    }
    write_json(metadata, folder / METADATA_FILE)
    return metadata


def _output_names(model: Any) -> list[str]:
    output = getattr(model, "_outputs_struct", None)
    if isinstance(output, dict):
        return sorted(output)
    return list(getattr(model, "output_names", []) or [])


def _preprocessing_dict(preprocessing: Any) -> dict[str, Any]:
    if hasattr(preprocessing, "to_dict"):
        preprocessing = preprocessing.to_dict()
    if not isinstance(preprocessing, Mapping) or not preprocessing:
        raise InputError(
            "preprocessing must be a non-empty dict or a PreprocessConfig. "
            f"Received: preprocessing={preprocessing!r}"
        )
    spec = json.loads(json.dumps(dict(preprocessing), default=_json_default))
    spec.setdefault("channel_order", ["CT", "PET"])
    return spec


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.ndarray, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise InputError(f"preprocessing holds a value that is not JSON. Received: {value!r}")


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


def _default_description(task: str, dataset: Mapping[str, Any]) -> str:
    words = {"multitask": "Multi-task 3D UNet (GTVt segmentation + Cox risk)",
             "radiomics": "Deep radiomics 3D CNN (Cox risk)",
             "segmentation": "3D UNet GTVt segmentation"}[task]
    return f"{words} on FDG-PET/CT, trained on {dataset.get('name', 'unknown data')}."


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Preset:
    """A loaded preset: the Keras model with the description of what it expects and returns.

    Args:
        model: keras.Model. Input ``"image"`` (batch, D, H, W, 2) = [CT, PET]; outputs
            ``"risk"`` (batch, 1) Cox log-hazard (higher is worse) and/or ``"segmentation"``
            (batch, D, H, W, 1) GTVt probability.
        metadata: dict. The preset's ``hnprog.json``.
        path: pathlib.Path or None. The folder it was loaded from (a Hub cache snapshot for
            ``hf://`` presets); None for an in-memory model.
        source: str. What the user asked for (name, URI or folder).
    """

    model: Any
    metadata: dict[str, Any]
    path: Path | None = None
    source: str = ""

    @property
    def name(self) -> str:
        """The preset name recorded in ``hnprog.json``."""
        return str(self.metadata.get("name", self.source))

    @property
    def preprocessing(self) -> dict[str, Any] | None:
        """The preprocessing spec the weights expect (None for an in-memory model)."""
        return self.metadata.get("preprocessing")

    @property
    def outputs(self) -> list[str]:
        """The model's output names, sorted (``"risk"``, ``"segmentation"``)."""
        return _output_names(self.model)

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
        image = x["image"] if isinstance(x, Mapping) else x
        image = np.asarray(image, dtype="float32")
        expected = tuple(self.model.inputs[0].shape[1:])
        if image.ndim != 5 or image.shape[-1] != 2:
            raise InputError(
                "Expected images of shape (N, D, H, W, 2) with channels [CT, PET]. "
                f"Received: x.shape={image.shape}"
            )
        if any(e is not None and e != s for e, s in zip(expected, image.shape[1:])):
            raise InputError(
                f"preset {self.name} expects images of shape (N, {', '.join(map(str, expected))}). "
                f"Received: x.shape={image.shape}"
            )
        inputs = {"image": image} if isinstance(getattr(self.model, "_inputs_struct", None),
                                                 Mapping) else image
        result = self.model.predict(inputs, batch_size=batch_size, verbose=verbose)
        if not isinstance(result, dict):
            result = dict(zip(self.outputs, result if isinstance(result, list) else [result]))
        return {key: np.asarray(value, dtype="float32") for key, value in result.items()}


def load_preset_folder(folder: str | os.PathLike, *, source: str | None = None,
                       expected_sha256: Mapping[str, str] | None = None) -> Preset:
    """Verify a preset folder, then build its model safely and load its weights.

    Args:
        folder: str or PathLike. The preset folder (local or a Hub cache snapshot).
        source: str, optional. What the user asked for, kept on the result. Defaults to the
            folder path.
        expected_sha256: mapping, optional. Pinned checksums from the registry.

    Returns:
        Preset. The model and its description.

    Raises:
        InputError: if a checksum does not match, the config names classes outside Keras
            and hnprog, or Keras cannot build the model or load the weights.
    """
    import keras

    folder = Path(folder)
    metadata = verify_preset(folder, expected_sha256=expected_sha256)
    config_path = folder / CONFIG_FILE
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InputError(f"{config_path}: not valid JSON ({exc}).") from None
    check_config_classes(config, source=str(config_path))
    _register_hnprog_objects()
    try:
        model = keras.saving.deserialize_keras_object(config, safe_mode=True)
        model.load_weights(str(folder / WEIGHTS_FILE))
    except (ValueError, TypeError, KeyError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"preset {folder}: cannot build the model: {first_line}") from None
    return Preset(model=model, metadata=metadata, path=folder, source=source or str(folder))


def _register_hnprog_objects() -> None:
    """Import the hnprog modules that register custom Keras objects (``hnprog>...``)."""
    import importlib

    for module in ("hnprog.models.layers", "hnprog.losses", "hnprog.metrics"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


# ---------------------------------------------------------------------------------------------
# Registry and name resolution
# ---------------------------------------------------------------------------------------------


def load_registry(path: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """Read and check the preset registry.

    Each entry has a ``description``, a ``sha256`` map covering ``hnprog.json`` and every
    file, and either ``uri`` (``hf://org/repo@<40-hex commit>``) or ``path`` (a folder
    inside the installed package).

    Args:
        path: str or PathLike, optional. Defaults to ``hnprog/presets.json``.

    Returns:
        dict. Preset name to entry.

    Raises:
        InputError: if an entry is malformed, in particular a Hub entry not pinned to a
            full commit id.
    """
    path = Path(path) if path is not None else REGISTRY_PATH
    try:
        registry = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise InputError(f"preset registry {path}: not valid JSON ({exc}).") from None
    for name, entry in registry.items():
        where = f"preset registry {path}, entry {name!r}"
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), dict):
            raise InputError(f"{where}: needs a 'sha256' map of file name to checksum.")
        if METADATA_FILE not in entry["sha256"]:
            raise InputError(f"{where}: 'sha256' must pin {METADATA_FILE}.")
        if "uri" in entry:
            reference = parse_hf_uri(entry["uri"])
            if reference.revision is None:
                raise InputError(f"{where}: the uri must pin a commit: hf://org/repo@<commit>.")
            validate_revision(reference.revision, require_commit=True)
        elif "path" in entry:
            _packaged_folder(entry["path"], where)
        else:
            raise InputError(f"{where}: needs 'uri' (hf://org/repo@<commit>) or 'path'.")
    return registry


def _packaged_folder(relative: str, where: str) -> Path:
    root = Path(__file__).parent.resolve()
    folder = (root / relative).resolve()
    if root not in folder.parents:
        raise InputError(f"{where}: 'path' must stay inside the hnprog package. "
                         f"Received: path={relative!r}")
    return folder


def list_presets() -> dict[str, dict[str, Any]]:
    """The registered presets: name to registry entry (description, source, checksums).

    Returns:
        dict. A copy of the registry; empty when no preset is registered.

    Example:
        >>> import hnprog
        >>> for name, entry in hnprog.list_presets().items():  # doctest: +SKIP
        ...     print(name, entry["description"])
    """
    return copy.deepcopy(load_registry())


def family_members(name: str, registry: Mapping[str, Any] | None = None) -> list[str]:
    """The registered ``<name>_fold<k>`` presets of a family, ordered by fold.

    Args:
        name: str. The family name, e.g. ``"unet3d_multitask_synthetic_petct"``.
        registry: mapping, optional. Defaults to the package registry.

    Returns:
        list of str. Empty when ``name`` is not a family.
    """
    registry = load_registry() if registry is None else registry
    members = []
    for candidate in registry:
        match = _FOLD_SUFFIX.match(candidate)
        if match and match.group("family") == name:
            members.append((int(match.group("fold")), candidate))
    return [candidate for _, candidate in sorted(members)]


def list_families(registry: Mapping[str, Any] | None = None) -> dict[str, list[str]]:
    """The registered families: family name to its ``<family>_fold<k>`` members, by fold.

    A family name is accepted wherever a preset name is (:func:`from_preset`,
    :func:`download_preset`, ``hnprog predict --model``) and stands for all its folds.

    Args:
        registry: mapping, optional. Defaults to the package registry.

    Returns:
        dict. Sorted by family name; empty when no registered name ends in ``_fold<k>``. A
        family whose name is itself registered is left out: that name loads the one preset.

    Example:
        >>> import hnprog.presets
        >>> hnprog.presets.list_families()  # doctest: +SKIP
        {'unet3d_multitask_synthetic_petct': ['unet3d_multitask_synthetic_petct_fold1', ...]}
    """
    registry = load_registry() if registry is None else registry
    names = sorted({m.group("family") for m in map(_FOLD_SUFFIX.match, registry) if m}
                   - set(registry))  # a registered name wins over the family of that name
    return {name: family_members(name, registry) for name in names}


def _resolve(
    name_or_uri: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None,
    endpoint: str | None,
    local_files_only: bool,
) -> tuple[Path, dict[str, Any], Mapping[str, str] | None]:
    """Find (downloading if needed) and verify one preset; return its folder and metadata."""
    text = str(name_or_uri)
    registry = load_registry()
    hub = dict(cache_dir=cache_dir, endpoint=endpoint, local_files_only=local_files_only)
    if text in registry:
        entry = registry[text]
        expected = entry["sha256"]
        if "path" in entry:
            folder = _packaged_folder(entry["path"], f"preset {text!r}")
        else:
            folder = download_preset_files(parse_hf_uri(entry["uri"]), **hub)
    elif text.startswith(HF_SCHEME):
        expected = None
        folder = download_preset_files(parse_hf_uri(text), **hub)
    elif Path(text).is_dir():
        expected = None
        folder = Path(text)
    else:
        known = ", ".join(sorted(registry)) or "none registered yet"
        raise InputError(
            "A preset is a registered name, an hf://org/repo[@revision] URI or a preset "
            f"folder. Received: {text!r} (registered presets: {known})."
        )
    metadata = verify_preset(folder, expected_sha256=expected)
    return folder, metadata, expected


def download_preset(
    name_or_uri: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
    endpoint: str | None = None,
    local_files_only: bool = False,
) -> list[Path]:
    """Download presets into the Hugging Face cache and verify their checksums, without Keras.

    Args:
        name_or_uri: str or PathLike. A registered name, a family name (all its folds), an
            ``hf://org/repo[@revision]`` URI or a local preset folder.
        cache_dir: str or PathLike, optional. Hugging Face cache folder. Defaults to the
            Hugging Face default.
        endpoint: str, optional. Hub URL. Defaults to ``HF_ENDPOINT`` or huggingface.co.
        local_files_only: bool. Never use the network. Defaults to False.

    Returns:
        list of pathlib.Path. The verified preset folders (one per fold for a family).

    Raises:
        InputError: if the preset cannot be found or downloaded, or a checksum differs.
    """
    hub = dict(cache_dir=cache_dir, endpoint=endpoint, local_files_only=local_files_only)
    names = _expand_family(name_or_uri)
    return [_resolve(name, **hub)[0] for name in names]


def _expand_family(name_or_uri: str | os.PathLike) -> list[str | os.PathLike]:
    text = str(name_or_uri)
    if text in load_registry() or text.startswith(HF_SCHEME):
        return [name_or_uri]
    members = family_members(text)
    if members:
        return list(members)
    folder = Path(text)
    if folder.is_dir() and not (folder / METADATA_FILE).is_file():
        children = sorted(p for p in folder.iterdir() if (p / METADATA_FILE).is_file())
        if children:
            return list(children)
    return [name_or_uri]


def from_preset(
    name_or_uri: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    cache_dir: str | os.PathLike | None = None,
    endpoint: str | None = None,
    local_files_only: bool = False,
) -> Preset | FoldEnsemble:
    """Load a preset, checking every file's sha256 first; or a fold ensemble.

    Args:
        name_or_uri: str, PathLike or a list of them. One of:

            - a registered name (see :func:`list_presets`): files are checked against
              ``hnprog.json`` and against the checksums pinned in the registry;
            - ``hf://org/repo`` or ``hf://org/repo@revision`` (branch, tag or 40-hex commit;
              pin a commit for reproducible results): downloaded into the Hugging Face cache
              once, then loaded from the cache, also offline;
            - a local preset folder;
            - a family name with registered ``<family>_fold<k>`` members, a folder whose
              sub-folders are presets, or a list of any of the above: a
              :class:`~hnprog.models.ensemble.FoldEnsemble` of them.
        cache_dir: str or PathLike, optional. Hugging Face cache folder. Defaults to the
            Hugging Face default (``HF_HUB_CACHE`` or ``HF_HOME/hub``).
        endpoint: str, optional. Hub URL. Defaults to ``HF_ENDPOINT`` or huggingface.co.
        local_files_only: bool. Never use the network (also set by ``HF_HUB_OFFLINE=1``);
            when the Hub cannot be reached the cache is used anyway. Defaults to False.

    Returns:
        Preset or FoldEnsemble. ``.model`` (a ``Preset``), ``.metadata``,
        ``.preprocessing`` and ``.predict(x) -> {"risk": (N, 1), "segmentation":
        (N, D, H, W, 1)}`` on both.

    Raises:
        InputError: if the preset cannot be found or downloaded (and is not cached), a
            file's sha256 differs from ``hnprog.json`` or the registry, the config names
            classes outside Keras and hnprog, or ensemble members disagree on their
            preprocessing or outputs.

    Example:
        >>> import hnprog
        >>> uri = "hf://my-lab/unet3d_hecktor_petct_fold0@v1"
        >>> preset = hnprog.from_preset(uri)  # doctest: +SKIP
        >>> preset.preprocessing["spacing"]  # doctest: +SKIP
        >>> out = preset.predict(x)  # x: (N, 144, 144, 144, 2)  # doctest: +SKIP
    """
    hub = dict(cache_dir=cache_dir, endpoint=endpoint, local_files_only=local_files_only)
    if isinstance(name_or_uri, (str, os.PathLike)):
        names = _expand_family(name_or_uri)
        if len(names) == 1:
            folder, _, expected = _resolve(names[0], **hub)
            return load_preset_folder(folder, source=str(names[0]), expected_sha256=expected)
    else:
        names = list(name_or_uri)
        if not names:
            raise InputError("from_preset needs at least one preset. Received: an empty list")
    from hnprog.models.ensemble import FoldEnsemble

    members = []
    for name in names:
        folder, _, expected = _resolve(name, **hub)
        members.append(load_preset_folder(folder, source=str(name), expected_sha256=expected))
    return FoldEnsemble(members)
