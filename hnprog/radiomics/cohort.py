"""Radiomics features of a cohort: one row per patient, a per-patient cache, a failures file.

:func:`extract_patient` is the work for one patient (read through the patient loader, extract,
cache) and returns its row; it is a top-level function, so a process pool can run it.
:func:`extract_cohort_features` runs it over a cohort, writes the features table and
``failures.csv`` (``patient_id,error``), and :func:`read_features` reads such a table back.
"""

from __future__ import annotations

import concurrent.futures
import csv
import functools
import json
import multiprocessing
import os
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hnprog.data.cohort import Patient
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
    "check_finite_features",
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
    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / f"{_safe_name(pid)}-{_cache_key(patient, loaded)}.json"
        cached = _read_cache(cache_file, feature_names(loaded))
        if cached is not None:
            return {ID_COLUMN: pid, **cached}
    features = extract_features(read_case(patient), params=loaded)
    if cache_file is not None:
        write_json({"patient_id": pid, "features": features}, cache_file)
    return {ID_COLUMN: pid, **features}


def _check_label(params: Mapping[str, Any]) -> None:
    if params["label"] != 1:
        raise InputError(
            "radiomics params: the patient loader keeps only the GTVt (mask label 1), so a "
            f"cohort is extracted with label 1. Received: label={params['label']}"
        )


def _cache_key(patient: PatientRecord, params: Mapping[str, Any]) -> str:
    import radiomics

    settings = {"version": CACHE_VERSION, "pyradiomics": radiomics.__version__, "params": params}
    return input_fingerprint((patient.ct, patient.pet, patient.mask), settings)


def _read_cache(path: Path, columns: Sequence[str]) -> dict[str, float] | None:
    """The cached features, or None when the file is missing, unreadable or from other params."""
    if not path.is_file():
        return None
    try:
        cached = json.loads(path.read_text())["features"]
    except (ValueError, KeyError, TypeError):
        return None  # unreadable cache file: recompute
    return cached if isinstance(cached, dict) and list(cached) == list(columns) else None


def _safe_name(patient_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", patient_id) or "_"


# ---------------------------------------------------------------------------------------------
# A cohort


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
) -> pd.DataFrame:
    """Extract features for every patient, in parallel, with a per-patient cache.

    Each patient is done by :func:`extract_patient`, whose cache makes an interrupted run
    resume where it stopped and recomputes a changed input. A patient that fails (no mask,
    empty or single-voxel mask, mask outside the scan, a file missing or refused by the patient
    loader) is written to the failures CSV with its reason; the others complete.

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
            ``failures.csv`` next to ``out``.
        progress: bool. Show a tqdm progress bar on stderr. Defaults to True.
        jobs: int, optional. Deprecated alias of ``n_jobs``. Defaults to None.

    Returns:
        pandas.DataFrame indexed by ``patient_id``, one float column per feature, holding the
        patients that succeeded (in input order).

    Raises:
        InputError: if ``n_jobs`` < 1, there are no patients, a patient id repeats, the params
            are invalid, or every patient failed.
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
    if not isinstance(n_jobs, int) or n_jobs < 1:
        raise InputError(f"n_jobs must be a positive integer. Received: n_jobs={n_jobs!r}")
    loaded = load_params(params)
    _check_label(loaded)
    columns = feature_names(loaded)
    pyradiomics_extractors(loaded)  # fail early on invalid PyRadiomics settings
    patients = [as_patient(patient) for patient in patients]
    if not patients:
        raise InputError("no patients to extract features from")
    order = [patient.patient_id for patient in patients]
    if len(set(order)) != len(order):
        repeated = sorted({pid for pid in order if order.count(pid) > 1})
        raise InputError(f"patient ids must be unique. Received repeated ids: {repeated}")
    out = Path(out)
    cache = Path(cache_dir) if cache_dir is not None else out.parent / ".radiomics_cache"
    failures_path = Path(failures) if failures is not None else out.parent / "failures.csv"

    work = functools.partial(extract_patient, params=loaded, cache_dir=str(cache))
    rows, failed = _run_patients(patients, work, n_jobs=n_jobs, progress=progress)
    _write_failures(failures_path, {pid: failed[pid] for pid in order if pid in failed})
    if not rows:
        raise InputError(
            f"feature extraction failed for all {len(patients)} patients; reasons in "
            f"{failures_path}"
        )
    table = pd.DataFrame.from_records(
        [rows[pid] for pid in order if pid in rows], columns=[ID_COLUMN, *columns]
    ).set_index(ID_COLUMN)
    with atomic_write(out, newline="") as f:
        table.to_csv(f, float_format="%.10g")
    return table


def _run_patients(
    patients: Sequence[Patient],
    work: Callable[[Patient], dict[str, Any]],
    *,
    n_jobs: int,
    progress: bool,
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Run ``work`` on every patient: rows and failure reasons, by patient id.

    The stand-in for the cohort runner: a progress bar, ``n_jobs`` worker processes, and a
    :class:`PatientError` (or any crash) of one patient recorded as its reason.
    """
    from tqdm.auto import tqdm

    rows: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}

    def collect(patient_id: str, result: Callable[[], dict[str, Any]]) -> None:
        try:
            rows[patient_id] = result()
        except PatientError as exc:
            failed[patient_id] = exc.reason
        except Exception as exc:  # noqa: BLE001 - one patient's crash must not stop the cohort
            failed[patient_id] = f"{type(exc).__name__}: {exc}"
        bar.update(1)

    with tqdm(total=len(patients), desc="radiomics", unit="patient", disable=not progress) as bar:
        if n_jobs == 1 or len(patients) <= 1:
            for patient in patients:
                collect(patient.patient_id, functools.partial(work, patient))
        else:
            with concurrent.futures.ProcessPoolExecutor(
                max_workers=n_jobs, mp_context=_process_context()
            ) as pool:
                futures = {pool.submit(work, patient): patient.patient_id for patient in patients}
                for future in concurrent.futures.as_completed(futures):
                    collect(futures[future], future.result)
    return rows, failed


def _write_failures(path: Path, failed: Mapping[str, str]) -> None:
    with atomic_write(path, newline="") as f:
        writer = csv.writer(f)
        writer.writerow([ID_COLUMN, "error"])
        writer.writerows(failed.items())


def _process_context() -> multiprocessing.context.BaseContext:
    """Start workers without fork: the parent may hold threads (TensorFlow, tqdm)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # Import the heavy modules once in the fork server; each worker then starts ready.
    context.set_forkserver_preload([__name__, "radiomics.featureextractor"])
    return context


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
