"""Preprocess patients from their NIfTI files: one case, or a whole cohort with a failures file.

:func:`load_case` reads and checks one patient's files and returns a
:class:`~hnprog.transforms.Case`; :func:`preprocess_patient` runs the single preprocessing
pipeline (:func:`hnprog.transforms.preprocess_case`) on it; :func:`preprocess_cohort` does
every patient, writes one ``<ID>.npz`` per case, and records each broken patient in
``failures.csv`` instead of stopping at the first.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from hnprog.data.bbox import write_bboxes
from hnprog.geometry import BoundingBox
from hnprog.data.cohort import Cohort, Patient
from hnprog.errors import InputError, PatientError
from hnprog.io import atomic_write, read_image, write_image, write_json
from hnprog.transforms import (
    CT,
    MASK,
    PET,
    Case,
    Grid,
    PreprocessConfig,
    PreprocessedCase,
    preprocess_case,
)

__all__ = [
    "check_intensities",
    "load_case",
    "load_preprocessed",
    "patient_box",
    "preprocess_cohort",
    "preprocess_patient",
    "save_preprocessed",
]


def read_mask(path: Path, patient_id: str, labels: Sequence[int] = (0, 1)) -> sitk.Image:
    """Read a GTVt mask and return it as uint8 0/1 (label 1 = GTVt; other allowed labels -> 0).

    Raises:
        PatientError: naming the file, if it is missing, unreadable, holds NaN, or holds
            values other than ``labels``.
    """
    image = read_image(path, patient_id=patient_id, role="mask", pixel_type=sitk.sitkFloat32)
    values = sitk.GetArrayViewFromImage(image)
    allowed = np.zeros(values.shape, dtype=bool)
    for label in labels:
        allowed |= values == label
    if not allowed.all():
        unexpected = np.unique(values[~allowed])
        shown = ", ".join(f"{v:g}" for v in unexpected[:5]) + (
            ", ..." if unexpected.size > 5 else ""
        )
        raise PatientError(
            patient_id,
            f"mask file {path}: unexpected labels {{{shown}}}; expected only {set(labels)} "
            "(1 = GTVt)",
        )
    mask = sitk.GetImageFromArray((values == 1).astype(np.uint8))
    mask.CopyInformation(image)
    return mask


CT_AIR_HU = -500.0
"""A head-and-neck CT in HU always holds air below this value (HU)."""
PET_MAX_SUV = 1000.0
"""No PET in SUV exceeds this; activity concentrations (Bq/mL) do, by far."""


def check_intensities(ct: sitk.Image, pet: sitk.Image, patient_id: str,
                      ct_path: str | os.PathLike = "CT", pet_path: str | os.PathLike = "PET") -> None:
    """Refuse a CT that is not in HU or a PET that is not in SUV, with the likely cause.

    A swapped CT and PET, a CT stored without its rescale to HU, or a PET left in Bq/mL run
    through the network without any error and give meaningless risks and contours; their
    value ranges give them away:

    - the CT must hold air, some voxel below ``CT_AIR_HU`` (-500 HU);
    - the PET must lie within ``[-100, PET_MAX_SUV]`` (SUV: small negatives from
      reconstruction are fine; -1000 is the air of a CT; thousands are Bq/mL).

    Args:
        ct: SimpleITK.Image. The CT (HU).
        pet: SimpleITK.Image. The PET (SUV).
        patient_id: str. Named in the error.
        ct_path: str or PathLike. Named in the error. Defaults to ``"CT"``.
        pet_path: str or PathLike. Named in the error. Defaults to ``"PET"``.

    Raises:
        PatientError: naming the file, the range found and the likely cause.
    """
    stats = sitk.MinimumMaximumImageFilter()
    stats.Execute(ct)
    ct_min, ct_max = stats.GetMinimum(), stats.GetMaximum()
    stats.Execute(pet)
    pet_min, pet_max = stats.GetMinimum(), stats.GetMaximum()
    if pet_min < -100.0 and ct_min >= CT_AIR_HU:
        raise PatientError(
            patient_id,
            f"CT {ct_path} spans [{ct_min:g}, {ct_max:g}] and PET {pet_path} spans "
            f"[{pet_min:g}, {pet_max:g}]: the PET looks like a CT in HU and the CT like a PET; "
            "are the CT and PET swapped?",
        )
    if ct_min >= CT_AIR_HU:
        raise PatientError(
            patient_id,
            f"CT {ct_path} has no voxel below {CT_AIR_HU:g} HU (it spans [{ct_min:g}, "
            f"{ct_max:g}]), so it is not a head-and-neck CT in HU: a PET given as the CT, or "
            "a CT stored without its rescale slope/intercept?",
        )
    if pet_min < -100.0:
        raise PatientError(
            patient_id,
            f"PET {pet_path} has values down to {pet_min:g} (it spans [{pet_min:g}, "
            f"{pet_max:g}]), which a PET in SUV never holds: a CT given as the PET?",
        )
    if pet_max > PET_MAX_SUV:
        raise PatientError(
            patient_id,
            f"PET {pet_path} reaches {pet_max:g}, far above any SUV: it looks like activity "
            "concentration (Bq/mL); convert it to body-weight SUV (activity x weight / "
            "injected dose, decay-corrected) first",
        )


def patient_box(patient: Patient, pet: sitk.Image, bboxes: dict[str, BoundingBox]) -> BoundingBox:
    """The patient's box from ``bboxes``, else the automatic oropharynx box from the PET."""
    box = bboxes.get(patient.patient_id)
    if box is not None:
        return box
    from hnprog.data.bbox import auto_bbox

    return auto_bbox(pet, patient_id=patient.patient_id)


