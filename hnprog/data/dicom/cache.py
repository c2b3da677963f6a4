"""DICOM patient folders read as a cohort: converted once into a NIfTI cache.

:func:`cached_patients` is the ``dicom`` layout of :func:`hnprog.data.cohort.read_cohort`:
every command that reads a cohort (``predict``, ``radiomics extract``, ``train``, ``cv``,
``finetune``, ``preprocess``) accepts a folder of DICOM patient folders (or one patient
folder) and reads the converted NIfTI files. The cache folder is
``$HNPROG_DICOM_CACHE`` (default ``~/.cache/hnprog/dicom``) ``/<key>``, where the key hashes
every file below the DICOM folder (path, size, modification time): rewritten DICOM files give
a new conversion, an unchanged folder is converted only once.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

__all__ = ["DICOM_CACHE_ENV", "cache_folder", "cached_patients", "has_dicom_patients"]

DICOM_CACHE_ENV = "HNPROG_DICOM_CACHE"
_VERSION = 1

logger = logging.getLogger(__name__)


def cache_folder(root: str | os.PathLike) -> Path:
    """The NIfTI cache folder of a DICOM folder (see the module docstring)."""
    from hnprog.io import input_fingerprint

    root = Path(root).resolve()
    files = sorted(p for p in root.rglob("*") if p.is_file())
    key = input_fingerprint(files, {"dicom_cache": _VERSION, "root": str(root)})
    base = Path(os.environ.get(DICOM_CACHE_ENV) or Path.home() / ".cache" / "hnprog" / "dicom")
    return base / f"{root.name}-{key}"


def has_dicom_patients(root: str | os.PathLike) -> bool:
    """Whether ``root`` holds DICOM files directly or in its subfolders (one level of patient
    folders, files anywhere below them)."""
    from hnprog.data.dicom.convert import find_dicom_patients
    from hnprog.errors import InputError

    try:
        return bool(find_dicom_patients(root))
    except InputError:
        return False


def cached_patients(root: str | os.PathLike) -> list[tuple[str, Path, Path, Path | None]]:
    """Convert the DICOM patients of ``root`` into the cache (once) and list their files.

    A patient whose conversion failed is kept with CT and PET paths that say why (``...
    (DICOM conversion failed: reason)``), so that loading it reports the reason as any missing
    file would, and the other patients go on.

    Args:
        root: str or PathLike. A DICOM patient folder or a folder of them.

    Returns:
        list of ``(patient_id, ct, pet, mask or None)``, sorted by id; the
        :class:`~hnprog.data.cohort.Patient` fields.
    """
    from hnprog.data.dicom.convert import convert_dicom

    cache = cache_folder(root)
    logger.info("DICOM folder %s: NIfTI cache %s", root, cache)
    run = convert_dicom(root, cache, progress=sys.stderr.isatty())
    patients = []
    for pid, row in run.results.items():
        mask = cache / row["mask"] if row.get("mask") else None
        patients.append((pid, cache / row["ct"], cache / row["pet"], mask))
    for pid, reason in run.failures.items():
        failed = cache / f"{pid} (DICOM conversion failed: {reason})"
        patients.append((pid, failed, failed, None))
    return sorted(patients, key=lambda p: p[0])
