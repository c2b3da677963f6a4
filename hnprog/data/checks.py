"""The checks every patient's images pass before anything is computed from them.

One place, applied in one order by the one patient loader (:func:`hnprog.data.loading.load_case`),
so prediction, the training cache and radiomics refuse the same inputs with the same words:

1. each file is readable, 3D, free of NaN (:func:`hnprog.io.read_image`);
2. the CT is in HU and the PET in SUV, each with signal (:func:`check_intensities`), which
   catches swapped files, a CT without its rescale, a PET in Bq/mL and an all-zero or constant
   image;
3. the PET and CT overlap and the box meets both (:func:`hnprog.transforms.check_overlap`);
4. the mask holds only the expected labels and some GTVt (:func:`check_mask_labels`), and its
   GTVt lies inside the CT; a mask on neither the CT's nor the PET's grid (which a mask of
   another patient usually is) gets a warning (:func:`check_mask_placement`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from hnprog.errors import PatientError
from hnprog.geometry import physical_extent

__all__ = ["CT_AIR_HU", "PET_MAX_SUV", "PET_MIN_SIGNAL_SUV", "check_intensities",
           "check_mask_labels", "check_mask_placement", "warn_default_geometry"]


CT_AIR_HU = -500.0
"""A head-and-neck CT in HU always holds air below this value (HU)."""
PET_MAX_SUV = 1000.0
"""No PET in SUV exceeds this; activity concentrations (Bq/mL) do, by far."""
PET_MIN_SIGNAL_SUV = 0.1
"""A FDG PET in SUV spans more than this (the brain alone reaches several SUV); an all-zero or
constant PET (a failed export or reconstruction) does not."""


def check_intensities(ct: sitk.Image, pet: sitk.Image, patient_id: str,
                      ct_path: str | os.PathLike = "CT", pet_path: str | os.PathLike = "PET") -> None:
    """Refuse a CT that is not in HU or a PET that is not in SUV, with the likely cause.

    A swapped CT and PET, a CT stored without its rescale to HU, or a PET left in Bq/mL run
    through the network without any error and give meaningless risks and contours; their
    value ranges give them away:

    - the CT must hold air, some voxel below ``CT_AIR_HU`` (-500 HU);
    - the PET must lie within ``[-100, PET_MAX_SUV]`` (SUV: small negatives from
      reconstruction are fine; -1000 is the air of a CT; thousands are Bq/mL);
    - neither may be constant: the CT must also hold tissue (some voxel above ``CT_AIR_HU``)
      and the PET must span more than ``PET_MIN_SIGNAL_SUV`` (an all-zero PET is no PET).

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
    if ct_max <= CT_AIR_HU:
        raise PatientError(
            patient_id,
            f"CT {ct_path} holds no tissue: every voxel is at or below {CT_AIR_HU:g} HU (it "
            f"spans [{ct_min:g}, {ct_max:g}]); an empty or failed export?",
        )
    if pet_max - pet_min <= PET_MIN_SIGNAL_SUV:
        what = f"every voxel is {pet_min:g}" if pet_max == pet_min else (
            f"it spans only [{pet_min:g}, {pet_max:g}]")
        raise PatientError(
            patient_id,
            f"PET {pet_path} holds no signal ({what} SUV); an empty or failed reconstruction or "
            "export? Give the patient's real PET",
        )
    if pet_max > PET_MAX_SUV:
        raise PatientError(
            patient_id,
            f"PET {pet_path} reaches {pet_max:g}, far above any SUV: it looks like activity "
            "concentration (Bq/mL); convert it to body-weight SUV (activity x weight / "
            "injected dose, decay-corrected) first",
        )


def check_mask_labels(image: sitk.Image, patient_id: str, path: str | os.PathLike,
                      labels: Sequence[int] = (0, 1)) -> sitk.Image:
    """Refuse a mask holding other values than ``labels``, or no GTVt; return it as uint8 0/1
    (1 = GTVt).

    Other allowed labels (HECKTOR 2022's 2 = GTVn) become background.

    Args:
        image: SimpleITK.Image. The mask as read (any pixel type).
        patient_id: str. Named in the error.
        path: str or PathLike. The mask file, named in the error.
        labels: sequence of int. The values the mask may hold. Defaults to ``(0, 1)``.

    Returns:
        SimpleITK.Image. uint8, 1 where the mask is 1, with the mask's geometry.

    Raises:
        PatientError: naming the file and the unexpected labels, or on a mask without any
            voxel labelled 1.
    """
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
    inside = values == 1
    if not inside.any():
        raise PatientError(
            patient_id,
            f"mask file {path} is empty: no voxel is labelled 1 (GTVt); give the patient's GTVt "
            "mask, or leave the mask out",
        )
    mask = sitk.GetImageFromArray(inside.astype(np.uint8))
    mask.CopyInformation(image)
    return mask