def load_case(
    patient: Patient,
    box: BoundingBox | None = None,
    *,
    with_mask: bool = True,
) -> Case:
    """Read one patient's CT, PET and mask (if any) into a :class:`~hnprog.transforms.Case`.

    Args:
        patient: Patient. Its files.
        box: BoundingBox, optional. The box (mm); None computes the automatic box from the
            PET (:func:`hnprog.data.bbox.auto_bbox`). Defaults to None.
        with_mask: bool. Whether to read the mask when the patient has one. Defaults to True.

    Returns:
        Case with float32 ``"ct"`` (HU) and ``"pet"`` (SUV) images, a uint8 ``"mask"`` when
        read, the box and the patient id. Images are not cropped yet.

    Raises:
        PatientError: naming the patient and file, on a missing or unreadable file, NaN
            voxels, a CT not in HU or a PET not in SUV (:func:`check_intensities`), or a mask
            with unexpected labels.
    """
    pid = patient.patient_id
    images = {
        CT: read_image(patient.ct, patient_id=pid, role="CT"),
        PET: read_image(patient.pet, patient_id=pid, role="PET"),
    }
    check_intensities(images[CT], images[PET], pid, patient.ct, patient.pet)
    if with_mask and patient.mask is not None:
        images[MASK] = read_mask(Path(patient.mask), pid, patient.mask_labels)
    if box is None:
        box = patient_box(patient, images[PET], {})
    return Case(images, box=box, patient_id=pid)


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
) -> pd.DataFrame:
    """Preprocess every patient; keep going past broken ones and list them in ``failures.csv``.

    Writes into ``out_dir``: ``<ID>.npz`` per case (see :func:`save_preprocessed`); with
    ``write_nifti`` also ``<ID>_ct.nii.gz``, ``<ID>_pt.nii.gz`` (normalised channels) and
    ``<ID>_gtvt.nii.gz`` on the network grid, for a viewer; ``cases.csv`` (one row per
    preprocessed patient, with centre and endpoint), ``bboxes.csv`` (the boxes used, automatic
    ones included), ``failures.csv`` (``patient_id, error``; header only when all succeeded)
    and ``preprocess.json`` (parameters, counts, seconds).

    Args:
        cohort: Cohort. The patients, boxes and endpoints.
        out_dir: str or PathLike. Output folder, created if needed.
        config: PreprocessConfig, optional. Defaults to ``PreprocessConfig()``.
        ids: sequence of str, optional. Patients to do. Defaults to all.
        write_nifti: bool. Also write the grid volumes as NIfTI. Defaults to False.
        progress: bool. Show a progress bar. Defaults to False.

    Returns:
        pandas.DataFrame of the failures (columns ``patient_id``, ``error``), empty when all
        succeeded.
    """
    config = config or PreprocessConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    patients = cohort.patients if ids is None else [cohort[i] for i in ids]
    if progress:
        from tqdm import tqdm

        patients = tqdm(patients, desc="preprocess", unit="case")
    rows, failures, boxes = [], [], {}
    start = time.perf_counter()
    for patient in patients:
        pid = patient.patient_id
        try:
            case = load_case(patient, cohort.bboxes.get(pid))
            boxes[pid] = case.box
            result = preprocess_case(case, config)
        except PatientError as exc:
            failures.append({"patient_id": pid, "error": exc.reason})
            continue
        except InputError as exc:
            failures.append({"patient_id": pid, "error": str(exc)})
            continue
        save_preprocessed(result, out_dir / f"{pid}.npz")
        if write_nifti:
            for channel, suffix in ((0, "ct"), (1, "pt")):
                write_image(
                    result.grid.image(result.image[..., channel]),
                    out_dir / f"{pid}_{suffix}.nii.gz",
                )
            if result.mask is not None:
                write_image(result.grid.image(result.mask), out_dir / f"{pid}_gtvt.nii.gz")
        row = {"patient_id": pid, "file": f"{pid}.npz", "centre": patient.centre or ""}
        if cohort.endpoints is not None and pid in cohort.endpoints.index:
            row.update(
                event=int(cohort.endpoints.loc[pid, "event"]),
                time=float(cohort.endpoints.loc[pid, "time"]),
            )
        rows.append(row)
    seconds = time.perf_counter() - start

    with atomic_write(out_dir / "cases.csv", newline="") as f:
        pd.DataFrame(rows, columns=["patient_id", "file", "centre", "event", "time"]).to_csv(
            f, index=False
        )
    failure_table = pd.DataFrame(failures, columns=["patient_id", "error"])
    with atomic_write(out_dir / "failures.csv", newline="") as f:
        failure_table.to_csv(f, index=False, quoting=csv.QUOTE_MINIMAL)
    write_bboxes(boxes, out_dir / "bboxes.csv")
    write_json(
        {
            "config": config.to_dict(),
            "cohort": str(cohort.root),
            "n_cases": len(rows),
            "n_failures": len(failures),
            "seconds": round(seconds, 3),
        },
        out_dir / "preprocess.json",
    )
    return failure_table
