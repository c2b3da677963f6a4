"""Exporting a preset to OpenVINO and ONNX: :func:`export_runtime`.

:func:`export_runtime` writes an *exported preset folder*: the preset's own files
(``config.json``, ``model.weights.h5``, ``README.md``, so Keras can still load it) plus the same
weights converted with Keras' ``model.export`` to OpenVINO IR (``model.xml`` + ``model.bin``)
and/or ONNX (``model.onnx``). Its ``hnprog.json`` is the source preset's record (preprocessing,
outputs and risk threshold, dataset and its synthetic-data label, metrics) with the sha256 of
every file, the exported ones included, and an ``export`` entry: the formats, the versions of
the converters, the largest difference between each runtime's outputs and Keras' on one
random input, and the seconds of one forward pass on each runtime with the machine they were
measured on (``seconds_per_forward``, ``measured_on``: what ``runtime="auto"`` ranks by on a
machine like that one). :mod:`hnprog.presets.exported` runs it.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import importlib.util
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hnprog.cpu import machine_signature
from hnprog.errors import HnprogError, InputError
from hnprog.io import atomic_path
from hnprog.presets.exported import EXPORT_FORMATS, EXTRAS, open_runtime, run_session
from hnprog.presets.format import CARD_FILE, CONFIG_FILE, EXPORT_FILES, WEIGHTS_FILE, write_metadata
from hnprog.presets.loading import from_preset
from hnprog.presets.preset import Preset

__all__ = ["EXPORT_TOLERANCE", "export_runtime"]

#: the largest difference to Keras' outputs an export may have; larger refuses the export
EXPORT_TOLERANCE = 1e-3




def export_runtime(
    model: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    formats: Sequence[str] = ("openvino",),
    overwrite: bool = False,
    **hub: Any,
) -> list[Path]:
    """Export a preset (or each fold of an ensemble) to OpenVINO and/or ONNX.

    Each exported folder holds the preset's files, the exported model files and an
    ``hnprog.json`` with every file's sha256 (written last); see the module docstring. One
    random input of the model's shape is run through Keras and through each new export; the
    largest absolute difference per output and the seconds of a forward pass on each runtime
    (the fastest of 3 after a first call, with :func:`hnprog.cpu.machine_signature`) are
    recorded under ``export``.

    Args:
        model: str, PathLike or a list. Anything :func:`hnprog.from_preset` loads: a preset
            name, ``hf://`` URI or folder, a family name or a folder of fold presets.
        out_dir: str or PathLike. The exported preset folder; for several presets (folds),
            a folder with one sub-folder per fold, named after the fold preset's folder.
        formats: sequence of str. ``"openvino"`` and/or ``"onnx"``. Defaults to
            ``("openvino",)``.
        overwrite: bool. Replace an existing non-empty folder. Defaults to False.
        **hub: passed to :func:`hnprog.from_preset` (``cache_dir``, ``endpoint``,
            ``local_files_only``).

    Returns:
        list of pathlib.Path. The exported preset folders, one per fold.

    Raises:
        InputError: for an unknown or missing format, a converter that is not installed
            (naming the pip extra), an existing folder without ``overwrite``, or a preset
            that cannot be loaded.
        HnprogError: if an export's outputs differ from Keras' by more than
            :data:`EXPORT_TOLERANCE` (nothing is written then).

    Example:
        >>> export_runtime("unet3d_multitask_synthetic_petct", "exported/",
        ...               formats=["openvino", "onnx"])  # doctest: +SKIP
        >>> hnprog.from_preset("exported/", runtime="openvino")  # doctest: +SKIP
    """
    formats = list(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in EXPORT_FORMATS]
    if not formats or unknown:
        raise InputError(f"formats must be among {', '.join(EXPORT_FORMATS)}. Received: "
                         f"formats={list(formats)!r}")
    for fmt in formats:
        missing = [m for m in _converter_modules(fmt) if importlib.util.find_spec(m) is None]
        if missing:
            raise InputError(f"exporting to {fmt} needs {', '.join(missing)}: pip install "
                             f"\"hnprog[{EXTRAS[fmt]}]\"")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise InputError(f"Export folder {out_dir} already exists and is not empty; pass "
                         "overwrite=True (--overwrite) to replace it.")
    loaded = from_preset(model, runtime="keras", **hub)
    members = list(getattr(loaded, "members", [loaded]))
    if len(members) == 1:
        return [_export_one(members[0], out_dir, formats)]
    names = [m.path.name if m.path is not None else f"fold{k}" for k, m in enumerate(members)]
    if len(set(names)) != len(names):
        names = [f"{name}_{k}" for k, name in enumerate(names)]
    return [_export_one(m, out_dir / name, formats) for m, name in zip(members, names)]


def _converter_modules(fmt: str) -> list[str]:
    # Keras converts a TensorFlow graph with tf2onnx for ONNX; OpenVINO converts it itself
    return {"openvino": ["openvino"], "onnx": ["onnx", "tf2onnx", "onnxruntime"]}[fmt]


def _export_one(preset: Preset, folder: Path, formats: Sequence[str]) -> Path:
    """Copy one loaded preset's files into ``folder``, add the exports, record them last."""
    if preset.path is None:
        raise InputError(f"{preset.name}: only a preset loaded from a folder can be exported")
    folder.mkdir(parents=True, exist_ok=True)
    x = _check_input(preset)
    reference = preset.predict(x)  # the first call traces; the next three are timed
    seconds = {"keras": _seconds(lambda: preset.predict(x))}
    differences: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="hnprog-export-") as scratch:
        written: dict[str, Path] = {}
        for fmt in formats:
            files = EXPORT_FILES[fmt]
            target = Path(scratch) / fmt / files[0]
            target.parent.mkdir()
            with warnings.catch_warnings():
                # Keras' tf2onnx shim probes np.object, which NumPy 2 warns about: not ours
                warnings.filterwarnings("ignore", category=FutureWarning,
                                        module=r"keras\.src\.export")
                preset.model.export(str(target), format=fmt, verbose=False)
            # the exported files are checked in the scratch folder, before they are kept
            predictor = open_runtime(fmt, target, "fp32", preset.outputs)
            outputs = run_session(predictor, fmt, x, batch_size=1)
            seconds[fmt] = _seconds(lambda: run_session(predictor, fmt, x, batch_size=1))
            differences[fmt] = {key: float(np.max(np.abs(outputs[key] - reference[key])))
                                for key in sorted(reference)}
            worst = max(differences[fmt].values())
            if not worst <= EXPORT_TOLERANCE:
                raise HnprogError(
                    f"{preset.name}: the {fmt} export differs from Keras by {worst:.2e} "
                    f"(more than {EXPORT_TOLERANCE:g}); not writing it. Layers: "
                    f"{sorted({type(layer).__name__ for layer in preset.model.layers})}")
            written.update({name: target.parent / name for name in files})
        for name in (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE):
            source = preset.path / name
            if source.is_file():
                _copy(source, folder / name)
        for name, source in written.items():
            _copy(source, folder / name)
    for stale in {n for files in EXPORT_FILES.values() for n in files} - set(written):
        (folder / stale).unlink(missing_ok=True)  # an earlier export of another format
    metadata = dict(preset.metadata)
    metadata["export"] = {
        "formats": list(formats),
        "from": preset.source,
        "max_abs_difference": differences,
        "check_input": f"uniform random in [-1, 1], shape {list(x.shape)}, seed 0",
        "seconds_per_forward": {key: round(value, 4) for key, value in seconds.items()},
        "measured_on": machine_signature(),
        "versions": _converter_versions(formats),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    write_metadata(folder, metadata)
    return folder


def _seconds(call: Callable[[], object], repeats: int = 3) -> float:
    """Wall seconds of the fastest of ``repeats`` calls (after a first, untimed one)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def _check_input(preset: Preset) -> np.ndarray:
    shape = list(preset.input_shape)
    crop = (preset.preprocessing or {}).get("crop_size", 32)
    shape = [crop if size is None else size for size in shape[:3]] + [2]
    return np.random.default_rng(0).uniform(-1, 1, size=[1, *shape]).astype("float32")


def _copy(source: Path, target: Path) -> None:
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def _converter_versions(formats: Sequence[str]) -> dict[str, str]:
    import keras

    versions = {"keras": keras.__version__, "backend": keras.backend.backend()}
    for fmt in formats:
        for module in _converter_modules(fmt):
            try:
                versions[module] = importlib.metadata.version(module)
            except importlib.metadata.PackageNotFoundError:
                pass
    return versions