def warn_default_geometry(ct: sitk.Image, pet: sitk.Image, patient_id: str,
                          ct_path: str | os.PathLike = "CT",
                          pet_path: str | os.PathLike = "PET") -> None:
    """Warn (``UserWarning``) when one image has the default geometry and the other does not.

    Origin 0, 1 mm voxels and the identity direction are what a conversion writes when it
    loses the scanner's geometry; the image is then placed wrongly against the other one
    (which still overlaps it often enough to pass the overlap check), and the risk changes.
    """
    def default(image: sitk.Image) -> bool:
        return (all(abs(v) < 1e-6 for v in image.GetOrigin())
                and all(abs(v - 1.0) < 1e-6 for v in image.GetSpacing())
                and all(abs(a - b) < 1e-6 for a, b in zip(image.GetDirection(),
                                                          (1, 0, 0, 0, 1, 0, 0, 0, 1))))
    for image, path, other in ((pet, pet_path, ct), (ct, ct_path, pet)):
        if default(image) and not default(other):
            warnings.warn(
                f"patient {patient_id}: {path} has the default geometry (origin 0, 1 mm voxels, "
                "identity direction) and the other image does not: its position may have been "
                "lost in a conversion; check the overlay, or convert again keeping the header",
                UserWarning, stacklevel=3)


def _same_grid(a: sitk.Image, b: sitk.Image, tolerance_mm: float = 1e-3) -> bool:
    return (a.GetSize() == b.GetSize()
            and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tolerance_mm)
            and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tolerance_mm)
            and np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-6))


def check_mask_placement(mask: sitk.Image, ct: sitk.Image, pet: sitk.Image, patient_id: str,
                         path: str | os.PathLike = "mask", *,
                         notes: list[str] | None = None) -> None:
    """Check that a 0/1 mask's GTVt lies inside the CT; warn if it is on neither image's grid.

    HECKTOR, nnU-Net and the RTSTRUCT conversion all put the mask on the CT's grid (some
    cohorts on the PET's). A mask on another grid is legal, but it is what a mask of another
    patient looks like, so it gets a ``UserWarning`` naming the three grids; one whose GTVt
    lies wholly outside the CT cannot be this patient's.

    Args:
        mask: SimpleITK.Image. uint8 0/1, as :func:`check_mask_labels` returns it.
        ct, pet: SimpleITK.Image. The patient's images.
        patient_id: str. Named in the error and the warning.
        path: str or PathLike. The mask file, named in the error and the warning.
        notes: list of str, optional. Receives the warning's text too (``report.json`` keeps
            it among its ``warnings``). Defaults to None.

    Raises:
        PatientError: if the GTVt lies wholly outside the CT.
    """
    if _same_grid(mask, ct) or _same_grid(mask, pet):
        return
    inside = np.argwhere(sitk.GetArrayViewFromImage(mask) > 0)
    if len(inside):
        lower, upper = inside.min(axis=0)[::-1], inside.max(axis=0)[::-1]  # x, y, z
        gtv = physical_extent(sitk.RegionOfInterest(
            mask, [int(v) for v in upper - lower + 1], [int(v) for v in lower]))
        ct_extent = physical_extent(ct)
        if not gtv.intersects(ct_extent):
            raise PatientError(
                patient_id,
                f"the GTVt of mask {path} ({gtv.describe()}) lies outside the CT, which spans "
                f"{ct_extent.describe()}: is it this patient's mask?")

    def describe(image: sitk.Image) -> str:
        size = "x".join(str(v) for v in image.GetSize())
        spacing = "x".join(f"{v:.2f}" for v in image.GetSpacing())
        origin = ", ".join(f"{v:.1f}" for v in image.GetOrigin())
        return f"{size} voxels of {spacing} mm at ({origin}) mm"

    note = (f"patient {patient_id}: mask {path} is on neither the CT's grid ({describe(ct)}) "
            f"nor the PET's ({describe(pet)}) but on {describe(mask)}; check that it is this "
            "patient's mask: another patient's mask can land near this one's tumour, so "
            "neither the overlay nor the Dice proves it")
    if notes is not None:
        notes.append(note)
    warnings.warn(note, UserWarning, stacklevel=3)
