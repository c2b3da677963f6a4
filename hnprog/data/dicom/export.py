"""DICOM out: a predicted GTVt mask as an RTSTRUCT referencing the patient's CT series.

The mask (``gtvt_mask.nii.gz``, on the CT grid) becomes the ROI ``GTVt_hnprog`` (generation
algorithm AUTOMATIC, structure set label ``hnprog``) of an RT
Structure Set that references the CT series it was predicted on (same StudyInstanceUID,
FrameOfReferenceUID and every contour's CT slice), so a treatment planning system or 3D
Slicer (SlicerRT) shows it over that CT. RTSTRUCT rather than DICOM-SEG because planning
systems import structure sets; the outline follows the voxel edges, so reading the file back
onto the CT grid gives the mask exactly (:func:`hnprog.data.dicom.rtstruct.read_rtstruct_mask`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk

if TYPE_CHECKING:
    from hnprog.data.dicom.convert import DicomPatient
    from hnprog.data.runner import CohortRun

__all__ = ["PREDICTED_ROI", "RTSTRUCT_FILE", "write_cohort_rtstructs", "write_mask_rtstruct"]

PREDICTED_ROI = "GTVt_hnprog"
RTSTRUCT_FILE = "gtvt_rtstruct.dcm"

logger = logging.getLogger(__name__)


def write_mask_rtstruct(mask: sitk.Image | str | os.PathLike, dicom_folder: str | os.PathLike,
                        path: str | os.PathLike, *, roi_name: str = PREDICTED_ROI,
                        patient_id: str | None = None) -> Path:
    """Write a mask as an RTSTRUCT on the CT series of a DICOM patient folder.

    Args:
        mask: SimpleITK.Image or path. A 0/1 mask on the CT grid (as ``hnprog predict``
            writes it). On another grid it is resampled onto the CT's (nearest neighbour).
        dicom_folder: str or PathLike. The patient's DICOM folder; its CT series is chosen as
            :func:`hnprog.data.dicom.convert.convert_dicom_patient` chooses it.
        path: str or PathLike. The RTSTRUCT file to write (atomically).
        roi_name: str. Defaults to ``"GTVt_hnprog"``.
        patient_id: str, optional. Named in errors.

    Returns:
        pathlib.Path. ``path``.

    Raises:
        PatientError: (InputError without ``patient_id``) if the folder has no CT series or
            the mask cannot be read.
    """
    from hnprog.data.dicom.rtstruct import write_rtstruct
    from hnprog.data.dicom.series import choose_series, read_series, scan_folder
    from hnprog.io import read_image

    if not isinstance(mask, sitk.Image):
        mask = read_image(mask, patient_id=patient_id, role="mask", pixel_type=sitk.sitkUInt8)
    series = choose_series(scan_folder(dicom_folder), "CT", folder=dicom_folder,
                           patient_id=patient_id)
    ct, datasets = read_series(series, patient_id=patient_id)
    same = (mask.GetSize() == ct.GetSize()
            and np.allclose(mask.GetSpacing(), ct.GetSpacing(), atol=1e-4)
            and np.allclose(mask.GetOrigin(), ct.GetOrigin(), atol=1e-3)
            and np.allclose(mask.GetDirection(), ct.GetDirection(), atol=1e-5))
    if same:
        mask = sitk.Cast(mask, sitk.sitkUInt8)
        mask.CopyInformation(ct)
    else:
        logger.info("%s: the mask is not on the CT series' grid; resampled onto it", path)
        mask = sitk.Resample(sitk.Cast(mask, sitk.sitkUInt8), ct, sitk.Transform(),
                             sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    if sitk.GetArrayViewFromImage(mask).max() == 0:
        logger.info("%s: empty mask, the ROI is written without contours", path)
    return write_rtstruct(mask, datasets, path, roi_name=roi_name, label="hnprog",
                          uid_entropy=[str(series.uid), roi_name, str(Path(path).name)])


def _write_one(patient: DicomPatient, out_dir: Path, mask_file: str) -> Path:
    return write_mask_rtstruct(out_dir / patient.patient_id / mask_file, patient.folder,
                               out_dir / patient.patient_id / RTSTRUCT_FILE,
                               patient_id=patient.patient_id)


def write_cohort_rtstructs(dicom_root: str | os.PathLike, out_dir: str | os.PathLike,
                           patient_ids: Iterable[str], *, mask_file: str = "gtvt_mask.nii.gz",
                           progress: bool = True) -> CohortRun:
    """Write ``<out_dir>/<ID>/gtvt_rtstruct.dcm`` for each predicted DICOM patient.

    Args:
        dicom_root: str or PathLike. The DICOM folder the cohort was read from.
        out_dir: str or PathLike. The prediction folder (``<ID>/gtvt_mask.nii.gz`` inside).
        patient_ids: iterable of str. The predicted patients.
        mask_file: str. The mask's name in each patient folder.
        progress: bool. Show a progress bar. Defaults to True.

    Returns:
        hnprog.data.runner.CohortRun. ``results`` maps ids to the RTSTRUCT paths; one
        patient's failure is a row of ``failures``, not a stopped run.
    """
    import functools

    from hnprog.data.dicom.convert import find_dicom_patients
    from hnprog.data.runner import run_cohort

    wanted = set(patient_ids)
    patients = [p for p in find_dicom_patients(dicom_root) if p.patient_id in wanted]
    return run_cohort(patients, functools.partial(_write_one, out_dir=Path(out_dir),
                                                  mask_file=mask_file),
                      progress=progress, desc="RTSTRUCT")
