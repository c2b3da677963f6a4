"""Running an exported preset folder with OpenVINO or ONNX Runtime (:class:`ExportedPreset`),
and choosing the runtime (:func:`choose_runtime`).

An exported preset folder (written by :func:`hnprog.presets.export.export_runtime`) is a
preset folder that also holds the same weights as OpenVINO IR (``model.xml`` +
``model.bin``) and/or ONNX (``model.onnx``), each listed with its sha256 in ``hnprog.json``.
:func:`load_exported` verifies the folder and opens the export with a runtime;
``hnprog.from_preset(folder, runtime=...)`` calls it, and a fold ensemble of exported folds is
a :class:`~hnprog.presets.ensemble.FoldEnsemble` as usual.

``runtime="auto"`` takes the runtime that was fastest on this machine: :func:`export_runtime`
times one forward pass on Keras and on each export and records it with the machine
(:func:`hnprog.cpu.machine_signature`); on a machine with the same signature, ``auto`` takes
the fastest recorded runtime that is installed, an export only when it beat Keras by more
than 5% (:func:`auto_order`). Elsewhere (the folder exported on another machine) it takes
Keras: TensorFlow with oneDNN was the fastest fp32 runtime on both CPUs of
``docs/benchmarks.md`` (an AVX-512/AMX Xeon and an AVX2 EPYC), while the issue that asked
for the exports measured OpenVINO 1.3x faster on another AVX2 EPYC; the ranking depends on
the machine, not on its instruction set alone. OpenVINO is ``pip install "hnprog[openvino]"``,
ONNX Runtime ``pip install "hnprog[onnx]"``.

Precision: ``"fp32"`` everywhere (OpenVINO is told so explicitly, because on CPUs with
AMX/AVX-512 BF16 it would otherwise compute in bf16). ``"bf16"`` is an opt-in for OpenVINO on
CPUs with AVX-512 BF16 or AMX-BF16, and refused elsewhere.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hnprog.cpu import cpu_vector_extensions, machine_signature
from hnprog.errors import InputError
from hnprog.presets.format import EXPORT_FILES, preset_file, verify_preset
from hnprog.presets.preset import PresetRecord, check_images

__all__ = [
    "EXPORT_FORMATS",
    "PRECISIONS",
    "RUNTIMES",
    "ExportedPreset",
    "auto_order",
    "bf16_supported",
    "choose_runtime",
    "exported_formats",
    "load_exported",
    "measured_seconds",
    "runtime_installed",
]

#: the formats :func:`hnprog.presets.export.export_runtime` writes
EXPORT_FORMATS = tuple(EXPORT_FILES)
#: the runtimes a predictor can run on
RUNTIMES = ("keras", *EXPORT_FORMATS)
PRECISIONS = ("fp32", "bf16")
#: an export is chosen over Keras automatically when its forward pass took less than this
#: fraction of Keras' on this machine (noise between two runs is about 5%)
AUTO_MARGIN = 0.95
# the Python module each runtime needs, and the pip extra that installs it
_RUNTIME_MODULES = {"openvino": "openvino", "onnx": "onnxruntime"}
EXTRAS = {"openvino": "openvino", "onnx": "onnx"}
_OPENVINO_PRECISION = {"fp32": "f32", "bf16": "bf16"}


def runtime_installed(runtime: str) -> bool:
    """Whether the Python package of a runtime is installed (Keras always is)."""
    module = _RUNTIME_MODULES.get(runtime)
    return module is None or importlib.util.find_spec(module) is not None


def measured_seconds(metadatas: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Seconds per forward pass of each runtime, as measured at export on a machine like this.

    Args:
        metadatas: sequence of dict. The ``hnprog.json`` of each preset (each fold of an
            ensemble); a record made on a machine whose :func:`hnprog.cpu.machine_signature`
            differs from this one's is ignored.

    Returns:
        dict. Runtime name -> the median over the folders of its recorded seconds; empty when
        no folder was measured on a machine like this one.
    """
    here = machine_signature()
    found: dict[str, list[float]] = {}
    for metadata in metadatas:
        record = metadata.get("export") or {}
        if record.get("measured_on") != here:
            continue
        for runtime, seconds in (record.get("seconds_per_forward") or {}).items():
            found.setdefault(runtime, []).append(float(seconds))
    return {runtime: float(np.median(values)) for runtime, values in found.items()}


