"""One patient's images as a :class:`Case`, and the dict transforms ``Case -> Case``.

A :class:`Case` holds SimpleITK images under the keys ``"ct"`` (HU), ``"pet"`` (SUV) and,
optionally, ``"mask"`` (GTVt, 0/1), with the patient's
:class:`~hnprog.geometry.BoundingBox`. SimpleITK images carry their own origin, spacing (mm)
and direction cosines in physical LPS space, so every transform is geometry-aware, like
MONAI's dictionary transforms or TorchIO's ``Subject``. Each transform is a thin wrapper
over a pure function of :mod:`hnprog.transforms.array` and returns a new case; whether an
image is resampled as a label map is decided by its type (an integer pixel type), not by its
key. Chain them with :class:`Compose`:

>>> pipeline = Compose([                                             # doctest: +SKIP
...     CropToBox(margin=20.0),            # index-space crop, no interpolation
...     RandomAugment(seed=0),             # records a random shift/mirror/rotation
...     ResampleToGrid(spacing=1.0, size=144),  # ONE sitk.Resample per image
...     NormaliseCT(), NormalisePET(),
... ])
>>> image, mask = pipeline(case).arrays()                              # doctest: +SKIP

The order matters and follows the paper (see ``docs/data.md``): crop first (cheap, exact),
then resample once onto the box's grid. :class:`RandomAugment` does not touch the voxels: it
records the random transform, which :class:`ResampleToGrid` folds into its single
resampling, so no image is interpolated twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

from hnprog.errors import InputError, PatientError
from hnprog.geometry import BoundingBox, Grid, crop_to_box, physical_extent
from hnprog.transforms.array import (
    Augmentation,
    invert_to_reference,
    is_label_map,
    normalise_ct_array,
    normalise_pet_array,
    resample_to_grid,
)

__all__ = [
    "CT",
    "MASK",
    "PET",
    "Case",
    "Compose",
    "CropToBox",
    "InvertToReference",
    "NormaliseCT",
    "NormalisePET",
    "PreprocessedCase",
    "RandomAugment",
    "ResampleToGrid",
    "check_overlap",
]

CT, PET, MASK = "ct", "pet", "mask"


@dataclass(frozen=True)
class Case:
    """SimpleITK images of one patient, with the box and what the pipeline has done so far.

    Args:
        images: dict of str to SimpleITK.Image. ``"ct"`` (HU), ``"pet"`` (SUV) and optionally
            ``"mask"`` (uint8, 1 = GTVt); each with its own geometry. What an image is
            decides how it is resampled: label maps (integer pixel types, such as the uint8
            mask) with nearest neighbour, intensity images (float) linearly; a CT or PET
            with an integer pixel type is cast to float32.
        box: BoundingBox or None. The patient's box (mm). Defaults to None.
        patient_id: str or None. Named in errors. Defaults to None.
        grid: Grid or None. The network grid, set by :class:`ResampleToGrid`. Defaults to None.
        augmentation: Augmentation or None. Pending random transform, set by
            :class:`RandomAugment` and consumed by :class:`ResampleToGrid`. Defaults to None.
    """

    images: Mapping[str, sitk.Image]
    box: BoundingBox | None = None
    patient_id: str | None = None
    grid: Grid | None = None
    augmentation: Augmentation | None = None

    def __post_init__(self) -> None:
        # CT and PET are intensities whatever their file's pixel type: an int16 CT read
        # straight from disk must not be taken for a label map.
        cast = {key: sitk.Cast(image, sitk.sitkFloat32) for key, image in self.images.items()
                if key in (CT, PET) and is_label_map(image)}
        if cast:
            object.__setattr__(self, "images", {**self.images, **cast})

    def replace(self, **changes: Any) -> Case:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def with_images(self, updates: Mapping[str, sitk.Image]) -> Case:
        """A copy with some images replaced."""
        return self.replace(images={**self.images, **updates})

    def error(self, message: str) -> InputError:
        """An error naming the patient (when known)."""
        return PatientError(self.patient_id, message) if self.patient_id else InputError(message)

    def arrays(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The network arrays: image ``(D, H, W, 2)`` float32 ``[CT, PET]``, mask ``(D, H, W)``
        uint8 or None.

        Raises:
            InputError: if the case has not been resampled onto a grid yet.
        """
        if self.grid is None:
            raise self.error("case is not on a grid yet: apply ResampleToGrid first")
        ct = sitk.GetArrayViewFromImage(self.images[CT])
        image = np.empty((*ct.shape, 2), dtype=np.float32)
        image[..., 0] = ct
        image[..., 1] = sitk.GetArrayViewFromImage(self.images[PET])
        mask = self.images.get(MASK)
        return image, (sitk.GetArrayFromImage(mask).astype(np.uint8) if mask is not None else None)


