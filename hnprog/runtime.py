"""The machine and software hnprog runs on: the Keras backend's devices and the key versions.

``hnprog info`` prints :func:`runtime_summary`; bug reports ask for it. This module sits in
the bottom layer with :mod:`hnprog.cpu` (which it uses for the CPU lines): of hnprog it imports
only that and ``hnprog.__version__``, and the backend libraries (Keras, JAX, PyTorch,
TensorFlow) only inside the functions that report on them.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import metadata

from hnprog.cpu import cpu_name, cpu_vector_extensions, onednn_status

__all__ = ["KEY_PACKAGES", "available_devices", "package_versions", "runtime_summary"]

#: Distributions whose versions a bug report needs (names as pip knows them).
KEY_PACKAGES = (
    "keras",
    "tensorflow",
    "jax",
    "torch",
    "numpy",
    "SimpleITK",
    "pyradiomics-bhklab",
    "scikit-survival",
    "huggingface-hub",
    "click",
    "openvino",
    "onnxruntime",
    "distributed",
)


def available_devices(backend: str) -> list[str]:
    """The devices a Keras backend can compute on, as that backend names them.

    A diagnostic: it never raises. A backend that fails to start gives one entry
    ``"unknown (<the error>)"``.

    Args:
        backend: str. ``"jax"``, ``"torch"`` or ``"tensorflow"``; any other backend
            (``"numpy"``) computes on the CPU only.

    Returns:
        list of str, e.g. ``["/device:CPU:0", "/device:GPU:0"]`` (TensorFlow),
        ``["cpu", "cuda:0"]`` (PyTorch) or ``["TFRT_CPU_0"]`` (JAX).
    """
    try:
        if backend == "jax":
            import jax

            return [str(d) for d in jax.devices()]
        if backend == "torch":
            import torch

            gpus = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
            return ["cpu", *gpus]
        if backend == "tensorflow":
            import tensorflow as tf

            return [d.name for d in tf.config.list_logical_devices()]
    except Exception as exc:  # noqa: BLE001 - a diagnostic reports, never fails
        return [f"unknown ({exc})"]
    return ["cpu"]


def package_versions(packages: Iterable[str] = KEY_PACKAGES) -> dict[str, str]:
    """The installed version of each distribution, or ``"not installed"``.

    Args:
        packages: iterable of str. Distribution names. Defaults to :data:`KEY_PACKAGES`.

    Returns:
        dict of str to str, in the order given.
    """
    versions = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def runtime_summary() -> list[str]:
    """What ``hnprog info`` prints: one line each for hnprog, the CPU, oneDNN, the backend,
    its devices, then the key versions.

    Imports Keras (and so starts its backend). The oneDNN line appears only under the
    TensorFlow backend.

    Returns:
        list of str, the lines without line ends.
    """
    import keras

    from hnprog import __version__

    backend = keras.backend.backend()
    extensions = cpu_vector_extensions()
    lines = [
        f"hnprog {__version__}",
        f"CPU: {cpu_name()}; vector extensions: {', '.join(extensions) or 'unknown'}",
    ]
    if backend == "tensorflow":
        lines.append(f"TensorFlow oneDNN kernels: {onednn_status()}")
    lines += [
        f"Keras backend: {backend} (set KERAS_BACKEND to change it)",
        f"devices: {', '.join(available_devices(backend))}",
    ]
    lines += [f"  {package:<20} {version}" for package, version in package_versions().items()]
    return lines
