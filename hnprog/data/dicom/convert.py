"""Convert DICOM patient folders to the HECKTOR 2021 NIfTI layout.

One patient folder (DICOM files anywhere below it) gives ``<ID>_ct.nii.gz`` (HU),
``<ID>_pt.nii.gz`` (SUV, body weight) and, when it holds an RTSTRUCT with a matching ROI,
``<ID>_gtvt.nii.gz`` (0/1 on the grid of the series the RTSTRUCT references), the folder's
name as ``<ID>``. A cohort is converted through :func:`hnprog.data.runner.run_cohort`
(progress, ``failures.csv``, resume), and ``manifest.csv`` records each patient's files, the
series used and the SUV factor with its inputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING

import pandas as pd
import SimpleITK as sitk

from hnprog.errors import InputError, PatientError

if TYPE_CHECKING:
    from hnprog.data.runner import CohortRun

__all__ = ["DicomPatient", "MANIFEST_COLUMNS", "convert_dicom", "convert_dicom_patient",
           "find_dicom_patients"]

MANIFEST_COLUMNS = (
    "patient_id", "ct", "pet", "mask", "roi", "mask_series", "ct_series", "pet_series",
    "suv_factor", "suv_units", "suv_weight_kg", "suv_dose_bq", "suv_decayed_dose_bq",
    "suv_half_life_s", "suv_decay_s", "suv_decay_correction", "suv_source",
)


@dataclass(frozen=True)
class DicomPatient:
    """A DICOM patient folder.

    Args:
        patient_id: str. The folder's name.
        folder: Path. The folder (DICOM files anywhere below it).
    """

    patient_id: str
    folder: Path


def _is_dicom_file(path: Path) -> bool:
    """A DICOM Part 10 file: the ``DICM`` marker after the 128-byte preamble."""
    if not path.is_file() or path.name.startswith("."):
        return False
    try:
        with open(path, "rb") as f:
            return f.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def _first_dicom(folder: Path, *, recursive: bool) -> Path | None:
    files = sorted(folder.rglob("*")) if recursive else sorted(folder.iterdir())
    return next((p for p in files if _is_dicom_file(p)), None)


def find_dicom_patients(src: str | os.PathLike) -> list[DicomPatient]:
    """The patient folders of ``src``: ``src`` itself, or each of its subfolders.

    ``src`` is one patient when DICOM files lie directly in it, or when its subfolders with
    DICOM files are all named after a modality (``CT``, ``PT``, ``PET``, ``RTSTRUCT``,
    ``RTSS``, ``SEG``, any case) and carry one PatientID (checked on one file each). Otherwise
    every subfolder with DICOM files anywhere below it is a patient, named after the
    subfolder.

    Args:
        src: str or PathLike. A patient folder or a folder of patient folders.

    Returns:
        list of DicomPatient, sorted by id.

    Raises:
        InputError: if ``src`` is not a folder or holds no DICOM file.
    """
    import pydicom

    src = Path(src)
    if not src.is_dir():
        raise InputError(f"DICOM folder {src}: not a folder")
    modality_names = {"CT", "PT", "PET", "RTSTRUCT", "RTSS", "SEG"}
    if _first_dicom(src, recursive=False) is not None:
        return [DicomPatient(src.name, src)]
    firsts = {p: _first_dicom(p, recursive=True) for p in sorted(src.iterdir()) if p.is_dir()}
    subs = [p for p, first in firsts.items() if first is not None]
    if not subs:
        raise InputError(f"DICOM folder {src}: no DICOM files found below it")
    if all(sub.name.upper() in modality_names for sub in subs):
        ids = {str(pydicom.dcmread(firsts[sub], stop_before_pixels=True,
                                   specific_tags=["PatientID"]).get("PatientID", ""))
               for sub in subs}
        if len(ids) == 1:
            return [DicomPatient(src.name, src)]
    return [DicomPatient(sub.name, sub) for sub in subs]


def convert_dicom_patient(folder: str | os.PathLike, out_dir: str | os.PathLike, *,
                          patient_id: str | None = None, roi: str | None = None,
                          weight_kg: float | None = None, dose_mbq: float | None = None,
                          injection_time: str | None = None) -> dict:
    """Convert one DICOM patient folder to NIfTI.

    Args:
        folder: str or PathLike. DICOM files anywhere below it: a CT series, a PET series
            and optionally RTSTRUCTs.
        out_dir: str or PathLike. Receives ``<ID>_ct.nii.gz``, ``<ID>_pt.nii.gz`` and
            ``<ID>_gtvt.nii.gz``.
        patient_id: str, optional. Defaults to the folder's name.
        roi: str, optional. ROI name or glob; default the first ROI named GTVt, GTVp or GTV.
        weight_kg: float, optional. Patient weight, overriding PatientWeight.
        dose_mbq: float, optional. Injected dose, overriding RadionuclideTotalDose.
        injection_time: str, optional. ``HH:MM[:SS]``, overriding RadiopharmaceuticalStartTime.

    Returns:
        dict. The patient's ``manifest.csv`` row (:data:`MANIFEST_COLUMNS`), paths relative to
        ``out_dir``.

    Raises:
        PatientError: naming the file and tag, on a missing series, bad geometry, a missing
            SUV tag, or an RTSTRUCT without a matching ROI or referencing another series.
            Nothing is written for that patient.
    """
    import pydicom

    from hnprog.data.dicom.rtstruct import read_rtstruct_mask, referenced_series_uid
    from hnprog.data.dicom.series import choose_series, read_series, scan_folder
    from hnprog.data.dicom.suv import suv_factor
    from hnprog.io import write_image

    folder, out_dir = Path(folder), Path(out_dir)
    pid = patient_id or folder.name
    try:
        found = scan_folder(folder)
        ct_series = choose_series(found, "CT", folder=folder, patient_id=pid)
        pt_series = choose_series(found, "PT", folder=folder, patient_id=pid)
        ct, ct_slices = read_series(ct_series, patient_id=pid)
        pet, pet_slices = read_series(pt_series, patient_id=pid)
        factor = suv_factor(pet_slices[0], path=pet_slices[0].filename, weight_kg=weight_kg,
                            dose_mbq=dose_mbq, injection_time=injection_time)
        pet = sitk.Cast(pet * factor.factor, sitk.sitkFloat32)
        mask = mask_series = roi_name = None
        structures = [s for s in found if s.modality == "RTSTRUCT"]
        grids = {ct_series.uid: ct, pt_series.uid: pet}
        problems = []
        for structure in structures:
            for path in structure.files:
                ds = pydicom.dcmread(path)
                ref = referenced_series_uid(ds)
                if ref is None and ds.get("FrameOfReferenceUID") == ct_slices[0].get(
                        "FrameOfReferenceUID"):
                    ref = ct_series.uid  # no series reference: the CT of its frame
                if ref not in grids:
                    problems.append(f"RTSTRUCT {path} references series {ref}, neither the CT "
                                    "nor the PET used")
                    continue
                try:
                    mask, roi_name = read_rtstruct_mask(ds, grids[ref], roi=roi, path=path)
                except InputError as exc:
                    problems.append(str(exc))
                    continue
                mask_series = "CT" if ref == ct_series.uid else "PT"
                break
            if mask is not None:
                break
        if mask is None and (problems or roi is not None):
            # an RTSTRUCT without the wanted ROI is an error, not a patient without a mask
            raise InputError(problems[0] if problems else
                             f"DICOM folder {folder}: --roi {roi!r} given but no RTSTRUCT found")
    except PatientError:
        raise
    except InputError as exc:
        raise PatientError(pid, str(exc)) from None
    names = {"ct": f"{pid}_ct.nii.gz", "pet": f"{pid}_pt.nii.gz"}
    write_image(sitk.Cast(ct, sitk.sitkInt16) if _integral(ct) else ct, out_dir / names["ct"])
    write_image(pet, out_dir / names["pet"])
    if mask is not None:
        names["mask"] = f"{pid}_gtvt.nii.gz"
        write_image(mask, out_dir / names["mask"])
    row = {"patient_id": pid, **names, "mask": names.get("mask", ""), "roi": roi_name or "",
           "mask_series": mask_series or "", "ct_series": ct_series.uid,
           "pet_series": pt_series.uid, "suv_factor": factor.factor}
    row.update(factor.to_dict())
    return {c: row.get(c, "") for c in MANIFEST_COLUMNS}


def _integral(image: sitk.Image) -> bool:
    import numpy as np

    values = sitk.GetArrayViewFromImage(image)
    return bool(np.all(values == np.rint(values)) and values.min() >= -32768
                and values.max() <= 32767)


def _convert_one(patient: DicomPatient, out_dir: Path, options: dict) -> dict:
    return convert_dicom_patient(patient.folder, out_dir, patient_id=patient.patient_id, **options)


def convert_dicom(src: str | os.PathLike, out_dir: str | os.PathLike, *,
                  roi: str | None = None, weight_kg: float | None = None,
                  dose_mbq: float | None = None, injection_time: str | None = None,
                  resume: bool = True, n_jobs: int = 1, progress: bool = True) -> CohortRun:
    """Convert one DICOM patient folder or a folder of them to the HECKTOR 2021 layout.

    Writes, into ``out_dir``, each patient's NIfTI files (:func:`convert_dicom_patient`),
    ``manifest.csv`` (:data:`MANIFEST_COLUMNS`, one row per converted patient) and
    ``failures.csv`` (``patient_id,error``) and ``convert.json`` (the options), through
    :func:`hnprog.data.runner.run_cohort`.
    ``out_dir`` then reads as a cohort (``hnprog.data.read_cohort``, layout ``hecktor2021``).

    Args:
        src: str or PathLike. A patient folder or a folder of patient folders
            (:func:`find_dicom_patients`).
        out_dir: str or PathLike. The output folder; created if needed.
        roi: str, optional. ROI name or glob for the mask.
        weight_kg, dose_mbq, injection_time: optional overrides of the SUV tags, applied to
            every patient (see :func:`convert_dicom_patient`).
        resume: bool. Keep the patients already in ``out_dir/manifest.csv`` whose files
            exist, when the options (recorded in ``out_dir/convert.json``) are the same.
            Defaults to True.
        n_jobs: int. Worker processes. Defaults to 1.
        progress: bool. Show a progress bar. Defaults to True.

    Returns:
        hnprog.data.runner.CohortRun. ``results`` maps each patient to its manifest row.

    Raises:
        InputError: if ``src`` holds no DICOM patient or ``injection_time`` is malformed.
    """
    import functools
    import json

    def read_json(path: Path) -> dict | None:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    from hnprog.data.runner import FAILURES_FILE, run_cohort
    from hnprog.io import atomic_write, write_json

    from hnprog.data.dicom.suv import _seconds

    if injection_time is not None:  # a malformed time fails once, not once per patient
        _seconds(injection_time, "--injection-time", "convert")
    out_dir = Path(out_dir)
    patients = find_dicom_patients(src)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = out_dir / "manifest.csv"
    options = dict(roi=roi, weight_kg=weight_kg, dose_mbq=dose_mbq,
                   injection_time=injection_time)
    recorded = out_dir / "convert.json"
    same_options = recorded.is_file() and read_json(recorded) == options
    earlier: dict[str, dict] = {}
    if resume and same_options and manifest.is_file():
        table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
        for row in table.to_dict("records"):
            if all((out_dir / row[c]).is_file() for c in ("ct", "pet", "mask") if row.get(c)):
                earlier[row["patient_id"]] = row
    write_json(options, recorded)
    run = run_cohort(patients, functools.partial(_convert_one, out_dir=out_dir,
                                                 options=options),
                     n_jobs=n_jobs, resume=lambda p: earlier.get(p.patient_id),
                     progress=progress, desc="convert", failures_file=out_dir / FAILURES_FILE)
    table = pd.DataFrame(list(run.results.values()), columns=list(MANIFEST_COLUMNS))
    with atomic_write(manifest, newline="") as f:
        table.to_csv(f, index=False)
    return run