def auto_order(measured: Mapping[str, float] | None = None) -> tuple[str, ...]:
    """The runtimes ``runtime="auto"`` tries, fastest first on this machine.

    Args:
        measured: dict, optional. Runtime -> seconds per forward pass on this machine
            (:func:`measured_seconds`). An export comes before Keras only when it took less
            than :data:`AUTO_MARGIN` times Keras' time; without Keras' time, Keras alone.

    Returns:
        tuple of str. The measured exports faster than Keras, fastest first, then
        ``"keras"``.
    """
    measured = measured or {}
    if "keras" not in measured:
        return ("keras",)
    limit = AUTO_MARGIN * measured["keras"]
    faster = sorted((seconds, runtime) for runtime, seconds in measured.items()
                    if runtime in EXPORT_FORMATS and seconds < limit)
    return (*[runtime for _, runtime in faster], "keras")


def bf16_supported(extensions: Sequence[str] | None = None) -> bool:
    """Whether the CPU computes bf16 natively (AVX-512 BF16 or AMX-BF16).

    Args:
        extensions: sequence of str, optional. The CPU's extensions as
            :func:`hnprog.cpu.cpu_vector_extensions` names them. Defaults to this CPU's.
    """
    extensions = cpu_vector_extensions() if extensions is None else extensions
    return "AVX-512 BF16" in extensions or "AMX-BF16" in extensions


def exported_formats(metadata: Mapping[str, Any]) -> list[str]:
    """The runtime formats whose files a preset's ``hnprog.json`` records (checksummed)."""
    files = metadata.get("files", {})
    return [fmt for fmt, names in EXPORT_FILES.items() if all(n in files for n in names)]


def choose_runtime(metadata: Mapping[str, Any], runtime: str = "auto",
                   precision: str = "fp32", *, where: object = "the preset",
                   measured: Mapping[str, float] | None = None) -> str:
    """The runtime a preset is run on: ``runtime`` itself, checked, or the fastest available.

    Args:
        metadata: dict. The preset's ``hnprog.json``.
        runtime: str. ``"auto"``, ``"keras"``, ``"openvino"`` or ``"onnx"``. Defaults to
            ``"auto"``: the first of :func:`auto_order` the preset was exported to and that is
            installed (``"openvino"`` for ``precision="bf16"``).
        precision: str. ``"fp32"`` or ``"bf16"``. Defaults to ``"fp32"``.
        where: object. Named in error messages.
        measured: dict, optional. Seconds per forward pass on this machine for ``"auto"``
            (a fold ensemble passes the folds' :func:`measured_seconds`, so every fold runs
            on the same runtime). Defaults to this preset's own record.

    Returns:
        str. One of :data:`RUNTIMES`.

    Raises:
        InputError: for an unknown runtime or precision, a runtime the preset was not
            exported to or that is not installed (naming the pip extra), or bf16 asked for on
            a runtime or CPU without it.
    """
    if runtime not in ("auto", *RUNTIMES):
        raise InputError(f"runtime must be auto, {', '.join(RUNTIMES)}. Received: "
                         f"runtime={runtime!r}")
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}. Received: "
                         f"precision={precision!r}")
    if precision == "bf16" and not bf16_supported():
        raise InputError(
            "bf16 inference needs a CPU with AVX-512 BF16 or AMX-BF16; this CPU has "
            f"{', '.join(cpu_vector_extensions()) or 'no known vector extension'}. Use "
            "--precision fp32 (the default).")
    exported = exported_formats(metadata)
    if runtime == "auto":
        if measured is None:
            measured = measured_seconds([metadata])
        candidates = ["openvino"] if precision == "bf16" else list(auto_order(measured))
        for candidate in candidates:
            if (candidate == "keras" or candidate in exported) and runtime_installed(candidate):
                return candidate
        runtime = candidates[0]  # explained below
    if precision == "bf16" and runtime != "openvino":
        raise InputError(f"bf16 inference runs on OpenVINO only. Received: runtime={runtime!r}; "
                         "export the preset with hnprog export --format openvino")
    if runtime != "keras":
        if runtime not in exported:
            raise InputError(
                f"{where} has no {runtime} export (it has: {', '.join(exported) or 'none'}); "
                f"write one with: hnprog export MODEL --format {runtime} --out DIR")
        if not runtime_installed(runtime):
            raise InputError(f"the {runtime} runtime is not installed: pip install "
                             f"\"hnprog[{EXTRAS[runtime]}]\"")
    return runtime




