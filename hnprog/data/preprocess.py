"""Preprocess patients from their NIfTI files: one case, or a whole cohort with a failures file.

:func:`preprocess_patient` reads one patient with the one patient loader
(:func:`hnprog.data.loading.load_case`) and runs the one preprocessing pipeline
(:func:`hnprog.transforms.preprocess_case`) on it; :func:`preprocess_cohort` does every patient
through the cohort runner (:func:`hnprog.data.runner.run_cohort`), writes one ``<ID>.npz`` per
case, and records each broken patient in ``failures.csv`` instead of stopping at the first.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hnprog.data.bbox import write_bboxes
from hnprog.data.checks import check_intensities
from hnprog.data.cohort import Cohort, Patient
from hnprog.data.loading import load_case, read_mask
from hnprog.data.runner import FAILURES_FILE, run_cohort
from hnprog.errors import InputError
from hnprog.geometry import BoundingBox, Grid
from hnprog.io import atomic_write, output_folder, write_image, write_json
from hnprog.transforms import PreprocessConfig, PreprocessedCase, preprocess_case

__all__ = [
    "check_intensities",
    "load_case",
    "load_preprocessed",
    "preprocess_cohort",
    "preprocess_patient",
    "read_mask",
    "save_preprocessed",
]


def preprocess_patient(
    patient: Patient,
    box: BoundingBox | None = None,
    config: PreprocessConfig | None = None,
    *,
    rng: np.random.Generator | int | None = None,
) -> PreprocessedCase:
    """Read and preprocess one patient (see :func:`hnprog.transforms.preprocess_case`).

    Args:
        patient: Patient. Its files.
        box: BoundingBox, optional. Defaults to the automatic PET box.
        config: PreprocessConfig, optional. Defaults to ``PreprocessConfig()``.
        rng: numpy Generator, int or None. Augmentation randomness; None for none.

    Returns:
        PreprocessedCase: image ``(D, H, W, 2)`` float32, mask ``(D, H, W)`` uint8 or None,
        and the grid.

    Raises:
        PatientError: on any problem with this patient's files or geometry.
    """
    return preprocess_case(load_case(patient, box), config, rng=rng)


def save_preprocessed(case: PreprocessedCase, path: str | os.PathLike) -> None:
    """Write a preprocessed case as an uncompressed ``.npz`` (image, mask, grid), atomically."""
    arrays = {"image": case.image, **Grid.to_dict(case.grid)}
    if case.mask is not None:
        arrays["mask"] = case.mask
    with atomic_write(path, "wb") as f:
        np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})


def load_preprocessed(path: str | os.PathLike) -> PreprocessedCase:
    """Read a case written by :func:`save_preprocessed` (or ``hnprog preprocess``).

    Raises:
        InputError: if the file is missing or not such a file.
    """
    path = Path(path)
    try:
        with np.load(path) as data:
            grid = Grid.from_dict({k: data[k].tolist() for k in ("origin", "spacing", "size")})
            mask = data["mask"] if "mask" in data else None
            return PreprocessedCase(data["image"], mask, grid)
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"preprocessed case {path}: cannot be read: {exc}") from None


def preprocess_cohort(
    cohort: Cohort,
    out_dir: str | os.PathLike,
    config: PreprocessConfig | None = None,
    *,
    ids: Sequence[str] | None = None,
    write_nifti: bool = False,
    progress: bool = False,
    n_jobs: int = 1,
    executor: concurrent.futures.Executor | None = None,
) -> pd.DataFrame:
    """Preprocess every patient; keep going past broken ones and list them in ``failures.csv``.

    Writes into ``out_dir``: ``<ID>.npz`` per case (see :func:`save_preprocessed`); with
    ``write_nifti`` also ``<ID>_ct.nii.gz``, ``<ID>_pt.nii.gz`` (normalised channels) and
    ``<ID>_gtvt.nii.gz`` on the network grid, for a viewer; ``cases.csv`` (one row per
    preprocessed patient, with centre and endpoint), ``bboxes.csv`` (the boxes used, automatic
    ones included), ``failures.csv`` (``patient_id, error``; header only when all succeeded)
    and ``preprocess.json`` (parameters, counts, seconds). Patients go through the cohort
    runner (:func:`hnprog.data.runner.run_cohort`).

    Args:
        cohort: Cohort. The patients, boxes and endpoints.
        out_dir: str or PathLike. Output folder, created if needed.
        config: PreprocessConfig, optional. Defaults to ``PreprocessConfig()``.
        ids: sequence of str, optional. Patients to do. Defaults to all.
        write_nifti: bool. Also write the grid volumes as NIfTI. Defaults to False.
        progress: bool. Show a progress bar. Defaults to False.
        n_jobs: int. Worker processes. Defaults to 1.
        executor: concurrent.futures.Executor, optional. Where the patients run instead of
            local processes, e.g. a Dask ``Client(...).get_executor()``
            (:func:`hnprog.data.distributed.cohort_executor`); the images and ``out_dir``
            must be on a file system the workers see. Defaults to None.

    Returns:
        pandas.DataFrame of the failures (columns ``patient_id``, ``error``), empty when all
        succeeded.

    Raises:
        InputError: if another run holds ``out_dir`` (:func:`hnprog.io.output_folder`).
    """
    with output_folder(out_dir) as out_dir:  # one writer at a time; stale temp files removed
        return _preprocess_cohort(cohort, out_dir, config or PreprocessConfig(), ids=ids,
                                  write_nifti=write_nifti, progress=progress, n_jobs=n_jobs,
                                  executor=executor)


def _preprocess_cohort(cohort: Cohort, out_dir: Path, config: PreprocessConfig, *,
                       ids: Sequence[str] | None, write_nifti: bool, progress: bool,
                       n_jobs: int, executor: concurrent.futures.Executor | None
                       ) -> pd.DataFrame:
    patients = cohort.patients if ids is None else [cohort[i] for i in ids]
    work = functools.partial(_preprocess_one, out_dir=out_dir, config=config,
                             bboxes=cohort.bboxes, write_nifti=write_nifti)
    run = run_cohort(patients, work, n_jobs=n_jobs, progress=progress, desc="preprocess",
                     failures_file=out_dir / FAILURES_FILE, executor=executor)
    rows = []
    for pid, box in run.results.items():
        row = {"patient_id": pid, "file": f"{pid}.npz", "centre": cohort[pid].centre or ""}
        if cohort.endpoints is not None and pid in cohort.endpoints.index:
            row.update(event=int(cohort.endpoints.loc[pid, "event"]),
                       time=float(cohort.endpoints.loc[pid, "time"]))
        rows.append(row)
    with atomic_write(out_dir / "cases.csv", newline="") as f:
        pd.DataFrame(rows, columns=["patient_id", "file", "centre", "event", "time"]).to_csv(
            f, index=False
        )
    write_bboxes(run.results, out_dir / "bboxes.csv")
    write_json(
        {
            "config": config.to_dict(),
            "cohort": str(cohort.root),
            "n_cases": len(rows),
            "n_failures": len(run.failures),
            "seconds": round(run.seconds, 3),
        },
        out_dir / "preprocess.json",
    )
    return run.failure_table


def _preprocess_one(patient: Patient, *, out_dir: Path, config: PreprocessConfig,
                    bboxes: dict[str, BoundingBox], write_nifti: bool) -> BoundingBox:
    """One patient of :func:`preprocess_cohort`: read, preprocess, write; return the box used."""
    pid = patient.patient_id
    case = load_case(patient, bboxes.get(pid))
    result = preprocess_case(case, config)
    save_preprocessed(result, out_dir / f"{pid}.npz")
    if write_nifti:
        for channel, suffix in ((0, "ct"), (1, "pt")):
            write_image(result.grid.image(result.image[..., channel]),
                        out_dir / f"{pid}_{suffix}.nii.gz")
        if result.mask is not None:
            write_image(result.grid.image(result.mask), out_dir / f"{pid}_gtvt.nii.gz")
    return case.box
