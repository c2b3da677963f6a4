"""The CPU hnprog runs on: its vector extensions, and TensorFlow's oneDNN switch.

TensorFlow turns its oneDNN kernels on by default only on CPUs with AVX-512 VNNI/BF16 or
AMX. On a CPU with AVX2 and FMA but no AVX-512 (a common workstation and cloud CPU) they stay
off, and the 3D convolutions of the UNet run 6-9 times slower than the same wheel can run
them (see ``docs/troubleshooting.md``). :func:`enable_onednn` sets
``TF_ENABLE_ONEDNN_OPTS=1`` unless the user set it; ``import hnprog`` calls it, so it takes
effect whenever hnprog is imported before TensorFlow. Imported after a TensorFlow that runs
without oneDNN (``import keras`` first, on such a CPU), hnprog warns: TensorFlow reads the
variable once, when it loads, and cannot be switched afterwards.

This module imports nothing heavy: the CLI's ``--help`` and ``hnprog info`` use it before
Keras starts.
"""

from __future__ import annotations

import os
import platform
import sys
import warnings

__all__ = [
    "ONEDNN_VARIABLE",
    "cpu_model_numbers",
    "cpu_vector_extensions",
    "enable_onednn",
    "machine_signature",
    "onednn_status",
    "tensorflow_onednn_active",
]

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
_FALSE_WORDS = {"0", "false", "no", "off"}

# /proc/cpuinfo flag -> the name users know, in the order of the vector width they add
_VECTOR_FLAGS = {
    "sse4_2": "SSE4.2",
    "avx": "AVX",
    "avx2": "AVX2",
    "fma": "FMA",
    "avx512f": "AVX-512F",
    "avx512_vnni": "AVX-512 VNNI",
    "avx512_bf16": "AVX-512 BF16",
    "avx512_fp16": "AVX-512 FP16",
    "amx_tile": "AMX",
    "amx_bf16": "AMX-BF16",
    "amx_int8": "AMX-INT8",
}


#: warned when TensorFlow was imported before hnprog and runs without oneDNN
LATE_IMPORT_WARNING = (
    "TensorFlow was imported before hnprog and runs without its oneDNN kernels (TensorFlow's "
    "default on CPUs without AVX-512 VNNI/BF16 or AMX): the UNet runs 6-9 times slower. "
    "Import hnprog before keras and tensorflow, or set TF_ENABLE_ONEDNN_OPTS=1 before Python "
    "starts (docs/troubleshooting.md)."
)


def enable_onednn() -> bool:
    """Set ``TF_ENABLE_ONEDNN_OPTS=1`` unless the user set the variable.

    Must run before TensorFlow is imported to have any effect (TensorFlow reads the variable
    once, when it loads); with TensorFlow already imported nothing changes, and a
    ``RuntimeWarning`` (:data:`LATE_IMPORT_WARNING`) says so when that TensorFlow runs
    without oneDNN.

    Returns:
        bool. True when this call set the variable.
    """
    if ONEDNN_VARIABLE in os.environ:
        return False
    if "tensorflow" in sys.modules:
        if tensorflow_onednn_active() is False:
            warnings.warn(LATE_IMPORT_WARNING, RuntimeWarning, stacklevel=2)
        return False
    os.environ[ONEDNN_VARIABLE] = "1"
    return True


def tensorflow_onednn_active() -> bool | None:
    """Whether the TensorFlow imported in this process runs its oneDNN kernels.

    Returns:
        bool or None. None when TensorFlow is not imported (nothing is decided yet) or does
        not say.
    """
    if "tensorflow" not in sys.modules:
        return None
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except Exception:  # noqa: BLE001 - a private TensorFlow module, asked for a diagnosis only
        return None


def onednn_status() -> str:
    """Whether TensorFlow's oneDNN kernels are on in this process, and who decided.

    Returns:
        str. ``"on (TF_ENABLE_ONEDNN_OPTS=1)"``, ``"off (TF_ENABLE_ONEDNN_OPTS=0)"``, or,
        when the variable is unset (TensorFlow was imported before hnprog), ``"TensorFlow's
        default"`` preceded by ``"on: "`` or ``"off: "`` when TensorFlow says which.
    """
    value = os.environ.get(ONEDNN_VARIABLE)
    if value is None:
        active = tensorflow_onednn_active()
        said = "" if active is None else ("on: " if active else "off: ")
        return f"{said}TensorFlow's default (TensorFlow was imported before hnprog)"
    if value.strip().lower() in _FALSE_WORDS:
        return f"off ({ONEDNN_VARIABLE}={value})"
    return f"on ({ONEDNN_VARIABLE}={value})"


def cpu_vector_extensions(cpuinfo: str | None = None) -> list[str]:
    """The SIMD extensions of this CPU that matter for TensorFlow's kernels.

    Args:
        cpuinfo: str, optional. The text of ``/proc/cpuinfo``; read from the system when None.

    Returns:
        list of str, e.g. ``["SSE4.2", "AVX", "AVX2", "FMA"]``; empty when the flags cannot be
        read (not Linux, or not x86-64).
    """
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
                cpuinfo = f.read()
        except OSError:
            return []
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.partition(":")[2].split())
            break
    return [name for flag, name in _VECTOR_FLAGS.items() if flag in flags]


def cpu_model_numbers() -> str:
    """The CPU's family, model and stepping from ``/proc/cpuinfo`` (x86), e.g.
    ``"family 25 model 1 stepping 1"``; empty where the system does not say."""
    wanted = {"cpu family": "family", "model": "model", "stepping": "stepping"}
    found: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in wanted and wanted[key] not in found:
                    found[wanted[key]] = value.strip()
                if not line.strip() and found:
                    break  # the first processor's block is enough
    except OSError:
        pass
    return " ".join(f"{name} {found[name]}" for name in wanted.values() if name in found)


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else the platform's processor string."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_signature() -> dict[str, object]:
    """What a speed measurement depends on: the CPU, its extensions and cores, oneDNN.

    Two machines with equal signatures are taken to rank inference runtimes alike; a
    measurement recorded elsewhere is not (``docs/benchmarks.md``: two 2-core AVX2 EPYCs
    ranked OpenVINO and TensorFlow in opposite orders).

    A hypervisor may report only a family name ("AMD EPYC"); ``cpu_model`` adds the family,
    model and stepping numbers, but two machines with the same CPU model at other clocks or
    loads still look alike: record the measurement on the machine that will use it.

    Returns:
        dict. ``cpu`` (str), ``cpu_model`` (str, :func:`cpu_model_numbers`),
        ``vector_extensions`` (list of str), ``logical_cpus`` (int) and
        ``onednn``: True or False as ``TF_ENABLE_ONEDNN_OPTS`` says, None when it is unset
        (TensorFlow's own default).
    """
    value = os.environ.get(ONEDNN_VARIABLE)
    return {
        "cpu": cpu_name(),
        "cpu_model": cpu_model_numbers(),
        "vector_extensions": cpu_vector_extensions(),
        "logical_cpus": os.cpu_count() or 1,
        "onednn": None if value is None else value.strip().lower() not in _FALSE_WORDS,
    }
