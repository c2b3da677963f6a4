"""Write volumes as DICOM series, and the synthetic cohort as DICOM patient folders.

:func:`write_image_series` stores a CT (HU, unsigned 16-bit with ``RescaleIntercept``
-1024) or a PET (``BQML``, ``CNTS`` or ``GML``, unsigned 16-bit with a ``RescaleSlope`` per
slice) as one single-frame file per slice, with the geometry of the volume.
:func:`write_synthetic_dicom` runs the synthetic generator
(:func:`hnprog.data.synthetic.generate_cohort`, which writes the NIfTI truth) and converts
its images, so that the DICOM path can be checked against known values: the PET's SUV factor
is recorded in ``dicom.csv``.
"""

from __future__ import annotations

import csv
import datetime
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hnprog.errors import InputError

__all__ = ["PETTags", "write_image_series", "write_synthetic_dicom", "DICOM_TRUTH_COLUMNS"]

CT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.2"
PET_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.128"
F18_HALF_LIFE_S = 6586.2  # fluorine-18 (FDG)
DICOM_TRUTH_COLUMNS = ("PatientID", "pet_units", "suv_factor", "weight_kg", "dose_mbq",
                       "injection_time", "series_time")


@dataclass(frozen=True)
class PETTags:
    """What a written PET says about its tracer, and the SUV factor it implies.

    Args:
        units: str. ``"BQML"``, ``"CNTS"`` (with a Philips (7053,1000) SUV scale factor) or
            ``"GML"``.
        weight_kg: float or None. PatientWeight; None leaves the tag out.
        dose_mbq: float. Injected FDG dose.
        injection_time: str. ``HHMMSS``.
        series_time: str. ``HHMMSS``, the decay reference (DecayCorrection START).
    """

    units: str = "BQML"
    weight_kg: float | None = 75.0
    dose_mbq: float = 350.0
    injection_time: str = "100000"
    series_time: str = "110000"

    @property
    def suv_factor(self) -> float:
        """SUV per Bq/mL: weight (g) over the dose decayed to the series time (Bq)."""
        if self.units == "GML":
            return 1.0
        weight = self.weight_kg if self.weight_kg is not None else 75.0

        def seconds(t: str) -> int:
            return int(t[:2]) * 3600 + int(t[2:4]) * 60 + int(t[4:6])

        decay = seconds(self.series_time) - seconds(self.injection_time)
        return weight * 1000.0 / (self.dose_mbq * 1e6 * math.pow(2.0, -decay / F18_HALF_LIFE_S))


def _uid(entropy: Sequence[str]) -> str:
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=list(entropy))


