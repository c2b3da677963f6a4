"""The preset file format: file names, format version, checksums, metadata, verification.

A preset is a folder, the same on disk, inside the package and on the Hugging Face Hub:

| file | content |
| --- | --- |
| `config.json` | the Keras 3 architecture (`keras.saving.serialize_keras_object`), without compile settings |
| `model.weights.h5` | the weights (`model.save_weights`) |
| `README.md` | the model card (:mod:`hnprog.presets.cards`), optional |
| `model.xml`, `model.bin` | an OpenVINO export of the same weights (:mod:`hnprog.presets.export`), optional |
| `model.onnx` | an ONNX export of the same weights, optional |
| `hnprog.json` | format version, task, fold, input and outputs, the preprocessing the weights expect, the training data and recipe, metrics, versions, licence, intended use, and under `files` the sha256 of every other file |

``hnprog.json`` is written last, so a folder without it is never taken for a finished preset.

This module is the bottom of :mod:`hnprog.presets`: every file name and every check of a
preset folder lives here, and the other modules (saving, the registry, the Hub, cards,
loading) import them from here. It imports from the rest of the package only the errors, the
atomic writes and the survival baseline check, and does not import Keras.

The checks, all raising :class:`~hnprog.errors.InputError` before a model is built:

- every file named in ``hnprog.json`` or pinned by the registry is a plain relative name that
  stays inside the preset folder: no absolute path, no ``..``, no backslash, and no symlink
  that resolves outside the folder (a Hugging Face cache snapshot may link into its own
  repository's cache folder, passed as ``root``);
- each file is hashed once per load, and its sha256 must equal every checksum recorded for
  it (``hnprog.json`` and, for registered presets, the registry); ``hnprog.json`` and
  ``config.json`` are parsed from the very bytes that were hashed;
- ``config.json`` names only Keras and hnprog classes (:func:`check_config_classes`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from hnprog.errors import InputError
from hnprog.io import write_json
from hnprog.survival import check_baseline

__all__ = [
    "CARD_FILE",
    "CONFIG_FILE",
    "EXPORT_FILES",
    "FORMAT_VERSION",
    "METADATA_FILE",
    "WEIGHTS_FILE",
    "check_config_classes",
    "check_file_name",
    "checked_baseline",
    "checked_clinical_model",
    "check_json_bounds",
    "is_sha256",
    "parse_metadata",
    "preset_file",
    "read_metadata",
    "read_preset",
    "risk_baseline",
    "risk_clinical_model",
    "sha256_file",
    "verify_preset",
    "write_metadata",
]

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
CARD_FILE = "README.md"
METADATA_FILE = "hnprog.json"
REQUIRED_FILES = (CONFIG_FILE, WEIGHTS_FILE)
#: the files of each exported runtime format (:mod:`hnprog.presets.export`), the first one
#: being the one the runtime opens
EXPORT_FILES = {"openvino": ("model.xml", "model.bin"), "onnx": ("model.onnx",)}
# the files write_metadata records, in this order, when present
RECORDED_FILES = (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE,
                  *(name for files in EXPORT_FILES.values() for name in files))

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# Bounds on the JSON files of a preset, checked before parsing: a UNet's config.json is tens
# of kB and about 10 levels deep; a hostile file must not exhaust memory or the stack.
MAX_JSON_BYTES = 16 * 1024 * 1024
MAX_JSON_DEPTH = 100
_JSON_STRING_RE = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_BRACKET_RE = re.compile(rb"[\[\]{}]")
# Keras' own markers for tensors, arrays and Python values inside a config: harmless data.
# Layers whose config holds Python code or a function to call: refused even from keras.
_CODE_CLASS_NAMES = {"Lambda", "TFOpLambda", "SlicingOpLambda"}
_DATA_CLASS_NAMES = {"__keras_tensor__", "__tensor__", "__numpy__", "__bytes__", "__ellipsis__",
                     "__slice__"}


# ---------------------------------------------------------------------------------------------
# File names
# ---------------------------------------------------------------------------------------------


def check_file_name(name: Any, where: object) -> str:
    """Check that ``name`` is a relative file name inside a preset folder.

    Args:
        name: str. A file name from ``hnprog.json`` or a registry entry, ``/``-separated.
        where: object. Named in the error message (a folder, a Hub reference).

    Returns:
        str. ``name`` unchanged.

    Raises:
        InputError: if ``name`` is empty or not a string, absolute, holds ``..``, a
            backslash or a NUL byte.
    """
    bad = (
        not isinstance(name, str)
        or not name
        or "\\" in name
        or "\0" in name
        or PurePosixPath(name).is_absolute()
        or Path(name).is_absolute()
        or ".." in PurePosixPath(name).parts
    )
    if bad:
        raise InputError(
            f"{where}: {METADATA_FILE} lists a file outside the preset folder. "
            f"Received: file={name!r}"
        )
    return name


def preset_file(folder: str | os.PathLike, name: str, *,
                root: str | os.PathLike | None = None) -> Path:
    """The path of file ``name`` of a preset, refusing anything that leaves the folder.

    Args:
        folder: str or PathLike. The preset folder.
        name: str. A relative file name (see :func:`check_file_name`).
        root: str or PathLike, optional. Where symlinks may point: a Hugging Face cache
            snapshot links its files into the repository's cache folder, which is then the
            root. Defaults to ``folder``.

    Returns:
        pathlib.Path. ``folder / name`` (not resolved).

    Raises:
        InputError: if the name is not a relative name inside the folder, or the file (or a
            symlink on its way) resolves outside ``root``.
    """
    folder = Path(folder)
    check_file_name(name, folder)
    path = folder / name
    allowed = Path(root if root is not None else folder).resolve()
    resolved = path.resolve()
    if resolved != allowed and allowed not in resolved.parents:
        raise InputError(
            f"preset {folder}: file {name} resolves to {resolved}, outside the preset folder "
            f"({allowed}); refusing to read it."
        )
    return path


# ---------------------------------------------------------------------------------------------
# Checksums and metadata
# ---------------------------------------------------------------------------------------------


def is_sha256(value: Any) -> bool:
    """Whether ``value`` is a sha256 as recorded in presets: 64 lowercase hex digits."""
    return isinstance(value, str) and bool(_SHA256_RE.match(value))


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


def check_json_bounds(data: bytes | str, where: object, *, max_bytes: int = MAX_JSON_BYTES,
                      max_depth: int = MAX_JSON_DEPTH) -> None:
    """Refuse a JSON text that is too large or nested too deeply, before it is parsed.

    Args:
        data: bytes or str. The file's content.
        where: object. Named in the error message.
        max_bytes: int. Largest accepted size. Defaults to 16 MiB.
        max_depth: int. Deepest accepted nesting of ``[`` and ``{``. Defaults to 100.

    Raises:
        InputError: if the text is larger than ``max_bytes`` or nests deeper than
            ``max_depth``.
    """
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if len(raw) > max_bytes:
        raise InputError(f"{where}: {len(raw)} bytes, larger than the {max_bytes} bytes a "
                         "preset's JSON file may hold; refusing to parse it.")
    depth = 0
    for match in _JSON_BRACKET_RE.finditer(_JSON_STRING_RE.sub(b'""', raw)):
        depth += 1 if match.group() in (b"[", b"{") else -1
        if depth > max_depth:
            raise InputError(f"{where}: nested deeper than {max_depth} levels; refusing to "
                             "parse it (not a preset written by hnprog).")


def parse_metadata(data: bytes | str, where: object) -> dict[str, Any]:
    """Parse and check the text of an ``hnprog.json``.

    Args:
        data: bytes or str. The file's content.
        where: object. Named in the error messages (the file's path or Hub reference).

    Returns:
        dict. The metadata; ``files`` maps each listed file name to its sha256.

    Raises:
        InputError: if the text is too large or deep (:func:`check_json_bounds`) or not a
            JSON object, ``files`` does not map relative file
            names to 64-hex sha256 digests, or ``format_version`` is not
            :data:`FORMAT_VERSION`.
    """
    check_json_bounds(data, where)
    try:
        metadata = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{where}: not valid JSON ({exc}).") from None
    files = metadata.get("files") if isinstance(metadata, dict) else None
    if not isinstance(files, dict) or not all(is_sha256(d) for d in files.values()):
        raise InputError(f"{where}: 'files' must map each file name to its sha256 (64 hex).")
    for name in files:
        check_file_name(name, where)
    if metadata.get("format_version") != FORMAT_VERSION:
        raise InputError(
            f"{where}: unsupported preset format. Received: "
            f"format_version={metadata.get('format_version')!r} (this hnprog reads "
            f"{FORMAT_VERSION})."
        )
    return metadata


def read_metadata(folder: str | os.PathLike, *,
                  root: str | os.PathLike | None = None) -> dict[str, Any]:
    """Read and check a preset folder's ``hnprog.json``, without checking the other files.

    Args:
        folder: str or PathLike. The preset folder.
        root: str or PathLike, optional. See :func:`preset_file`. Defaults to ``folder``.

    Returns:
        dict. The metadata (see :func:`parse_metadata`).

    Raises:
        InputError: if the folder holds no ``hnprog.json`` or it is invalid.
    """
    return _read_metadata(Path(folder), root)[0]


def _read_metadata(folder: Path, root: str | os.PathLike | None) -> tuple[dict[str, Any], str]:
    """The metadata and the sha256 of ``hnprog.json``, from one read of the file."""
    path = preset_file(folder, METADATA_FILE, root=root)
    if not path.is_file():
        raise InputError(f"{folder} is not a preset folder: {METADATA_FILE} not found.")
    data = path.read_bytes()
    return parse_metadata(data, path), hashlib.sha256(data).hexdigest()


def verify_preset(
    folder: str | os.PathLike,
    *,
    expected_sha256: Mapping[str, str] | None = None,
    root: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Check a preset folder's files against ``hnprog.json`` and a registry entry.

    The checksums of ``hnprog.json`` (its ``files``) and of the registry are combined into
    one expected map, so each file is read and hashed once and must match every checksum
    recorded for it. ``hnprog.json`` itself is hashed from the same read that parses it.

    Args:
        folder: str or PathLike. The preset folder.
        expected_sha256: mapping of file name to sha256, optional. Pinned checksums (from the
            registry), which may include ``hnprog.json`` itself. Defaults to None.
        root: str or PathLike, optional. Where the files may resolve to (see
            :func:`preset_file`). Defaults to ``folder``.

    Returns:
        dict. The parsed ``hnprog.json``.

    Raises:
        InputError: if ``hnprog.json`` is missing or invalid, lacks ``config.json`` or
            ``model.weights.h5``, a listed name leaves the folder, or any file is missing or
            has another sha256 than recorded.
    """
    return _verify(Path(folder), expected_sha256, root, keep=())[0]


def read_preset(
    folder: str | os.PathLike,
    *,
    expected_sha256: Mapping[str, str] | None = None,
    root: str | os.PathLike | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify a preset folder (:func:`verify_preset`), then read its architecture.

    ``config.json`` is parsed from the very bytes whose sha256 was checked, so it cannot
    change between the check and the build, and its classes are checked
    (:func:`check_config_classes`). The weights are hashed here and read by Keras later.

    Args:
        folder: str or PathLike. The preset folder.
        expected_sha256: mapping of file name to sha256, optional. Pinned checksums from the
            registry. Defaults to None.
        root: str or PathLike, optional. See :func:`preset_file`. Defaults to ``folder``.

    Returns:
        tuple of dict. ``(metadata, config)``: the parsed ``hnprog.json`` and the Keras
        config, ready for ``keras.saving.deserialize_keras_object``.

    Raises:
        InputError: as :func:`verify_preset`, or if ``config.json`` is larger than 16 MiB,
            nested deeper than 100 levels, not valid JSON or names a class outside Keras and
            hnprog.
    """
    folder = Path(folder)
    metadata, contents = _verify(folder, expected_sha256, root, keep=(CONFIG_FILE,))
    where = folder / CONFIG_FILE
    check_json_bounds(contents[CONFIG_FILE], where)
    try:
        config = json.loads(contents[CONFIG_FILE])
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{where}: not valid JSON ({exc}).") from None
    check_config_classes(config, source=str(where))
    return metadata, config


def _verify(
    folder: Path,
    expected_sha256: Mapping[str, str] | None,
    root: str | os.PathLike | None,
    *,
    keep: tuple[str, ...],
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Verify every file once; return the metadata and the bytes of the files in ``keep``."""
    metadata, metadata_sha256 = _read_metadata(folder, root)
    for required in REQUIRED_FILES:
        if required not in metadata["files"]:
            raise InputError(f"{folder / METADATA_FILE}: 'files' does not list {required}.")
    expected: dict[str, list[tuple[str, str]]] = {}
    for recorded_in, digests in ((METADATA_FILE, metadata["files"]),
                                 ("the preset registry", expected_sha256 or {})):
        for name, digest in digests.items():
            expected.setdefault(check_file_name(name, folder), []).append((digest, recorded_in))
    contents: dict[str, bytes] = {}
    for name, records in expected.items():
        if name == METADATA_FILE:
            actual = metadata_sha256
        else:
            path = preset_file(folder, name, root=root)
            if not path.is_file():
                raise InputError(f"preset {folder}: file {name} is missing (listed in "
                                 f"{' and '.join(source for _, source in records)}).")
            if name in keep:
                contents[name] = path.read_bytes()
                actual = hashlib.sha256(contents[name]).hexdigest()
            else:
                actual = sha256_file(path)
        for digest, recorded_in in records:
            if actual != digest:
                raise InputError(
                    f"preset {folder}: sha256 mismatch for {name}: {recorded_in} records "
                    f"{digest}, the file has {actual}. The file was modified or corrupted; "
                    "refusing to load it."
                )
    return metadata, contents


def write_metadata(folder: str | os.PathLike, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Recompute the sha256 of the preset's files and write ``hnprog.json`` atomically.

    The files recorded are ``config.json``, ``model.weights.h5``, ``README.md`` and the
    exported runtime files (:data:`EXPORT_FILES`) when present. Call this after changing any of them (as
    :func:`hnprog.presets.cards.write_card` does).

    Args:
        folder: str or PathLike. The preset folder.
        metadata: dict. The preset description; its ``files`` entry is replaced.

    Returns:
        dict. The metadata as written.
    """
    folder = Path(folder)
    metadata = copy.deepcopy(dict(metadata))
    metadata["files"] = {
        name: sha256_file(folder / name) for name in RECORDED_FILES if (folder / name).is_file()
    }
    write_json(metadata, folder / METADATA_FILE)
    return metadata


# ---------------------------------------------------------------------------------------------
# The survival baseline (outputs.risk.baseline)
# ---------------------------------------------------------------------------------------------


def checked_baseline(baseline: Mapping[str, Any], where: object = "baseline") -> dict[str, Any]:
    """A Breslow baseline checked and made JSON-ready for ``outputs.risk.baseline``.

    Args:
        baseline: dict. From :func:`hnprog.survival.breslow_baseline`.
        where: object. Named in error messages. Defaults to ``"baseline"``.

    Returns:
        dict. The same fields as floats and lists: ``estimator``, ``time_days``,
        ``cumulative_hazard``, ``reference_risk``, ``max_time_days``, ``n_patients``,
        ``n_events``.

    Raises:
        InputError: if the baseline is not valid (:func:`hnprog.survival.check_baseline`).
    """
    times, hazard, reference, max_time = check_baseline(baseline, str(where))
    return {"estimator": str(baseline.get("estimator", "breslow")),
            "time_days": times.tolist(), "cumulative_hazard": hazard.tolist(),
            "reference_risk": reference, "max_time_days": max_time,
            "n_patients": int(baseline.get("n_patients", 0)),
            "n_events": int(baseline.get("n_events", 0))}


def risk_baseline(metadata: Mapping[str, Any] | None, where: object = "preset"
                  ) -> dict[str, Any] | None:
    """The Breslow baseline recorded in a preset's ``hnprog.json``, or None.

    Presets written before survival curves existed record none; they still predict risks.

    Args:
        metadata: dict or None. The parsed ``hnprog.json``.
        where: object. Named in error messages (the preset). Defaults to ``"preset"``.

    Returns:
        dict or None. ``outputs.risk.baseline``, checked (:func:`checked_baseline`).

    Raises:
        InputError: if a recorded baseline is invalid.
    """
    record = ((metadata or {}).get("outputs") or {}).get("risk") or {}
    if record.get("baseline") is None:
        return None
    return checked_baseline(record["baseline"], f"{where}: outputs.risk.baseline")


def checked_clinical_model(model: Mapping[str, Any], where: object = "clinical model"
                           ) -> dict[str, Any]:
    """A deep + clinical Cox model checked and made JSON-ready for ``outputs.risk.clinical``.

    The record (from :func:`hnprog.radiomics.clinical.fit_deep_clinical_model`) is a linear
    predictor: ``sum(coef * (x - mean) / scale)`` over its ``terms``, where ``x`` is the
    image risk (term ``deep_risk``) or a clinical covariate, a missing covariate replaced by
    its training median (``fill``).

    Args:
        model: dict. ``covariates`` (list of str), ``fill`` (covariate -> float), ``terms``
            (list of ``{"name", "mean", "scale", "coef"}``), ``alpha``, ``n_patients``,
            ``n_events``.
        where: object. Named in error messages. Defaults to ``"clinical model"``.

    Returns:
        dict. The same fields as plain floats, ints and strings.

    Raises:
        InputError: if a field is missing or not finite, a scale is not positive, or a term
            is neither ``deep_risk`` nor a listed covariate.
    """
    import math

    def number(value: Any, label: str) -> float:
        try:
            out = float(value)
        except (TypeError, ValueError):
            out = math.nan
        if not math.isfinite(out):
            raise InputError(f"{where}: {label} must be a finite number. Received: {value!r}")
        return out

    if not isinstance(model, Mapping):
        raise InputError(f"{where} must be a mapping. Received: {type(model).__name__}")
    covariates = model.get("covariates")
    if not isinstance(covariates, (list, tuple)) or not all(isinstance(c, str)
                                                            for c in covariates):
        raise InputError(f"{where}: covariates must be a list of names. Received: {covariates!r}")
    fill = model.get("fill") or {}
    if not isinstance(fill, Mapping) or set(fill) != set(covariates):
        raise InputError(f"{where}: fill must give one value per covariate {list(covariates)}. "
                         f"Received: {fill!r}")
    terms = model.get("terms")
    if not isinstance(terms, (list, tuple)) or not terms:
        raise InputError(f"{where}: terms must be a non-empty list. Received: {terms!r}")
    checked_terms = []
    for term in terms:
        name = term.get("name") if isinstance(term, Mapping) else None
        if name != "deep_risk" and name not in covariates:
            raise InputError(f"{where}: term {name!r} is neither deep_risk nor a covariate")
        scale = number(term.get("scale"), f"terms[{name}].scale")
        if scale <= 0:
            raise InputError(f"{where}: terms[{name}].scale must be > 0. Received: {scale}")
        checked_terms.append({"name": name, "mean": number(term.get("mean"), f"terms[{name}].mean"),
                              "scale": scale,
                              "coef": number(term.get("coef"), f"terms[{name}].coef")})
    return {"covariates": list(covariates),
            "fill": {c: number(fill[c], f"fill[{c}]") for c in covariates},
            "terms": checked_terms, "alpha": number(model.get("alpha", 0.0), "alpha"),
            "n_patients": int(model.get("n_patients", 0)),
            "n_events": int(model.get("n_events", 0))}


def risk_clinical_model(metadata: Mapping[str, Any] | None, where: object = "preset"
                        ) -> dict[str, Any] | None:
    """The deep + clinical Cox model recorded in a preset's ``hnprog.json``, or None.

    Only presets trained with clinical covariates (``hnprog train/cv/finetune --clinical``)
    record one.

    Raises:
        InputError: if a recorded model is invalid (:func:`checked_clinical_model`).
    """
    record = ((metadata or {}).get("outputs") or {}).get("risk") or {}
    if record.get("clinical") is None:
        return None
    return checked_clinical_model(record["clinical"], f"{where}: outputs.risk.clinical")


# ---------------------------------------------------------------------------------------------
# config.json and the class allow-list
# ---------------------------------------------------------------------------------------------


def _allowed_module(module: str) -> bool:
    return module in ("keras", "hnprog", "builtins") or module.startswith(("keras.", "hnprog."))


def check_config_classes(config: Any, source: str = CONFIG_FILE) -> None:
    """Refuse a Keras config that names a class or function outside Keras and hnprog.

    Every object in the config (at any depth) that has a ``class_name`` is checked: its
    ``module`` must be ``keras``/``keras.*``/``hnprog``/``hnprog.*`` (or ``builtins`` for
    Keras' built-in function names), a ``registered_name`` with a package must be
    ``hnprog>...``, and Python lambdas, Keras ``Lambda`` layers (which carry code) or
    TensorFlow type specs are refused. Keras safe mode
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
        if class_name in _CODE_CLASS_NAMES:
            problem = (f"class_name={class_name!r} carries Python code (lambdas and Lambda "
                       "layers are refused)")
        elif not isinstance(class_name, str) or class_name.startswith("__"):
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