@dataclasses.dataclass(frozen=True)
class ExportedPreset(PresetRecord):
    """An exported preset opened with OpenVINO or ONNX Runtime: a Predictor without Keras.

    Args:
        session: the runtime's model, an ``openvino.CompiledModel`` or an
            ``onnxruntime.InferenceSession``.
        runtime: str. ``"openvino"`` or ``"onnx"``.
        precision: str. ``"fp32"`` or ``"bf16"`` (OpenVINO only).
        metadata: dict. The folder's ``hnprog.json``.
        path: pathlib.Path. The exported preset folder.
        source: str. What the user asked for.
    """

    session: Any
    runtime: str
    precision: str
    metadata: dict[str, Any]
    path: Path
    source: str = ""

    @property
    def outputs(self) -> list[str]:
        """The output names, sorted (``"risk"``, ``"segmentation"``)."""
        return sorted(self.metadata.get("outputs", {}))

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        """The input shape without the batch axis, (D, H, W, 2), from ``hnprog.json``."""
        return tuple(self.metadata["input"]["shape"])

    def predict(self, x: Any, *, batch_size: int = 1, verbose: int = 0) -> dict[str, np.ndarray]:
        """Run the exported model, with the arguments and results of
        :meth:`hnprog.presets.preset.Preset.predict` (``verbose`` is ignored).

        Args:
            x: array (N, D, H, W, 2) float32, channels [CT, PET], preprocessed as
                :attr:`preprocessing` says, or ``{"image": array}``.
            batch_size: int. Images per forward pass. Defaults to 1.
            verbose: int. Ignored. Defaults to 0.

        Returns:
            dict. ``"risk"`` (N, 1) Cox log-hazard (higher is worse) and/or
            ``"segmentation"`` (N, D, H, W, 1) GTVt probability, float32.

        Raises:
            InputError: if ``x`` is not (N, D, H, W, 2) of the model's input shape.
        """
        image = check_images(x, self.input_shape, self.name)
        return run_session(self.session, self.runtime, image, batch_size=batch_size)


def load_exported(
    folder: str | os.PathLike,
    runtime: str,
    *,
    precision: str = "fp32",
    source: str | None = None,
    expected_sha256: Mapping[str, str] | None = None,
    root: str | os.PathLike | None = None,
) -> ExportedPreset:
    """Verify an exported preset folder and open its export with a runtime.

    Args:
        folder: str or PathLike. The exported preset folder.
        runtime: str. ``"openvino"`` or ``"onnx"``, or ``"auto"``
            (:func:`choose_runtime`; must not resolve to Keras here).
        precision: str. ``"fp32"`` or ``"bf16"`` (OpenVINO on a CPU with AVX-512 BF16 or
            AMX-BF16). Defaults to ``"fp32"``.
        source: str, optional. What the user asked for. Defaults to the folder.
        expected_sha256: mapping, optional. Pinned checksums (the registry). Defaults to None.
        root: str or PathLike, optional. See :func:`hnprog.presets.format.preset_file`.

    Returns:
        ExportedPreset.

    Raises:
        InputError: if a checksum differs, the folder has no export for the runtime, the
            runtime is not installed, or bf16 is not available.
    """
    folder = Path(folder)
    metadata = verify_preset(folder, expected_sha256=expected_sha256, root=root)
    runtime = choose_runtime(metadata, runtime, precision, where=folder)
    if runtime == "keras":
        raise InputError(f"{folder}: load_exported opens OpenVINO or ONNX exports; use "
                         "hnprog.from_preset for Keras")
    path = preset_file(folder, EXPORT_FILES[runtime][0], root=root)
    session = open_runtime(runtime, path, precision, sorted(metadata.get("outputs", {})))
    return ExportedPreset(session=session, runtime=runtime, precision=precision,
                          metadata=metadata, path=folder, source=source or str(folder))


def open_runtime(runtime: str, path: Path, precision: str, outputs: Sequence[str]) -> Any:
    """The runtime's model of the file at ``path``, checked to have the named outputs."""
    if runtime == "openvino":
        import openvino as ov

        core = ov.Core()
        session = core.compile_model(str(path), "CPU", {
            "INFERENCE_PRECISION_HINT": _OPENVINO_PRECISION[precision],
            "PERFORMANCE_HINT": "LATENCY",
        })
        names = [o.get_any_name() for o in session.outputs]
    else:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
    if sorted(names) != sorted(outputs):
        raise InputError(f"{path}: the exported model's outputs are {sorted(names)}, "
                         f"hnprog.json records {sorted(outputs)}")
    return session


def run_session(session: Any, runtime: str, image: np.ndarray, *, batch_size: int) -> dict[str, np.ndarray]:
    """Run a runtime's model on (N, D, H, W, 2) float32 in batches; outputs by name."""
    batch_size = max(1, int(batch_size))
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(image), batch_size):
        chunk = np.ascontiguousarray(image[start:start + batch_size])
        if runtime == "openvino":
            request = session.create_infer_request()  # one per call: safe across threads
            result = request.infer({0: chunk})
            named = {o.get_any_name(): np.array(result[o]) for o in session.outputs}
        else:
            values = session.run(None, {session.get_inputs()[0].name: chunk})
            named = {o.name: v for o, v in zip(session.get_outputs(), values)}
        for key, value in named.items():
            parts.setdefault(key, []).append(value)
    return {key: np.concatenate(values).astype("float32") for key, values in parts.items()}
