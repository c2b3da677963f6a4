"""Radiomics features of a cohort: one row per patient, a per-patient cache, a failures file.

:func:`extract_patient` is the work for one patient (read through the patient loader, extract,
cache) and returns its row; it is a top-level function, so a process pool can run it.
:func:`extract_cohort_features` runs it over a cohort through the cohort runner
(:func:`hnprog.data.runner.run_cohort`: progress, ``n_jobs``, resume from the cache,
``<stem>_failures.csv`` with ``patient_id,error``) and writes the features table;
:func:`read_features` reads such a table back.
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
import os
import re
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hnprog.data.runner import run_cohort
from hnprog.errors import InputError, PatientError
from hnprog.io import atomic_write, input_fingerprint, write_json
from hnprog.radiomics.features import (
    PatientRecord,
    pyradiomics_extractors,
    as_patient,
    extract_features,
    read_case,
)
from hnprog.radiomics.params import feature_names, load_params

__all__ = [
    "ID_COLUMN",
    "cached_row",
    "check_finite_features",
    "default_failures_path",
    "extract_cohort_features",
    "extract_patient",
    "read_features",
]

ID_COLUMN = "patient_id"
# Bump when the extraction code changes in a way that changes feature values (invalidates caches).
CACHE_VERSION = 1


# ---------------------------------------------------------------------------------------------
# One patient


def extract_patient(
    patient: PatientRecord,
    *,
    params: str | os.PathLike | Mapping[str, Any] | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """One patient's row of the features table: read, extract and cache its features.

    The patient is read through the patient loader (:func:`hnprog.radiomics.features.read_case`),
    so its CT must be in HU, its PET in SUV and its mask hold only its ``mask_labels``. With a
    ``cache_dir``, the features are kept in one small JSON file named after the patient and
    a hash of its input files (path, size, modification time), the params and the PyRadiomics
    version (:func:`hnprog.io.input_fingerprint`); a later call with unchanged inputs reads it
    instead of recomputing. A top-level function of picklable arguments, for process pools.

    Args:
        patient: Patient, or any record with ``patient_id``, ``ct``, ``pet`` and ``mask``.
        params: str, PathLike, dict or None. Params file; None for the paper's 274 features.
            Defaults to None.
        cache_dir: str, PathLike or None. Folder of the per-patient cache files. Defaults to
            None (no cache).

    Returns:
        dict: ``patient_id`` then the features in
        :func:`hnprog.radiomics.params.feature_names` order.

    Raises:
        PatientError: if the patient has no mask, a file is missing or refused by the loader,
            or the extraction fails (see :func:`hnprog.radiomics.features.extract_features`).
        InputError: if the params are invalid, or their ``label`` is not the GTVt's (1).
    """
    loaded = load_params(params)
    _check_label(loaded)
    pid = patient.patient_id
    if patient.mask is None:
        raise PatientError(pid, "no GTVt mask")
    missing = [
        role
        for role, path in (("CT", patient.ct), ("PET", patient.pet), ("mask", patient.mask))
        if path is None or not Path(path).is_file()
    ]
    if missing:
        raise PatientError(pid, f"file not found: {', '.join(missing)}")
    if cache_dir is not None:
        cached = cached_row(patient, params=loaded, cache_dir=cache_dir)
        if cached is not None:
            return cached
    features = extract_features(read_case(patient), params=loaded)
    if cache_dir is not None:
        cache_file = _cache_file(patient, loaded, cache_dir)
        write_json({"patient_id": pid, "features": features}, cache_file)
    return {ID_COLUMN: pid, **features}


def cached_row(
    patient: PatientRecord, *, params: Mapping[str, Any], cache_dir: str | os.PathLike
) -> dict[str, Any] | None:
    """The patient's row from the cache of :func:`extract_patient`, or None to compute it.

    The ``resume`` of the cohort runner: None when there is no cache file for the patient's
    current inputs and params, or when it is unreadable or holds other features.

    Args:
        patient: Patient, or any record with ``patient_id``, ``ct``, ``pet`` and ``mask``.
        params: dict. Loaded params (:func:`hnprog.radiomics.params.load_params`).
        cache_dir: str or PathLike. The cache folder.

    Returns:
        dict (as :func:`extract_patient` returns) or None.
    """
    path = _cache_file(patient, params, cache_dir)
    if patient.mask is None or not path.is_file():
        return None
    try:
        cached = json.loads(path.read_text())["features"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # unreadable cache file: recompute
    if not isinstance(cached, dict) or list(cached) != feature_names(params):
        return None
    return {ID_COLUMN: patient.patient_id, **cached}


def _check_label(params: Mapping[str, Any]) -> None:
    if params["label"] != 1:
        raise InputError(
            "radiomics params: the patient loader keeps only the GTVt (mask label 1), so a "
            f"cohort is extracted with label 1. Received: label={params['label']}"
        )


def _cache_file(
    patient: PatientRecord, params: Mapping[str, Any], cache_dir: str | os.PathLike
) -> Path:
    """``<cache_dir>/<ID>-<fingerprint of the input files, params, PyRadiomics>.json``."""
    import radiomics

    settings = {"version": CACHE_VERSION, "pyradiomics": radiomics.__version__, "params": params}
    key = input_fingerprint((patient.ct, patient.pet, patient.mask), settings)
    safe_id = re.sub(r"[^A-Za-z0-9._-]", "_", patient.patient_id) or "_"
    return Path(cache_dir) / f"{safe_id}-{key}.json"


# ---------------------------------------------------------------------------------------------
# A cohort


def default_failures_path(out: str | os.PathLike) -> Path:
    """Where a features table's failures go by default: ``<stem>_failures.csv`` beside it.

    Example:
        >>> default_failures_path("radiomics/train.csv").as_posix()
        'radiomics/train_failures.csv'
    """
    out = Path(out)
    return out.with_name(f"{out.stem}_failures.csv")


def extract_cohort_features(
    patients: Iterable[PatientRecord],
    out: str | os.PathLike,
    *,
    params: str | os.PathLike | Mapping[str, Any] | None = None,
    n_jobs: int = 1,
    cache_dir: str | os.PathLike | None = None,
    failures: str | os.PathLike | None = None,
    progress: bool = True,
    jobs: int | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> pd.DataFrame:
    """Extract features for every patient, in parallel, with a per-patient cache.

    The cohort runner (:func:`hnprog.data.runner.run_cohort`) does each patient with
    :func:`extract_patient`; its cache (:func:`cached_row`) makes an interrupted run resume
    where it stopped without recomputing, and a changed input is recomputed. A patient that
    fails (no mask, empty or single-voxel mask, mask outside the scan, a file missing or
    refused by the patient loader) is written to the failures CSV with its reason; the others
    complete.

    Args:
        patients: iterable of patient records with ``patient_id``, ``ct``, ``pet`` and
            ``mask`` (such as ``hnprog.data.cohort.Patient``, or a ``Cohort``; ``mask`` may
            be None, which counts as a failure).
        out: str or PathLike. The features CSV: one row per patient, column ``patient_id`` then
            the features in :func:`hnprog.radiomics.params.feature_names` order. Written
            atomically.
        params: str, PathLike, dict or None. Params file; None for the paper's 274 features.
            Defaults to None.
        n_jobs: int. Worker processes. Defaults to 1 (no subprocess).
        cache_dir: str, PathLike or None. Folder of per-patient cache files. Defaults to None,
            meaning ``<out folder>/.radiomics_cache``.
        failures: str, PathLike or None. The failures CSV (columns ``patient_id, error``),
            always written (header only when nothing failed). Defaults to None, meaning
            :func:`default_failures_path` (``features_failures.csv`` for ``features.csv``),
            so two extractions into one folder keep their own failures.
        progress: bool. Show a progress bar on stderr (:func:`hnprog.data.runner.progress_bar`).
            Defaults to True.
        jobs: int, optional. Deprecated alias of ``n_jobs``. Defaults to None.
        executor: concurrent.futures.Executor, optional. Where the patients run instead of
            local processes, e.g. a Dask ``Client(...).get_executor()``
            (:func:`hnprog.data.distributed.cohort_executor`); the images and the cache
            folder must be on a file system the workers see. Defaults to None.

    Returns:
        pandas.DataFrame indexed by ``patient_id``, one float column per feature, holding the
        patients that succeeded (in input order).

    Raises:
        InputError: if ``n_jobs`` < 1, there are no patients, a patient id repeats, the params
            are invalid (or their ``label`` is not 1), or every patient failed.
    """
    if jobs is not None:
        if n_jobs != 1:
            raise TypeError("give n_jobs only; jobs is its deprecated alias")
        warnings.warn(
            "extract_cohort_features(jobs=...) is deprecated and will stop working in the next "
            "release; use n_jobs=...",
            DeprecationWarning,
            stacklevel=2,
        )
        n_jobs = jobs
    loaded = load_params(params)
    _check_label(loaded)
    columns = feature_names(loaded)
    pyradiomics_extractors(loaded)  # fail early on invalid PyRadiomics settings
    patients = [as_patient(patient) for patient in patients]  # picklable, for the workers
    if not patients:
        raise InputError("no patients to extract features from")
    out = Path(out)
    cache = Path(cache_dir) if cache_dir is not None else out.parent / ".radiomics_cache"
    failures_path = Path(failures) if failures is not None else default_failures_path(out)

    run = run_cohort(
        patients,
        functools.partial(extract_patient, params=loaded, cache_dir=str(cache)),
        n_jobs=n_jobs,
        executor=executor,
        resume=functools.partial(cached_row, params=loaded, cache_dir=cache),
        progress=progress,
        desc="radiomics",
        failures_file=failures_path,
    )
    if not run.results:
        raise InputError(
            f"feature extraction failed for all {len(patients)} patients; reasons in "
            f"{failures_path}"
        )
    table = pd.DataFrame.from_records(
        list(run.results.values()), columns=[ID_COLUMN, *columns]
    ).set_index(ID_COLUMN)
    with atomic_write(out, newline="") as f:
        table.to_csv(f, float_format="%.10g")
    return table


# ---------------------------------------------------------------------------------------------
# Reading a features table


def read_features(path: str | os.PathLike) -> pd.DataFrame:
    """Read a features CSV written by :func:`extract_cohort_features` (or by hand).

    Args:
        path: str or PathLike. CSV whose column ``patient_id`` (else ``PatientID``, else the
            first column) holds patient ids and whose other columns are numeric features.

    Returns:
        pandas.DataFrame indexed by patient id (str), float columns.

    Raises:
        InputError: naming the file, if it is missing, empty, has repeated patient ids,
            non-numeric values, or missing values (naming the features and patients).
    """
    path = Path(path)
    where = f"features file {path}"
    if not path.is_file():
        raise InputError(f"{where}: file not found")
    try:
        table = pd.read_csv(path, dtype={ID_COLUMN: str, "PatientID": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{where}: not a readable CSV: {exc}") from None
    id_column = next((c for c in (ID_COLUMN, "PatientID") if c in table.columns), table.columns[0])
    table[id_column] = table[id_column].astype(str)
    table = table.set_index(id_column)
    table.index.name = ID_COLUMN
    if table.empty or table.shape[1] == 0:
        raise InputError(f"{where}: no patients or no feature columns")
    repeated = table.index[table.index.duplicated()].unique().tolist()
    if repeated:
        raise InputError(f"{where}: patient ids repeated: {repeated[:5]}")
    non_numeric = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
    if non_numeric:
        column = non_numeric[0]
        bad = pd.to_numeric(table[column], errors="coerce").isna() & table[column].notna()
        raise InputError(
            f"{where}: feature columns must be numbers; {len(non_numeric)} are not, e.g. "
            f"{column!r} for patient {bad.idxmax() if bad.any() else '?'}: "
            f"{table[column][bad].iloc[0] if bad.any() else '?'!r}"
        )
    table = table.astype(float)
    check_finite_features(table, where=where)
    return table


def check_finite_features(table: pd.DataFrame, *, where: str = "features") -> None:
    """Raise a clear :class:`InputError` when a feature table holds NaN or infinite values.

    Args:
        table: pandas.DataFrame. Patients as rows (index = patient id), features as columns.
        where: str. What the table is, for the message. Defaults to ``"features"``.

    Raises:
        InputError: naming up to five features and patients with missing values.
    """
    values = table.to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        columns = table.columns[bad.any(axis=0)].tolist()
        rows = table.index[bad.any(axis=1)].tolist()
        raise InputError(
            f"{where}: {int(bad.sum())} missing or infinite values in {len(columns)} features "
            f"(e.g. {columns[:5]}) for {len(rows)} patients (e.g. {rows[:5]}); drop or impute "
            "them first"
        )