@dataclass(frozen=True)
class PreprocessedCase:
    """The output of :func:`preprocess_case`.

    Args:
        image: numpy.ndarray ``(D, H, W, 2)`` float32, channels ``[CT, PET]`` normalised.
        mask: numpy.ndarray ``(D, H, W)`` uint8 or None.
        grid: Grid. Where the arrays lie in physical space (for :func:`invert_to_reference`).
        augmentation: Augmentation or None. The random transform used, if any.
    """

    image: np.ndarray
    mask: np.ndarray | None
    grid: Grid
    augmentation: Augmentation | None = None


class Compose:
    """Apply transforms in order.

    Args:
        transforms: iterable of callables ``Case -> Case``.
    """

    def __init__(self, transforms: Iterable[Callable[[Case], Case]]):
        self.transforms = list(transforms)

    def __call__(self, case: Case) -> Case:
        for transform in self.transforms:
            case = transform(case)
        return case

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


def check_overlap(case: Case) -> None:
    """Check that the PET and CT overlap and that the case's box meets both.

    Raises:
        PatientError: (named by ``case.patient_id``) if the PET and CT do not overlap, or
            the box lies outside the CT or the PET.
    """
    if case.box is None:
        raise case.error("the case needs a bounding box")
    extents = {key: physical_extent(image) for key, image in case.images.items()}
    if CT in extents and PET in extents and not extents[CT].intersects(extents[PET]):
        raise case.error(
            f"PET and CT do not overlap: CT spans {extents[CT].describe()}, PET spans "
            f"{extents[PET].describe()}"
        )
    for key in (CT, PET):
        if key in extents and not case.box.intersects(extents[key]):
            raise case.error(
                f"bounding box {case.box.describe()} lies outside the {key.upper()} image, "
                f"which spans {extents[key].describe()}"
            )


class CropToBox:
    """Crop every image to the box plus a margin, in index space (no interpolation).

    Each image keeps its own grid; only voxels that can matter for the box are kept. The
    crop is clipped to the image, so cropping twice with the same box is harmless.

    Args:
        margin: float. Extra mm kept on each side of the box. Defaults to 0.

    Raises:
        PatientError: (named by ``case.patient_id``) if the PET and CT do not overlap, or
            the box lies outside the CT or the PET.
    """

    def __init__(self, margin: float = 0.0):
        if margin < 0:
            raise InputError(f"margin must be >= 0 mm. Received: margin={margin}")
        self.margin = float(margin)

    def __call__(self, case: Case) -> Case:
        if case.box is None:
            raise case.error("CropToBox needs a bounding box in the case")
        check_overlap(case)
        box = case.box.expanded(self.margin)
        return case.with_images({key: crop_to_box(image, box)
                                 for key, image in case.images.items()})

    def __repr__(self) -> str:
        return f"CropToBox(margin={self.margin})"


class RandomAugment:
    """Record a random shift, sagittal flip and rotation, to be applied by ResampleToGrid.

    No voxel is touched here: the transform is folded into :class:`ResampleToGrid`'s single
    resampling, identically for CT, PET and mask. Each call draws new parameters from the
    generator, so a seeded pipeline is reproducible.

    Args:
        max_shift: int. Largest shift per axis, grid voxels. Defaults to 30.
        mirror: bool. Flip left-right (x) with probability 1/2. Defaults to True.
        max_rotation: float. Largest rotation angle, degrees. Defaults to 5.0.
        seed: int, numpy Generator or None. Source of randomness. Defaults to None.
    """

    def __init__(
        self,
        max_shift: int = 30,
        mirror: bool = True,
        max_rotation: float = 5.0,
        seed: int | np.random.Generator | None = None,
    ):
        self.max_shift = int(max_shift)
        self.mirror = bool(mirror)
        self.max_rotation = float(max_rotation)
        self.rng = np.random.default_rng(seed)

    def __call__(self, case: Case) -> Case:
        if case.grid is not None:
            raise case.error("RandomAugment must come before ResampleToGrid in the pipeline")
        augmentation = Augmentation.sample(
            self.rng, max_shift=self.max_shift, mirror=self.mirror, max_rotation=self.max_rotation
        )
        return case.replace(augmentation=augmentation)

    def __repr__(self) -> str:
        return (
            f"RandomAugment(max_shift={self.max_shift}, mirror={self.mirror}, "
            f"max_rotation={self.max_rotation})"
        )


