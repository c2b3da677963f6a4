"""THE patient loader: one patient's files read, checked and boxed, as a :class:`~hnprog.transforms.Case`.

:func:`load_case` is used by every entry point that reads a patient (prediction, the training
cache, preprocessing, radiomics), so all of them apply the same checks in the same order
(:mod:`hnprog.data.checks`) and name the patient and the file the same way.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import SimpleITK as sitk

from hnprog.data.bbox import auto_bbox
from hnprog.data.checks import (check_intensities, check_mask_labels, check_mask_placement,
                                 warn_default_geometry)
from hnprog.data.cohort import Patient
from hnprog.errors import InputError
from hnprog.geometry import BoundingBox
from hnprog.io import read_image
from hnprog.transforms import CT, MASK, PET, Case, check_overlap

__all__ = ["load_case", "read_mask"]


def read_mask(path: str | os.PathLike, patient_id: str,
              labels: Sequence[int] = (0, 1)) -> sitk.Image:
    """Read a GTVt mask and return it as uint8 0/1 (label 1 = GTVt; other allowed labels -> 0).

    Args:
        path: str or PathLike. The mask file.
        patient_id: str. Named in errors.
        labels: sequence of int. The values the file may hold. Defaults to ``(0, 1)``.

    Returns:
        SimpleITK.Image. uint8 with the file's geometry.

    Raises:
        PatientError: naming the file, if it is missing, unreadable, holds NaN, or holds
            values other than ``labels``.
    """
    image = read_image(path, patient_id=patient_id, role="mask", pixel_type=sitk.sitkFloat32)
    return check_mask_labels(image, patient_id, path, labels)


def load_case(
    patient: Patient,
    box: BoundingBox | None = None,
    *,
    with_mask: bool = True,
    find_box: bool = True,
    notes: list[str] | None = None,
) -> Case:
    """Read one patient's CT, PET and mask (if any), check them, and find the box.

    The CT and PET are read in parallel threads (SimpleITK releases the GIL), the automatic
    box, when needed, is found while the CT is still being read. The checks run in the order
    of :mod:`hnprog.data.checks`: readable files, CT in HU and PET in SUV, then the box (a
    failed automatic box is reported only after the clearer intensity errors), the overlap of
    PET, CT and box, then the mask's labels.

    Args:
        patient: Patient. Its files (``mask`` may be None).
        box: BoundingBox, optional. The box (mm); None finds the automatic box from the PET
            (:func:`hnprog.data.bbox.auto_bbox`) when ``find_box``. Defaults to None.
        with_mask: bool. Whether to read the mask when the patient has one. Defaults to True.
        find_box: bool. Whether to find the automatic box when ``box`` is None; False leaves
            the case without a box (radiomics needs none). Defaults to True.
        notes: list of str, optional. Receives the patient's warnings as well (a mask on
            neither image's grid), for a report to keep. Defaults to None.

    Returns:
        Case with float32 ``"ct"`` (HU) and ``"pet"`` (SUV) images, a uint8 ``"mask"`` when
        read, the box and the patient id. Images are not cropped.

    Raises:
        PatientError: naming the patient and file, on a missing or unreadable file, NaN
            voxels, a CT not in HU or a PET not in SUV, no automatic box, PET and CT (or the
            box) that do not overlap, or a mask with unexpected labels.
    """
    pid = patient.patient_id

    def read_pet_and_box() -> tuple[sitk.Image, BoundingBox | InputError | None]:
        pet = read_image(patient.pet, patient_id=pid, role="PET")
        if box is not None or not find_box:
            return pet, box
        try:
            return pet, auto_bbox(pet, patient_id=pid)
        except InputError as exc:  # raised below, after the clearer intensity checks
            return pet, exc

    with ThreadPoolExecutor(max_workers=2) as pool:
        ct_future = pool.submit(read_image, patient.ct, patient_id=pid, role="CT")
        pet_future = pool.submit(read_pet_and_box)
        ct, (pet, found) = ct_future.result(), pet_future.result()
    check_intensities(ct, pet, pid, patient.ct, patient.pet)
    warn_default_geometry(ct, pet, pid, patient.ct, patient.pet)
    if isinstance(found, InputError):
        raise found
    images = {CT: ct, PET: pet}
    case = Case(images, box=found, patient_id=pid)
    if found is not None:
        check_overlap(case)
    if with_mask and patient.mask is not None:
        mask = read_mask(Path(patient.mask), pid, patient.mask_labels)
        check_mask_placement(mask, ct, pet, pid, patient.mask, notes=notes)
        case = case.with_images({MASK: mask})
    return case
