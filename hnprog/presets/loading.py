"""Finding and loading presets: :func:`from_preset`, :func:`download_preset`, :func:`resolve`.

A preset is asked for by a registered name, an ``hf://org/repo[@revision]`` URI, a local
folder, a family name whose members are ``<family>_fold<k>``, a folder whose sub-folders are
presets, or a list of any of these. :func:`resolve` turns that into preset folders (downloading
Hub presets into the Hugging Face cache), each with the checksums the registry pins for it;
:func:`load_preset_folder` then verifies each file once
(:func:`hnprog.presets.format.read_preset`), builds the model from ``config.json`` with Keras'
safe mode after the class allow-list, and loads the weights. Nothing is unpickled.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hnprog.errors import InputError
from hnprog.presets.ensemble import FoldEnsemble
from hnprog.presets.exported import (
    ExportedPreset,
    choose_runtime,
    load_exported,
    measured_seconds,
)
from hnprog.presets.format import (
    CONFIG_FILE,
    METADATA_FILE,
    WEIGHTS_FILE,
    check_config_classes,
    check_json_bounds,
    preset_file,
    read_metadata,
    read_preset,
    verify_preset,
)
from hnprog.presets.hub import HF_SCHEME, cache_root, download_preset_files, parse_hf_uri
from hnprog.presets.preset import Preset
from hnprog.presets.registry import family_members, load_registry, packaged_folder

__all__ = [
    "KERAS_OBJECT_MODULES",
    "ResolvedPreset",
    "chosen_runtimes",
    "download_preset",
    "from_preset",
    "load_keras_file",
    "load_preset_folder",
    "resolve",
]

# The hnprog modules that register custom Keras objects (``hnprog>...``) when imported.
KERAS_OBJECT_MODULES = ("hnprog.models.layers", "hnprog.losses")

PresetSource = str | os.PathLike


@dataclasses.dataclass(frozen=True)
class ResolvedPreset:
    """One preset folder found for a request, not yet verified.

    Args:
        folder: pathlib.Path. The preset folder (a Hub cache snapshot for ``hf://`` presets).
        source: str. What was asked for (name, URI or folder).
        expected_sha256: dict or None. The checksums the registry pins (registered names).
        root: pathlib.Path or None. Where the folder's files may resolve to: the repository's
            cache folder for a Hub cache snapshot (its files link there), else None (the
            folder itself).
    """

    folder: Path
    source: str
    expected_sha256: Mapping[str, str] | None = None
    root: Path | None = None


def resolve(
    name_or_uri: PresetSource | Sequence[PresetSource],
    *,
    cache_dir: str | os.PathLike | None = None,
    endpoint: str | None = None,
    local_files_only: bool = False,
) -> list[ResolvedPreset]:
    """The preset folders a request stands for, downloading Hub presets if needed.

    Nothing is verified here; :func:`load_preset_folder` and :func:`download_preset` do that,
    once per file.

    Args:
        name_or_uri: str, PathLike or a list of them. A registered name, a family name (all
            its folds), an ``hf://org/repo[@revision]`` URI, a preset folder, a folder whose
            sub-folders are presets, or a list of any of these.
        cache_dir: str or PathLike, optional. Hugging Face cache folder. Defaults to the
            Hugging Face default.
        endpoint: str, optional. Hub URL. Defaults to ``HF_ENDPOINT`` or huggingface.co.
        local_files_only: bool. Never use the network. Defaults to False.

    Returns:
        list of ResolvedPreset. One for a single preset, one per member otherwise.

    Raises:
        InputError: if a request is none of the above, an empty list, or a Hub preset cannot
            be downloaded (and is not cached).
    """
    hub = dict(cache_dir=cache_dir, endpoint=endpoint, local_files_only=local_files_only)
    registry = load_registry()
    if isinstance(name_or_uri, (str, os.PathLike)):
        names = _expand(name_or_uri, registry)
    else:
        names = list(name_or_uri)
        if not names:
            raise InputError("from_preset needs at least one preset. Received: an empty list")
    return [_resolve_one(name, registry, **hub) for name in names]


def _expand(name_or_uri: PresetSource, registry: Mapping[str, object]) -> list[PresetSource]:
    """A family name or a folder of preset folders becomes its members; anything else itself."""
    text = str(name_or_uri)
    if text in registry or text.startswith(HF_SCHEME):
        return [name_or_uri]
    members = family_members(text, registry)
    if members:
        return list(members)
    folder = Path(text)
    if folder.is_dir() and not (folder / METADATA_FILE).is_file():
        children = sorted(p for p in folder.iterdir() if (p / METADATA_FILE).is_file())
        if children:
            return list(children)
    return [name_or_uri]


def _resolve_one(name_or_uri: PresetSource, registry: Mapping[str, dict], *,
                 cache_dir: str | os.PathLike | None, endpoint: str | None,
                 local_files_only: bool) -> ResolvedPreset:
    text = str(name_or_uri)
    hub = dict(cache_dir=cache_dir, endpoint=endpoint, local_files_only=local_files_only)
    expected = None
    if text in registry:
        entry = registry[text]
        expected = entry["sha256"]
        if "path" in entry:
            folder = packaged_folder(entry["path"], f"preset {text!r}")
        else:
            folder = download_preset_files(parse_hf_uri(entry["uri"]), **hub)
    elif text.startswith(HF_SCHEME):
        folder = download_preset_files(parse_hf_uri(text), **hub)
    elif Path(text).is_dir():
        folder = Path(text)
    else:
        known = ", ".join(sorted(registry)) or "none registered yet"
        raise InputError(
            "A preset is a registered name, an hf://org/repo[@revision] URI or a preset "
            f"folder. Received: {text!r} (registered presets: {known})."
        )
    return ResolvedPreset(folder=folder, source=text, expected_sha256=expected,
                          root=cache_root(folder))


def download_preset(
    name_or_uri: PresetSource,
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
    found = resolve(name_or_uri, cache_dir=cache_dir, endpoint=endpoint,
                    local_files_only=local_files_only)
    for item in found:
        verify_preset(item.folder, expected_sha256=item.expected_sha256, root=item.root)
    return [item.folder for item in found]


def load_preset_folder(
    folder: str | os.PathLike,
    *,
    source: str | None = None,
    expected_sha256: Mapping[str, str] | None = None,
    root: str | os.PathLike | None = None,
) -> Preset:
    """Verify a preset folder, then build its model safely and load its weights.

    Each file is hashed once: ``hnprog.json`` and ``config.json`` from the bytes that are
    then parsed, the weights before Keras reads them.

    Args:
        folder: str or PathLike. The preset folder (local or a Hub cache snapshot).
        source: str, optional. What the user asked for, kept on the result. Defaults to the
            folder path.
        expected_sha256: mapping, optional. Pinned checksums from the registry. Defaults to
            None.
        root: str or PathLike, optional. Where the folder's files may resolve to (see
            :func:`hnprog.presets.format.preset_file`). Defaults to the repository's cache
            folder for a Hugging Face cache snapshot, else the folder itself.

    Returns:
        Preset. The model and its description.

    Raises:
        InputError: if a file leaves the folder, a checksum does not match, the config names
            classes outside Keras and hnprog, or Keras cannot build the model or load the
            weights.
    """
    import keras

    folder = Path(folder)
    root = cache_root(folder) if root is None else root
    metadata, config = read_preset(folder, expected_sha256=expected_sha256, root=root)
    register_keras_objects()
    try:
        model = keras.saving.deserialize_keras_object(config, safe_mode=True)
    except (ValueError, TypeError, KeyError, OSError) as exc:
        raise InputError(f"preset {folder}: cannot build the model from {CONFIG_FILE}: "
                         f"{_first_line(exc)}") from None
    try:
        # Keras warns about every layer it cannot fill before it raises: the reason comes first.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            model.load_weights(str(preset_file(folder, WEIGHTS_FILE, root=root)))
    except (ValueError, TypeError, KeyError, OSError) as exc:
        raise InputError(
            f"preset {folder}: the weights in {WEIGHTS_FILE} do not fit the architecture in "
            f"{CONFIG_FILE} (weights of another model?): {_first_line(exc)}") from None
    return Preset(model=model, metadata=metadata, path=folder, source=source or str(folder))


def chosen_runtimes(found: Sequence[ResolvedPreset], runtime: str = "auto",
                    precision: str = "fp32") -> list[str]:
    """The runtime each resolved preset runs on, decided from the ``hnprog.json`` files alone
    (no Keras): :func:`hnprog.presets.exported.choose_runtime` with, for ``"auto"``, the
    measurements of all of them pooled, so the folds of an ensemble run alike.

    Args:
        found: sequence of ResolvedPreset. From :func:`resolve`.
        runtime: str. ``"auto"``, ``"keras"``, ``"openvino"`` or ``"onnx"``. Defaults to
            ``"auto"``.
        precision: str. ``"fp32"`` or ``"bf16"``. Defaults to ``"fp32"``.

    Returns:
        list of str, one runtime per preset.

    Raises:
        InputError: as :func:`~hnprog.presets.exported.choose_runtime` (bf16 on a CPU without
            it, a runtime a preset was not exported to or that is not installed).
    """
    if runtime == "keras" and precision == "fp32":
        return ["keras"] * len(found)
    metadatas = [read_metadata(item.folder, root=item.root) for item in found]
    measured = measured_seconds(metadatas) if runtime == "auto" else None
    return [choose_runtime(metadata, runtime, precision, where=item.folder, measured=measured)
            for metadata, item in zip(metadatas, found)]


def _load(item: ResolvedPreset, runtime: str, precision: str) -> Preset | ExportedPreset:
    """One resolved preset on its runtime (:func:`chosen_runtimes`)."""
    if runtime == "keras":
        return load_preset_folder(item.folder, source=item.source,
                                  expected_sha256=item.expected_sha256, root=item.root)
    return load_exported(item.folder, runtime, precision=precision, source=item.source,
                         expected_sha256=item.expected_sha256, root=item.root)


def register_keras_objects() -> None:
    """Import the hnprog modules that register custom Keras objects (``hnprog>...``).

    Keras finds a registered class only once its module is imported; a preset of a model
    with hnprog layers (``SENormalization``) needs them before it is built.
    """
    for module in KERAS_OBJECT_MODULES:
        importlib.import_module(module)


def from_preset(
    name_or_uri: PresetSource | Sequence[PresetSource],
    *,
    cache_dir: str | os.PathLike | None = None,
    endpoint: str | None = None,
    local_files_only: bool = False,
    runtime: str = "keras",
    precision: str = "fp32",
) -> Preset | ExportedPreset | FoldEnsemble:
    """Load a preset, checking every file's sha256 first; or a fold ensemble.

    Args:
        name_or_uri: str, PathLike or a list of them. One of:

            - a registered name (see :func:`hnprog.presets.list_presets`): files are checked
              against ``hnprog.json`` and against the checksums pinned in the registry;
            - ``hf://org/repo`` or ``hf://org/repo@revision`` (branch, tag or 40-hex commit;
              pin a commit for reproducible results): downloaded into the Hugging Face cache
              once, then loaded from the cache, also offline;
            - a local preset folder;
            - a family name with registered ``<family>_fold<k>`` members, a folder whose
              sub-folders are presets, or a list of any of the above: a
              :class:`~hnprog.presets.ensemble.FoldEnsemble` of them.
        cache_dir: str or PathLike, optional. Hugging Face cache folder. Defaults to the
            Hugging Face default (``HF_HUB_CACHE`` or ``HF_HOME/hub``).
        endpoint: str, optional. Hub URL. Defaults to ``HF_ENDPOINT`` or huggingface.co.
        local_files_only: bool. Never use the network (also set by ``HF_HUB_OFFLINE=1``);
            when the Hub cannot be reached the cache is used anyway. Defaults to False.
        runtime: str. What runs the model: ``"keras"``, ``"openvino"`` or ``"onnx"`` (an
            exported preset folder, see :func:`hnprog.presets.export.export_runtime`), or
            ``"auto"``: the fastest one on this machine, as measured when the folder was
            exported here, that is installed (:func:`hnprog.presets.exported.choose_runtime`;
            one runtime for all folds), else Keras. Defaults to ``"keras"``.
        precision: str. ``"fp32"``, or ``"bf16"`` on OpenVINO where the CPU has AVX-512
            BF16 or AMX-BF16. Defaults to ``"fp32"``.

    Returns:
        Preset, ExportedPreset or FoldEnsemble, all
        :class:`~hnprog.presets.preset.Predictor`: ``.metadata``, ``.preprocessing`` and
        ``.predict(x) -> {"risk": (N, 1), "segmentation": (N, D, H, W, 1)}``; a ``Preset``
        also has ``.model``.

    Raises:
        InputError: if the preset cannot be found or downloaded (and is not cached), a
            file's sha256 differs from ``hnprog.json`` or the registry, the config names
            classes outside Keras and hnprog, ensemble members disagree on their
            preprocessing or outputs, or the runtime or precision cannot be used (see
            :func:`hnprog.presets.exported.choose_runtime`).

    Example:
        >>> import hnprog
        >>> uri = "hf://my-lab/unet3d_hecktor_petct_fold0@v1"
        >>> preset = hnprog.from_preset(uri)  # doctest: +SKIP
        >>> preset.preprocessing["spacing"]  # doctest: +SKIP
        >>> out = preset.predict(x)  # x: (N, 144, 144, 144, 2)  # doctest: +SKIP
    """
    found = resolve(name_or_uri, cache_dir=cache_dir, endpoint=endpoint,
                    local_files_only=local_files_only)
    runtimes = chosen_runtimes(found, runtime, precision)
    members = [_load(item, chosen, precision) for item, chosen in zip(found, runtimes)]
    if len(members) == 1 and isinstance(name_or_uri, (str, os.PathLike)):
        return members[0]
    return FoldEnsemble(members)


def _first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (Keras' run on for many lines)."""
    text = str(exc).strip()
    return text.splitlines()[0].rstrip(":") if text else type(exc).__name__


def load_keras_file(path: str | os.PathLike) -> Any:
    """Load a ``.keras`` model file through the same checks as a preset's architecture.

    The archive's ``config.json`` is bounded in size and depth and checked against hnprog's
    class allow-list (:func:`hnprog.presets.format.check_config_classes`) before Keras
    builds anything, then Keras loads it in safe mode (no lambdas) without compiling.

    Args:
        path: str or PathLike. The ``.keras`` file.

    Returns:
        keras.Model. The model.

    Raises:
        InputError: if the file is not a ``.keras`` archive, its config names a class outside
            Keras and hnprog, or Keras cannot load it.
    """
    import zipfile

    import keras

    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            data = archive.read(CONFIG_FILE)
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise InputError(f"model file {path}: not a .keras archive ({_first_line(exc)})") from None
    where = f"{path}:{CONFIG_FILE}"
    check_json_bounds(data, where)
    try:
        config = json.loads(data)
    except ValueError as exc:
        raise InputError(f"{where}: not valid JSON ({exc}).") from None
    check_config_classes(config, source=where)
    register_keras_objects()
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except (ValueError, TypeError, KeyError, OSError) as exc:
        raise InputError(f"cannot load model {path}: {_first_line(exc)}") from None