class ResampleToGrid:
    """Resample every image once onto the cubic grid centred on the box.

    Intensity images use trilinear interpolation, label maps (the mask) nearest neighbour
    (:func:`~hnprog.transforms.array.resample_to_grid`). A pending
    :class:`Augmentation` is composed into the same resampling. Voxels outside an image get
    ``ct_outside`` (CT), ``pet_outside`` (PET) or 0 (mask).

    Args:
        spacing: float. Grid voxel size, mm. Defaults to 1.0.
        size: int. Grid edge, voxels. Defaults to 144.
        ct_outside: float. HU outside the CT. Defaults to -1024.
        pet_outside: float. SUV outside the PET. Defaults to 0.
    """

    def __init__(
        self,
        spacing: float = 1.0,
        size: int = 144,
        ct_outside: float = -1024.0,
        pet_outside: float = 0.0,
    ):
        self.spacing = float(spacing)
        self.size = int(size)
        self.outside = {CT: float(ct_outside), PET: float(pet_outside), MASK: 0.0}

    def __call__(self, case: Case) -> Case:
        if case.box is None:
            raise case.error("ResampleToGrid needs a bounding box in the case")
        grid = Grid.from_box(case.box, self.spacing, self.size)
        resampled = {key: resample_to_grid(image, grid, augmentation=case.augmentation,
                                           outside=self.outside.get(key, 0.0))
                     for key, image in case.images.items()}
        return case.replace(images=resampled, grid=grid, augmentation=None)

    def __repr__(self) -> str:
        return f"ResampleToGrid(spacing={self.spacing}, size={self.size})"


def _like(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    return image


class NormaliseCT:
    """Clip CT to a window (HU) and map it linearly to [-1, 1].

    Args:
        clip: tuple of two floats. The window ``(low, high)`` in HU. Defaults to
            ``(-1024, 1024)``.
    """

    def __init__(self, clip: tuple[float, float] = (-1024.0, 1024.0)):
        self.clip = (float(clip[0]), float(clip[1]))

    def __call__(self, case: Case) -> Case:
        if CT not in case.images:
            return case
        values = normalise_ct_array(sitk.GetArrayViewFromImage(case.images[CT]), self.clip)
        return case.with_images({CT: _like(values, case.images[CT])})

    def __repr__(self) -> str:
        return f"NormaliseCT(clip={self.clip})"


class NormalisePET:
    """Z-score the PET over all voxels of its current image (zero mean, unit variance).

    Applied after :class:`ResampleToGrid`, the statistics are those of the network grid,
    including grid voxels outside the PET scan (which hold ``pet_outside`` SUV). A constant
    PET becomes all zeros.
    """

    def __call__(self, case: Case) -> Case:
        if PET not in case.images:
            return case
        values = normalise_pet_array(sitk.GetArrayViewFromImage(case.images[PET]))
        return case.with_images({PET: _like(values, case.images[PET])})

    def __repr__(self) -> str:
        return "NormalisePET()"


@dataclass
class InvertToReference:
    """Transform that moves a case's grid images back onto a reference image's grid.

    Args:
        reference: SimpleITK.Image. The original CT or PET.
        keys: tuple of str. Images to move. Defaults to ``("mask",)``.
        interpolation: dict of str to str. Per-key interpolation; label maps default to
            ``"nearest"``, intensity images to ``"linear"``.
    """

    reference: sitk.Image
    keys: tuple[str, ...] = (MASK,)
    interpolation: dict[str, str] = field(default_factory=dict)

    def __call__(self, case: Case) -> Case:
        if case.grid is None:
            raise case.error("InvertToReference needs a case on a grid (after ResampleToGrid)")
        moved = {}
        for key in self.keys:
            image = case.images[key]
            method = self.interpolation.get(key, "nearest" if is_label_map(image) else "linear")
            array = sitk.GetArrayFromImage(image)
            moved[key] = invert_to_reference(array, case.grid, self.reference, interpolation=method)
        return case.replace(images={**case.images, **moved}, grid=None)
