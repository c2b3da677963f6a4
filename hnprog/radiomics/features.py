"""Handcrafted radiomics features of one patient with PyRadiomics.

:func:`extract_features` takes one patient's checked images, a :class:`~hnprog.transforms.Case`
as the patient loader (:func:`hnprog.data.loading.load_case`) returns it, and does not read
files; :func:`read_case` reads a patient through that loader.

Geometry is done here with SimpleITK and :mod:`hnprog.geometry`, not by PyRadiomics:

1. the mask's bounding box (label ``label``) plus a margin defines a small grid at 2 mm;
2. CT, PET and mask are each cropped in index space to that grid's physical extent
   (:func:`hnprog.geometry.crop_to_box`; never whole scans are resampled);
3. the crops are resampled onto the 2 mm grid (images linear, mask nearest neighbour);
4. PyRadiomics runs once per discretisation on the resampled crops, with its own resampling
   disabled.

The clinical PET measures (:func:`native_pet_features`: SUVmax, SUVpeak, MTV, TLG) are computed
on the PET's own grid instead, since resampling lowers peaks: ``PET_bw1_firstorder_Maximum`` is
the maximum on the 2 mm grid, ``PET_native_SUVmax`` the clinical SUVmax.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import SimpleITK as sitk

from hnprog.data.cohort import Patient
from hnprog.data.loading import load_case
from hnprog.errors import InputError, PatientError
from hnprog.geometry import crop_to_box, physical_extent, voxel_centres
from hnprog.radiomics.params import (
    NATIVE_PET_FEATURES,
    feature_column,
    feature_names,
    load_params,
    params_hash,
)
from hnprog.transforms import CT, MASK, PET, Case

__all__ = [
    "PatientRecord",
    "as_patient",
    "crop_and_resample",
    "extract_features",
    "native_pet_features",
    "pyradiomics_extractors",
    "read_case",
]

class PatientRecord(Protocol):
    """What radiomics needs of a patient (``hnprog.data.cohort.Patient`` has it).

    ``mask_labels`` (the label values the mask may hold) is optional and defaults to
    ``(0, 1)``.
    """

    patient_id: str
    ct: Path
    pet: Path
    mask: Path | None


def read_case(patient: PatientRecord) -> Case:
    """Read one patient's CT, PET and GTVt mask through hnprog's patient loader.

    The loader (:func:`hnprog.data.loading.load_case`, shared with prediction and
    training) checks, in its order, that the files are readable, the CT is in HU and the PET
    in SUV, and that the mask holds only the patient's ``mask_labels``; the mask comes back as
    uint8 with 1 = GTVt. No bounding box is looked for: radiomics needs none.

    Args:
        patient: Patient, or any record with ``patient_id``, ``ct``, ``pet`` and ``mask``.

    Returns:
        Case with float32 ``"ct"`` (HU), ``"pet"`` (SUV) and uint8 ``"mask"`` images.

    Raises:
        PatientError: if the patient has no mask, or the loader refuses a file.
    """
    if patient.mask is None:
        raise PatientError(patient.patient_id, "no GTVt mask")
    return load_case(as_patient(patient), with_mask=True, find_box=False)  # no box needed


def as_patient(patient: PatientRecord) -> Patient:
    """The :class:`hnprog.data.cohort.Patient` of a patient record (itself if it is one).

    Args:
        patient: Patient, or any record with ``patient_id``, ``ct``, ``pet``, ``mask`` and
            optionally ``mask_labels``.

    Returns:
        Patient. Picklable, so it can go to a worker process.
    """
    if isinstance(patient, Patient):
        return patient
    return Patient(
        str(patient.patient_id),
        Path(patient.ct),
        Path(patient.pet),
        None if patient.mask is None else Path(patient.mask),
        mask_labels=tuple(getattr(patient, "mask_labels", (0, 1))),
    )


def crop_and_resample(
    ct: sitk.Image,
    pet: sitk.Image,
    mask: sitk.Image,
    *,
    spacing: tuple[float, float, float] = (2.0, 2.0, 2.0),
    margin: int = 3,
    label: int = 1,
    patient_id: str = "?",
) -> tuple[sitk.Image, sitk.Image, sitk.Image]:
    """Put CT, PET and the GTVt mask on one small grid around the mask.

    The grid has the mask's direction, the given spacing, and covers the bounding box of the
    voxels equal to ``label`` plus ``margin`` voxels on each side. Each image is first cropped
    to the grid's physical extent (:func:`hnprog.geometry.crop_to_box`, which keeps a rim for
    interpolation), then resampled onto the grid: CT and PET with linear interpolation, the
    mask with nearest neighbour.

    Args:
        ct: SimpleITK.Image. CT in HU, any grid.
        pet: SimpleITK.Image. PET in SUV, any grid.
        mask: SimpleITK.Image. Integer label map (the GTVt is ``label``).
        spacing: tuple of 3 floats. Output spacing in mm, ``(x, y, z)``. Defaults to 2 mm.
        margin: int. Voxels of the output grid kept around the mask. Defaults to 3.
        label: int. The mask value of the region. Defaults to 1.
        patient_id: str. Named in error messages. Defaults to ``"?"``.

    Returns:
        tuple ``(ct, pet, mask)`` of SimpleITK images on the same grid: float32 CT (HU), float32
        PET (SUV), uint8 mask with values {0, 1}.

    Raises:
        PatientError: if the mask is empty or holds a single voxel (before or after
            resampling), or if it is not covered by the CT or PET field of view.
    """
    mask_values = sitk.GetArrayViewFromImage(mask)
    inside = mask_values == label
    n_voxels = int(inside.sum())
    if n_voxels == 0:
        present = np.unique(mask_values)[:10].tolist()
        raise PatientError(
            patient_id, f"mask is empty: no voxel has label {label} (values present: {present})"
        )
    if n_voxels == 1:
        raise PatientError(patient_id, "mask holds a single voxel; texture and shape need more")
    zyx = np.nonzero(inside)
    lower_index = np.array([zyx[2].min(), zyx[1].min(), zyx[0].min()], dtype=float)
    upper_index = np.array([zyx[2].max(), zyx[1].max(), zyx[0].max()], dtype=float)
    new_spacing = np.asarray(spacing, dtype=float)
    direction = np.array(mask.GetDirection()).reshape(3, 3)
    extent = (upper_index - lower_index + 1) * np.array(mask.GetSpacing())  # mm, mask axes
    size = np.ceil(extent / new_spacing - 1e-6).astype(int) + 2 * margin
    excess = size * new_spacing - extent
    lower_edge = np.array(mask.TransformContinuousIndexToPhysicalPoint(tuple(lower_index - 0.5)))
    reference = sitk.Image([int(s) for s in size], sitk.sitkUInt8)
    reference.SetSpacing(tuple(new_spacing))
    reference.SetDirection(tuple(direction.ravel()))
    reference.SetOrigin(tuple(lower_edge + direction @ (new_spacing / 2 - excess / 2)))
    region = physical_extent(reference)

    def crop(image: sitk.Image, role: str) -> sitk.Image:
        if not physical_extent(image).intersects(region):
            raise PatientError(
                patient_id,
                f"the mask does not overlap the {role} image (the {role} field of view does not "
                "contain the tumour; are CT, PET and mask from the same study?)",
            )
        return crop_to_box(image, region)

    roi = sitk.Cast(mask == label, sitk.sitkUInt8)
    roi = sitk.Resample(
        crop(roi, "mask"), reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
        sitk.sitkUInt8,
    )
    roi_values = sitk.GetArrayViewFromImage(roi).astype(bool)
    n_resampled = int(roi_values.sum())
    if n_resampled < 2:
        raise PatientError(
            patient_id,
            f"mask holds {n_resampled} voxel(s) after resampling to {tuple(new_spacing)} mm "
            f"({n_voxels} before); too small for radiomics",
        )
    resampled = []
    for image, role in ((ct, "CT"), (pet, "PET")):
        out = sitk.Resample(
            crop(image, role), reference, sitk.Transform(), sitk.sitkLinear, math.nan,
            sitk.sitkFloat32,
        )
        values = sitk.GetArrayFromImage(out)
        missing = np.isnan(values)
        n_outside = int((missing & roi_values).sum())
        if n_outside:
            raise PatientError(
                patient_id,
                f"{n_outside} of {n_resampled} mask voxels lie outside the {role} field of view",
            )
        if missing.any():  # margin voxels beyond the scan: never read inside the mask
            values[missing] = values[roi_values].min()
            fixed = sitk.GetImageFromArray(values)
            fixed.CopyInformation(out)
            out = fixed
        resampled.append(out)
    return resampled[0], resampled[1], roi


SUVPEAK_VOLUME_ML = 1.0
"""Volume of the SUVpeak sphere, mL."""

SUVPEAK_RADIUS_MM = (3.0 * SUVPEAK_VOLUME_ML * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)
"""Radius of a 1 mL sphere, mm (about 6.2 mm)."""

MTV_SUV_THRESHOLD = 2.5
"""Absolute SUV threshold of ``PET_native_MTV_SUV2.5_mL`` and ``PET_native_TLG_SUV2.5``."""

MTV_RELATIVE_THRESHOLD = 0.41
"""Fraction of SUVmax of ``PET_native_MTV_41pct_mL`` and ``PET_native_TLG_41pct``."""


def suvpeak_kernel(spacing: tuple[float, float, float], radius: float = SUVPEAK_RADIUS_MM
                   ) -> np.ndarray:
    """The normalised spherical averaging kernel of SUVpeak on a voxel grid.

    A voxel belongs to the sphere when its centre lies within ``radius`` of the centre voxel's
    centre (the voxel-centre-in-sphere approximation: partial voxels are not weighted, so the
    kernel's volume is only close to 1 mL, the closer the finer the grid).

    Args:
        spacing: tuple of 3 floats. Voxel spacing in mm, ``(x, y, z)`` (SimpleITK order).
        radius: float. Sphere radius in mm. Defaults to that of a 1 mL sphere.

    Returns:
        numpy.ndarray ``(z, y, x)`` of odd sizes, float64, summing to 1.
    """
    sx, sy, sz = (float(s) for s in spacing)
    half = [int(math.floor(radius / s + 1e-9)) for s in (sz, sy, sx)]
    kz, ky, kx = np.meshgrid(
        *(np.arange(-h, h + 1) * s for h, s in zip(half, (sz, sy, sx))), indexing="ij"
    )
    kernel = (kz**2 + ky**2 + kx**2 <= radius**2 + 1e-9).astype(np.float64)
    return kernel / kernel.sum()


def native_pet_features(
    pet: sitk.Image, mask: sitk.Image, *, label: int = 1, patient_id: str = "?"
) -> dict[str, float]:
    """SUVmax, SUVpeak, MTV and TLG of the GTVt on the PET's own (native) grid.

    The mask is mapped onto the PET grid by physical position with nearest neighbour
    (``sitk.Resample(mask, pet, sitk.Transform(), sitk.sitkNearestNeighbor)``): a PET voxel is
    in the tumour when its centre falls in a mask voxel of ``label``. When no PET voxel centre
    does (a mask smaller than a PET voxel), the PET voxels that contain a mask voxel centre are
    used instead. No PET value is interpolated. The PET is first cropped (index space) to the
    mask's neighbourhood, which leaves every value below unchanged.

    - ``PET_native_SUVmax``: the highest SUV of the PET voxels in the tumour;
    - ``PET_native_SUVpeak_1mL``: the highest, over the PET voxels in the tumour, of the mean SUV
      in a 1 mL sphere (radius 6.2 mm) centred on that voxel; the sphere averages all PET
      voxels, inside the tumour or not, whose centres lie within the radius
      (:func:`suvpeak_kernel`), and only those inside the scan at its border;
    - ``PET_native_MTV_SUV2.5_mL`` / ``PET_native_TLG_SUV2.5``: the tumour's PET voxels with
      SUV >= 2.5: their volume in mL, and volume x their mean SUV (mL x SUV; 0 when none);
    - ``PET_native_MTV_41pct_mL`` / ``PET_native_TLG_41pct``: the same with SUV >= 41% of
      ``PET_native_SUVmax``.

    The thresholds only select voxels within the GTVt mask; no region growing.

    Args:
        pet: SimpleITK.Image. PET in SUV, on its own grid.
        mask: SimpleITK.Image. Integer label map, any grid (physical overlap with the PET).
        label: int. The mask value of the tumour. Defaults to 1.
        patient_id: str. Named in error messages. Defaults to ``"?"``.

    Returns:
        dict with the keys of :data:`hnprog.radiomics.params.NATIVE_PET_FEATURES`, in order.

    Raises:
        PatientError: if the mask holds no voxel of ``label`` or lies outside the PET.
    """
    inside = sitk.GetArrayViewFromImage(mask) == label
    if not inside.any():
        raise PatientError(patient_id, f"mask is empty: no voxel has label {label}")
    zyx = np.nonzero(inside)
    size = np.asarray(mask.GetSize())
    lower = np.maximum([zyx[2].min() - 1, zyx[1].min() - 1, zyx[0].min() - 1], 0)
    upper = np.minimum([zyx[2].max() + 2, zyx[1].max() + 2, zyx[0].max() + 2], size)
    roi = sitk.Cast(mask == label, sitk.sitkUInt8)
    roi = roi[int(lower[0]):int(upper[0]), int(lower[1]):int(upper[1]),
              int(lower[2]):int(upper[2])]
    region = physical_extent(roi)
    if not physical_extent(pet).intersects(region):
        raise PatientError(patient_id, "the mask does not overlap the PET image")
    margin = SUVPEAK_RADIUS_MM + max(pet.GetSpacing())  # the SUVpeak sphere's neighbourhood
    pet_crop = crop_to_box(pet, region.expanded(margin))
    values = sitk.GetArrayFromImage(pet_crop).astype(np.float64)
    on_pet = sitk.GetArrayFromImage(
        sitk.Resample(roi, pet_crop, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                      sitk.sitkUInt8)
    ).astype(bool)
    if not on_pet.any():  # mask smaller than a PET voxel: the voxels holding its centres
        points = voxel_centres(mask, zyx)
        direction = np.asarray(pet_crop.GetDirection(), dtype=np.float64).reshape(3, 3)
        index = np.rint(
            (points - np.asarray(pet_crop.GetOrigin())) @ direction
            / np.asarray(pet_crop.GetSpacing())
        ).astype(int)
        keep = np.all((index >= 0) & (index < np.asarray(pet_crop.GetSize())), axis=1)
        if not keep.any():
            raise PatientError(patient_id, "the mask lies outside the PET field of view")
        on_pet[index[keep, 2], index[keep, 1], index[keep, 0]] = True
    from scipy import ndimage

    tumour = values[on_pet]
    suv_max = float(tumour.max())
    kernel = suvpeak_kernel(pet_crop.GetSpacing())
    # mean over the sphere's voxels that lie in the scan: the crop reaches past the sphere of
    # every tumour voxel except where its edge is the scan's, so this is the whole PET's mean
    total = ndimage.convolve(values, kernel, mode="constant", cval=0.0)
    weight = ndimage.convolve(np.ones_like(values), kernel, mode="constant", cval=0.0)
    suv_peak = float((total[on_pet] / weight[on_pet]).max())
    voxel_ml = float(np.prod(pet_crop.GetSpacing())) / 1000.0

    def volume_and_tlg(threshold: float) -> tuple[float, float]:
        selected = tumour[tumour >= threshold]
        volume = selected.size * voxel_ml
        return volume, (volume * float(selected.mean()) if selected.size else 0.0)

    mtv_abs, tlg_abs = volume_and_tlg(MTV_SUV_THRESHOLD)
    mtv_rel, tlg_rel = volume_and_tlg(MTV_RELATIVE_THRESHOLD * suv_max)
    return dict(zip(NATIVE_PET_FEATURES, (suv_max, suv_peak, mtv_abs, tlg_abs, mtv_rel, tlg_rel)))


_EXTRACTORS: dict[str, list[tuple[dict[str, Any], Any]]] = {}


def pyradiomics_extractors(params: dict[str, Any]) -> list[tuple[dict[str, Any], Any]]:
    """One configured PyRadiomics extractor per run of ``params``, built once per process.

    Args:
        params: dict. Params as :func:`hnprog.radiomics.params.load_params` returns them.

    Returns:
        list of ``(run, extractor)``: the run's params and its
        ``radiomics.featureextractor.RadiomicsFeatureExtractor`` (resampling disabled).

    Raises:
        InputError: if PyRadiomics refuses a run's settings.
    """
    key = params_hash(params)
    if key not in _EXTRACTORS:
        # PyRadiomics and its schema validator (pykwalify) import modules with a deprecated API
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            _EXTRACTORS[key] = _build_extractors(params)
    return _EXTRACTORS[key]


def _build_extractors(params: dict[str, Any]) -> list[tuple[dict[str, Any], Any]]:
    import radiomics
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    radiomics.setVerbosity(logging.ERROR)
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    extractors = []
    for run in params["runs"]:
        settings = {**params["setting"], **run["setting"]}
        settings.pop("resampledPixelSpacing", None)  # hnprog resamples; never PyRadiomics
        try:
            extractor = RadiomicsFeatureExtractor(
                {
                    "imageType": {"Original": {}},
                    "setting": settings,
                    "featureClass": run["featureClass"],
                }
            )
        except Exception as exc:  # PyRadiomics validates with its own exceptions
            raise InputError(f"radiomics params, run {run['prefix']!r}: {exc}") from None
        extractors.append((run, extractor))
    return extractors


def extract_features(
    case: Case,
    *legacy: Any,
    params: str | os.PathLike | Mapping[str, Any] | None = None,
    patient_id: str | None = None,
) -> dict[str, float]:
    """Extract the radiomics features of one patient inside the GTVt.

    Args:
        case: Case. The patient's ``"ct"`` (HU), ``"pet"`` (SUV) and ``"mask"`` (GTVt label
            map) SimpleITK images, each on its own grid, as
            :func:`hnprog.data.loading.load_case` (or :func:`read_case`) returns them;
            ``case.patient_id`` is named in errors.
        *legacy: deprecated. The former form ``extract_features(ct, pet, mask, params=...,
            patient_id=...)`` with three SimpleITK images or three file paths still works for
            one release, with a ``DeprecationWarning``; paths are read through the patient
            loader (:func:`read_case`).
        params: str, PathLike, dict or None. Params file; None for the paper's 274 features.
            Defaults to None.
        patient_id: str, optional. Deprecated, with the former form only (a Case carries its
            patient id). Defaults to None.

    Returns:
        dict mapping feature name to value, in the order of
        :func:`hnprog.radiomics.params.feature_names`: the PyRadiomics features on the
        resampled grid, then (unless the params say ``native_pet: false``) the PET measures on
        the PET's native grid (:func:`native_pet_features`).

    Raises:
        PatientError: if the case has no mask, the mask is empty, a single voxel, or outside
            the CT or PET field of view, or PyRadiomics fails on the region.
        InputError: if the params are invalid.

    Example:
        >>> from hnprog.data.cohort import read_cohort
        >>> case = read_case(read_cohort("data/")["P1"])  # doctest: +SKIP
        >>> features = extract_features(case)  # doctest: +SKIP
        >>> features["PET_native_SUVmax"]  # the clinical SUVmax  # doctest: +SKIP
        12.3
        >>> features["PET_bw1_firstorder_Maximum"]  # after resampling to 2 mm  # doctest: +SKIP
        11.1
    """
    if legacy or not isinstance(case, Case):
        case = _legacy_case(case, *legacy, patient_id=patient_id)
    elif patient_id is not None:
        raise TypeError(
            "extract_features(case) takes the patient id from the case; patient_id= goes only "
            "with the deprecated extract_features(ct, pet, mask) form"
        )
    loaded = load_params(params)
    pid = case.patient_id or "?"
    if MASK not in case.images:
        raise PatientError(pid, "no GTVt mask")
    images = {}
    images["CT"], images["PET"], roi = crop_and_resample(
        case.images[CT],
        case.images[PET],
        case.images[MASK],
        spacing=tuple(loaded["resampling"]["spacing"]),
        margin=loaded["resampling"]["margin"],
        label=loaded["label"],
        patient_id=pid,
    )
    features: dict[str, float] = {}
    for run, extractor in pyradiomics_extractors(loaded):
        try:
            result = extractor.execute(images[run["image"]], roi, label=1)
        except Exception as exc:  # PyRadiomics raises ValueError/AssertionError on bad regions
            raise PatientError(
                pid, f"PyRadiomics failed on {run['image']} ({run['prefix'] or 'shape'}): {exc}"
            ) from None
        for key, value in result.items():
            image_type, _, name = key.partition("_")
            if image_type != "original":
                continue
            class_name, _, feature = name.partition("_")
            features[feature_column(run["prefix"], class_name, feature)] = float(value)
    if loaded["native_pet"]:
        features.update(
            native_pet_features(case.images[PET], case.images[MASK], label=loaded["label"],
                                patient_id=pid)
        )
    names = feature_names(loaded)
    missing = [name for name in names if name not in features]
    if missing:
        raise PatientError(
            pid, f"PyRadiomics did not return {len(missing)} features: {missing[:5]}"
        )
    return {name: features[name] for name in names}


def _legacy_case(*images: Any, patient_id: str | None) -> Case:
    """The Case of the deprecated ``extract_features(ct, pet, mask)`` call."""
    if len(images) != 3:
        raise TypeError(
            "extract_features takes a Case (or, deprecated, three images or paths ct, pet, "
            f"mask). Received: {len(images)} positional arguments"
        )
    warnings.warn(
        "extract_features(ct, pet, mask, patient_id=...) is deprecated and will stop working "
        "in the next release; pass the patient's Case: extract_features(read_case(patient)) "
        "(hnprog.radiomics.features.read_case), or "
        "extract_features(Case({'ct': ct, 'pet': pet, 'mask': mask}, patient_id=...)) for "
        "images already in memory.",
        DeprecationWarning,
        stacklevel=3,
    )
    pid = "?" if patient_id is None else str(patient_id)
    is_image = [isinstance(image, sitk.Image) for image in images]
    if all(is_image):
        return Case(dict(zip((CT, PET, MASK), images)), patient_id=pid)
    if any(is_image):
        raise InputError(
            "extract_features: give the CT, PET and mask all as SimpleITK images or all as "
            f"file paths. Received: {[type(image).__name__ for image in images]}"
        )
    ct, pet, mask = (Path(image) for image in images)
    return read_case(Patient(pid, ct, pet, mask))