def write_image_series(image: sitk.Image, folder: str | os.PathLike, *, modality: str,
                       patient_id: str, study_uid: str, frame_uid: str,
                       pet: PETTags | None = None, series_number: int = 1,
                       description: str = "", uid_entropy: Sequence[str] = ()) -> list:
    """Write a 3D volume as a DICOM CT or PET series, one file per slice.

    Args:
        image: SimpleITK.Image. CT in HU or PET in SUV, any pixel type.
        folder: str or PathLike. Receives ``<modality>_<k>.dcm`` files.
        modality: str. ``"CT"`` or ``"PT"``.
        patient_id: str. PatientID and PatientName.
        study_uid: str. StudyInstanceUID (shared by the patient's series).
        frame_uid: str. FrameOfReferenceUID (shared by series in the same patient frame).
        pet: PETTags, optional. For ``"PT"``: units, weight, dose and times. Defaults to
            ``PETTags()``.
        series_number: int. Defaults to 1.
        description: str. SeriesDescription.
        uid_entropy: sequence of str. Makes the UIDs deterministic.

    Returns:
        list of pydicom.Dataset. The slices written, z index 0 first.
    """
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence as DicomSequence
    from pydicom.uid import ExplicitVRLittleEndian

    from hnprog.io import atomic_path

    if modality not in ("CT", "PT"):
        raise InputError(f"write_image_series: modality must be CT or PT. Received: {modality!r}")
    pet = pet or PETTags()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    values = sitk.GetArrayFromImage(image).astype(np.float64)
    direction = np.array(image.GetDirection(), float).reshape(3, 3)
    spacing = image.GetSpacing()
    series_uid = _uid([*uid_entropy, "series", modality, str(series_number)])
    date = "20210927"
    written = []
    for k in range(values.shape[0]):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        sop_class = CT_SOP_CLASS if modality == "CT" else PET_SOP_CLASS
        ds.file_meta.MediaStorageSOPClassUID = sop_class
        ds.SOPInstanceUID = _uid([*uid_entropy, "slice", series_uid, str(k)])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = sop_class
        ds.Modality = modality
        ds.PatientName = patient_id
        ds.PatientID = patient_id
        ds.PatientBirthDate = ""
        ds.PatientSex = ""
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = date
        ds.StudyTime = "100000"
        ds.SeriesTime = pet.series_time if modality == "PT" else "104500"
        ds.StudyID = "1"
        ds.AccessionNumber = ""
        ds.ReferringPhysicianName = ""
        ds.Manufacturer = "hnprog synthetic"
        ds.SeriesNumber = series_number
        ds.InstanceNumber = k + 1
        ds.SeriesDescription = description or modality
        ds.ImagePositionPatient = [float(f"{v:.6f}") for v in
                                   image.TransformIndexToPhysicalPoint((0, 0, k))]
        ds.ImageOrientationPatient = [float(f"{v:.8f}") for v in
                                      (*direction[:, 0], *direction[:, 1])]
        ds.PixelSpacing = [float(f"{spacing[1]:.6f}"), float(f"{spacing[0]:.6f}")]
        ds.SliceThickness = float(f"{spacing[2]:.6f}")
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = values.shape[1], values.shape[2]
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        plane = values[k]
        if modality == "CT":
            stored = np.clip(np.rint(plane + 1024.0), 0, 65535)
            ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        else:
            per_unit = {"BQML": 1.0 / pet.suv_factor, "GML": 1.0}.get(pet.units, 1.0)
            physical = np.clip(plane, 0, None) * per_unit  # Bq/mL, SUV or counts
            peak = float(physical.max())
            slope = peak / 65535.0 if peak > 0 else 1.0
            ds.RescaleIntercept, ds.RescaleSlope = 0, float(f"{slope:.10g}")
            stored = np.clip(np.rint(physical / ds.RescaleSlope), 0, 65535)
            ds.Units = pet.units
            ds.DecayCorrection = "START"
            ds.CorrectedImage = ["DECY", "ATTN"]
            if pet.weight_kg is not None:
                ds.PatientWeight = pet.weight_kg
            drug = Dataset()
            drug.Radiopharmaceutical = "Fluorodeoxyglucose"
            drug.RadiopharmaceuticalStartTime = pet.injection_time
            drug.RadionuclideTotalDose = pet.dose_mbq * 1e6
            drug.RadionuclideHalfLife = F18_HALF_LIFE_S
            ds.RadiopharmaceuticalInformationSequence = DicomSequence([drug])
            if pet.units == "CNTS":
                # counts == SUV / factor: store the Philips SUV Scale Factor
                ds.add_new(0x70530010, "LO", "Philips PET Private Group")
                ds.add_new(0x70531000, "DS", f"{pet.suv_factor:.10g}")
                ds.RescaleSlope = float(f"{slope / pet.suv_factor:.10g}")
                stored = np.clip(np.rint(plane.clip(0) / pet.suv_factor / ds.RescaleSlope),
                                 0, 65535)
        ds.PixelData = stored.astype(np.uint16).tobytes()
        path = folder / f"{modality}_{k:04d}.dcm"
        with atomic_path(path) as tmp:
            pydicom.dcmwrite(tmp, ds, enforce_file_format=True)
        written.append(ds)
    return written


def write_synthetic_dicom(out_dir: str | os.PathLike, n_patients: int = 20, seed: int = 0, *,
                          pet_units: str = "BQML", rtstruct_on: str = "CT",
                          **generate_kwargs) -> Path:
    """Write the synthetic cohort as DICOM patient folders, next to its NIfTI truth.

    :func:`hnprog.data.synthetic.generate_cohort` writes the NIfTI cohort into
    ``out_dir/nifti`` (with ``endpoints.csv``, ``bboxes.csv``, ``truth.csv``); each patient
    then gets ``out_dir/<ID>/CT/``, ``out_dir/<ID>/PT/`` and ``out_dir/<ID>/RTSTRUCT.dcm``
    (the GTVt). The PET is stored in ``pet_units`` with a patient weight of 60-90 kg, a
    200-400 MBq dose and a 50-70 min uptake, varying per patient; ``out_dir/dicom.csv``
    records each PET's SUV factor (SUV per stored Bq/mL) and those inputs.
    ``endpoints.csv`` and ``bboxes.csv`` are copied next to the patient folders.

    Args:
        out_dir: str or PathLike. The folder to write.
        n_patients: int. Defaults to 20.
        seed: int. Defaults to 0.
        pet_units: str. ``"BQML"``, ``"CNTS"`` or ``"GML"``. Defaults to ``"BQML"``.
        rtstruct_on: str. ``"CT"`` (the GTVt as drawn on the CT) or ``"PT"`` (resampled to
            the PET grid, nearest neighbour, and referencing the PET). Defaults to ``"CT"``.
        **generate_kwargs: passed on to ``generate_cohort`` (``n_centres``, ``censoring``,
            ``image_scale``, ``n_jobs``, ``progress``).

    Returns:
        pathlib.Path. ``out_dir``.

    Raises:
        InputError: on an unknown ``pet_units`` or ``rtstruct_on``, or a bad generator argument.
    """
    import shutil

    from hnprog.data.dicom.rtstruct import write_rtstruct
    from hnprog.data.synthetic import generate_cohort, read_truth
    from hnprog.io import atomic_write, read_image

    if pet_units not in ("BQML", "CNTS", "GML"):
        raise InputError(f"pet_units must be BQML, CNTS or GML. Received: {pet_units!r}")
    if rtstruct_on not in ("CT", "PT"):
        raise InputError(f"rtstruct_on must be CT or PT. Received: {rtstruct_on!r}")
    from hnprog.data.runner import progress_bar

    out_dir = Path(out_dir)
    nifti = generate_cohort(out_dir / "nifti", n_patients, seed, **generate_kwargs)
    for name in ("endpoints.csv", "bboxes.csv"):
        shutil.copyfile(nifti / name, out_dir / name)
    rows = []
    rng = np.random.default_rng(np.random.SeedSequence([seed, 13]))
    for patient_id in progress_bar(read_truth(nifti).index, desc="DICOM patients",
                                   disable=not generate_kwargs.get("progress", False)):
        weight = round(float(rng.uniform(60, 90)), 1)
        dose = round(float(rng.uniform(200, 400)), 1)
        uptake = int(rng.integers(50 * 60, 70 * 60))
        start = datetime.datetime(2021, 9, 27, 10, 0, 0)
        pet = PETTags(pet_units, weight, dose, start.strftime("%H%M%S"),
                      (start + datetime.timedelta(seconds=uptake)).strftime("%H%M%S"))
        entropy = [str(seed), patient_id]
        study_uid, frame_uid = _uid([*entropy, "study"]), _uid([*entropy, "frame"])
        ct = read_image(nifti / f"{patient_id}_ct.nii.gz", patient_id=patient_id, role="CT")
        pt = read_image(nifti / f"{patient_id}_pt.nii.gz", patient_id=patient_id, role="PET")
        mask = read_image(nifti / f"{patient_id}_gtvt.nii.gz", patient_id=patient_id,
                          role="mask", pixel_type=sitk.sitkUInt8)
        folder = out_dir / patient_id
        ct_slices = write_image_series(ct, folder / "CT", modality="CT", patient_id=patient_id,
                                       study_uid=study_uid, frame_uid=frame_uid,
                                       series_number=2, uid_entropy=entropy)
        pt_slices = write_image_series(pt, folder / "PT", modality="PT", patient_id=patient_id,
                                       study_uid=study_uid, frame_uid=frame_uid, pet=pet,
                                       series_number=3, uid_entropy=entropy)
        if rtstruct_on == "PT":
            mask = sitk.Resample(mask, pt, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
        write_rtstruct(mask, ct_slices if rtstruct_on == "CT" else pt_slices,
                       folder / "RTSTRUCT.dcm", roi_name="GTVt", label="synthetic",
                       uid_entropy=entropy)
        rows.append([patient_id, pet_units, f"{pet.suv_factor:.10g}", weight, dose,
                     pet.injection_time, pet.series_time])
    with atomic_write(out_dir / "dicom.csv", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(DICOM_TRUTH_COLUMNS)
        writer.writerows(rows)
    return out_dir
