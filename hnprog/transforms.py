"""Composable PET/CT preprocessing transforms that keep each image's geometry.

A :class:`Case` holds SimpleITK images under the keys ``"ct"`` (HU), ``"pet"`` (SUV) and,
optionally, ``"mask"`` (GTVt, 0/1), with the patient's :class:`~hnprog.geometry.BoundingBox`.
SimpleITK images carry their own origin, spacing (mm) and direction cosines in physical LPS
space, so every transform is geometry-aware, like MONAI's dictionary transforms or TorchIO's
``Subject``. Transforms are callables ``Case -> Case`` that return a new case; chain them with
:class:`Compose`:

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
resampling, so no image is interpolated twice. :func:`preprocess_case` is the one pipeline used
at training (with an ``rng``) and at prediction (without); it applies the same steps without
the crop (resampling reads only the voxels it needs; the disk cache of training crops) and
writes the normalised channels straight into the network array.

Conventions: spacing, origin and sizes of SimpleITK objects are in ``(x, y, z)`` order;
NumPy arrays are ``(z, y, x)`` (``D, H, W``); the network input is ``(D, H, W, 2)`` with
channels ``[CT, PET]``.
"""

from __future__ import annotations

import dataclasses
import math
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

from hnprog.errors import InputError, PatientError
from hnprog.geometry import BoundingBox, Grid, crop_to_box, index_range, physical_extent

__all__ = [
    "Augmentation",
    "Case",
    "Compose",
    "CropToBox",
    "Grid",
    "InvertToReference",
    "NormaliseCT",
    "NormalisePET",
    "PreprocessConfig",
    "PreprocessedCase",
    "RandomAugment",
    "ResampleToGrid",
    "check_overlap",
    "crop_margin",
    "index_range",
    "invert_to_reference",
    "normalise_ct_array",
    "normalise_pet_array",
    "physical_extent",
    "preprocess_case",
]

CT, PET, MASK = "ct", "pet", "mask"
PARALLEL_MIN_SIZE = 96  # grid edge (voxels) from which preprocess_case resamples in threads
MAX_SHIFT_MM = 30.0  # the paper's training shifts: up to 30 voxels at 1 mm
Vector3 = tuple[float, float, float]


# ---------------------------------------------------------------------------------------------
# configuration and grid
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PreprocessConfig:
    """Parameters of the preprocessing shared by training and prediction.

    Args:
        spacing: float. Isotropic voxel size of the network grid, mm. Defaults to 1.0.
        crop_size: int. Edge of the cubic network grid, voxels. Defaults to 144.
        ct_clip: tuple of two floats. CT window in HU, mapped to [-1, 1]. Defaults to
            ``(-1024.0, 1024.0)``.
        ct_outside: float. CT value (HU) of grid voxels outside the CT scan. Defaults to -1024.
        pet_outside: float. PET value (SUV) of grid voxels outside the PET scan. Defaults to 0.
        max_shift: int or None. Largest random shift per axis, voxels of the network grid
            (training only). Defaults to None: the paper's 30 mm (30 voxels at 1 mm) in voxels
            of ``spacing``, e.g. 15 at 2 mm.
        max_rotation: float. Largest random rotation angle, degrees (training only).
            Defaults to 5.0.
        mirror: bool. Whether training flips left-right (x axis) with probability 1/2.
            Defaults to True.

    Raises:
        InputError: on a non-positive spacing or crop size, an empty CT window, a negative
            shift, or a rotation outside [0, 90) degrees.

    Example:
        >>> PreprocessConfig.cpu().to_dict()["spacing"]
        2.0
    """

    spacing: float = 1.0
    crop_size: int = 144
    ct_clip: tuple[float, float] = (-1024.0, 1024.0)
    ct_outside: float = -1024.0
    pet_outside: float = 0.0
    max_shift: int | None = None
    max_rotation: float = 5.0
    mirror: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "ct_clip", tuple(float(v) for v in self.ct_clip))
        if not (math.isfinite(self.spacing) and self.spacing > 0):
            raise InputError(
                f"spacing must be a positive number of mm. Received: spacing={self.spacing}"
            )
        if int(self.crop_size) != self.crop_size or self.crop_size < 1:
            raise InputError(
                f"crop_size must be a positive integer. Received: crop_size={self.crop_size}"
            )
        if len(self.ct_clip) != 2 or not self.ct_clip[0] < self.ct_clip[1]:
            raise InputError(
                f"ct_clip must be (low, high) with low < high. Received: ct_clip={self.ct_clip}"
            )
        if self.max_shift is None:
            object.__setattr__(self, "max_shift", round(MAX_SHIFT_MM / self.spacing))
        if int(self.max_shift) != self.max_shift or self.max_shift < 0:
            raise InputError(
                f"max_shift must be an integer >= 0. Received: max_shift={self.max_shift}"
            )
        if not 0 <= self.max_rotation < 90:
            raise InputError(
                "max_rotation must be in [0, 90) degrees. "
                f"Received: max_rotation={self.max_rotation}"
            )
        object.__setattr__(self, "crop_size", int(self.crop_size))
        object.__setattr__(self, "max_shift", int(self.max_shift))

    @classmethod
    def cpu(cls, **overrides: Any) -> PreprocessConfig:
        """The fast CPU setting: 2 mm voxels, a 64^3 grid and shifts up to 15 voxels (30 mm)."""
        return cls(**{"spacing": 2.0, "crop_size": 64, **overrides})

    def to_dict(self) -> dict[str, Any]:
        """The parameters as a JSON-ready dict."""
        values = dataclasses.asdict(self)
        values["ct_clip"] = list(self.ct_clip)
        return values

    @classmethod
    def from_recorded(cls, spec: Mapping[str, Any] | None) -> PreprocessConfig:
        """The config recorded with a model (a preset's ``hnprog.json`` ``preprocessing``).

        Keys that describe rather than parameterise the preprocessing (``channel_order``)
        are checked and dropped; unknown keys from newer versions are ignored.

        Raises:
            InputError: if nothing is recorded or the channel order is not ``[CT, PET]``.
        """
        if spec is None:
            raise InputError(
                "the model records no preprocessing (hnprog.json 'preprocessing'), so its input "
                "cannot be prepared; load it with hnprog.from_preset from a preset folder"
            )
        spec = dict(spec)
        channels = spec.pop("channel_order", ["CT", "PET"])
        if [str(c).upper() for c in channels] != ["CT", "PET"]:
            raise InputError(f"the model expects channels {channels}; hnprog prepares [CT, PET]")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls.from_dict({k: v for k, v in spec.items() if k in known})

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> PreprocessConfig:
        """Rebuild a config from :meth:`to_dict`'s output.

        Raises:
            InputError: on an unknown key.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"unknown preprocessing parameters {unknown}; known: {sorted(known)}")
        return cls(**dict(values))


# ---------------------------------------------------------------------------------------------
# case and augmentation parameters
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Augmentation:
    """One random spatial transform, applied identically to CT, PET and mask.

    Applied about the grid's centre ``c``: a grid point ``p`` samples the input at
    ``R M (p - c) + c + shift * spacing``, where ``M`` flips x when ``mirror`` and ``R``
    rotates by ``angle`` degrees about ``axis``.

    Args:
        shift: tuple of 3 ints. Shift ``(x, y, z)`` in voxels of the network grid.
        mirror: bool. Left-right (sagittal) flip of the x axis. Note that this swaps the
            patient's left and right.
        axis: tuple of 3 floats. Rotation axis (unit vector, ``(x, y, z)``).
        angle: float. Rotation angle, degrees.
    """

    shift: tuple[int, int, int] = (0, 0, 0)
    mirror: bool = False
    axis: Vector3 = (0.0, 0.0, 1.0)
    angle: float = 0.0

    @classmethod
    def sample(
        cls, rng: np.random.Generator, *, max_shift: int, mirror: bool, max_rotation: float
    ) -> Augmentation:
        """Draw shifts uniformly in ``[-max_shift, max_shift]`` voxels per axis, a flip with
        probability 1/2 (when ``mirror``) and an angle uniform in ``[-max_rotation,
        max_rotation]`` degrees about an axis uniform on the sphere."""
        shift = tuple(int(v) for v in rng.integers(-max_shift, max_shift + 1, size=3))
        flip = bool(mirror and rng.random() < 0.5)
        axis = rng.normal(size=3)
        axis = axis / max(np.linalg.norm(axis), 1e-12)
        angle = float(rng.uniform(-max_rotation, max_rotation)) if max_rotation > 0 else 0.0
        return cls(shift, flip, tuple(float(a) for a in axis), angle)  # type: ignore[arg-type]

    def matrix(self) -> np.ndarray:
        """The 3x3 linear part ``R M`` (Rodrigues rotation times the optional x flip)."""
        theta = math.radians(self.angle)
        kx, ky, kz = np.asarray(self.axis, dtype=float) / np.linalg.norm(self.axis)
        k = np.array([[0, -kz, ky], [kz, 0, -kx], [-ky, kx, 0]])
        rotation = np.eye(3) + math.sin(theta) * k + (1 - math.cos(theta)) * (k @ k)
        flip = np.diag([-1.0 if self.mirror else 1.0, 1.0, 1.0])
        return rotation @ flip

    def transform(self, center: Vector3, spacing: Vector3) -> sitk.AffineTransform:
        """The SimpleITK transform from grid points to input points (mm)."""
        affine = sitk.AffineTransform(3)
        affine.SetMatrix(self.matrix().ravel().tolist())
        affine.SetCenter(tuple(float(c) for c in center))
        affine.SetTranslation(tuple(float(s * d) for s, d in zip(self.shift, spacing)))
        return affine


@dataclass(frozen=True)
class Case:
    """SimpleITK images of one patient, with the box and what the pipeline has done so far.

    Args:
        images: dict of str to SimpleITK.Image. ``"ct"`` (HU), ``"pet"`` (SUV) and optionally
            ``"mask"`` (uint8, 1 = GTVt); each with its own geometry.
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
        image = np.stack(
            [sitk.GetArrayFromImage(self.images[CT]), sitk.GetArrayFromImage(self.images[PET])],
            axis=-1,
        ).astype(np.float32, copy=False)
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


# ---------------------------------------------------------------------------------------------
# transforms
# ---------------------------------------------------------------------------------------------
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

    Images use trilinear interpolation, the mask nearest neighbour. A pending
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
        augmentation = case.augmentation or Augmentation()
        transform = augmentation.transform(grid.center, grid.spacing)
        resampled = {}
        for key, image in case.images.items():
            resample = sitk.ResampleImageFilter()
            resample.SetSize(grid.size)
            resample.SetOutputOrigin(grid.origin)
            resample.SetOutputSpacing(grid.spacing)
            resample.SetOutputDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
            resample.SetTransform(transform)
            resample.SetDefaultPixelValue(self.outside.get(key, 0.0))
            if key == MASK:
                resample.SetInterpolator(sitk.sitkNearestNeighbor)
                resample.SetOutputPixelType(sitk.sitkUInt8)
            else:
                resample.SetInterpolator(sitk.sitkLinear)
                resample.SetOutputPixelType(sitk.sitkFloat32)
            resampled[key] = resample.Execute(image)
        return case.replace(images=resampled, grid=grid, augmentation=None)

    def __repr__(self) -> str:
        return f"ResampleToGrid(spacing={self.spacing}, size={self.size})"


def _like(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    return image


def normalise_ct_array(
    values: np.ndarray, clip: tuple[float, float], out: np.ndarray | None = None
) -> np.ndarray:
    """Clip CT values (HU) to ``clip`` and map them linearly to [-1, 1], as float32.

    Args:
        values: numpy.ndarray. CT in HU, any real dtype; not modified.
        clip: tuple ``(low, high)`` in HU.
        out: numpy.ndarray, optional. float32 array (a view is fine) of the same shape to
            write into. Defaults to a new array.

    Returns:
        numpy.ndarray float32, ``out`` when given.
    """
    low, high = float(clip[0]), float(clip[1])
    out = np.clip(values, low, high, out=out, dtype=np.float32)
    out -= np.float32(low)
    out *= np.float32(2.0 / (high - low))
    out -= np.float32(1.0)
    return out


def normalise_pet_array(values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Z-score PET values over the whole array (float64 statistics), as float32.

    A constant array becomes all zeros.

    Args:
        values: numpy.ndarray. PET in SUV; not modified.
        out: numpy.ndarray, optional. float32 array (a view is fine) of the same shape to
            write into. Defaults to a new array.

    Returns:
        numpy.ndarray float32, ``out`` when given.
    """
    mean = np.float32(values.mean(dtype=np.float64))
    out = np.subtract(values, mean, out=out, dtype=np.float32)
    std = float(np.sqrt(np.mean(np.square(out), dtype=np.float64)))
    out /= np.float32(std if std > 1e-6 else 1.0)
    return out


class NormaliseCT:
    """Clip CT to a window (HU) and map it linearly to [-1, 1].

    Args:
        clip: tuple of two floats. The window ``(low, high)`` in HU. Defaults to
            ``(-1024, 1024)``.
    """

    def __init__(self, clip: tuple[float, float] = (-1024.0, 1024.0)):
        self.clip = (float(clip[0]), float(clip[1]))

    def __call__(self, case: Case) -> Case:
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
        values = normalise_pet_array(sitk.GetArrayViewFromImage(case.images[PET]))
        return case.with_images({PET: _like(values, case.images[PET])})

    def __repr__(self) -> str:
        return "NormalisePET()"


def invert_to_reference(
    volume: np.ndarray,
    grid: Grid,
    reference: sitk.Image,
    *,
    interpolation: str = "linear",
) -> sitk.Image:
    """Put a network-grid volume back onto a patient's original image grid.

    Args:
        volume: numpy.ndarray ``(D, H, W)`` on ``grid``: a probability map (use linear) or a
            label mask (use nearest).
        grid: Grid. The network grid of the volume (``PreprocessedCase.grid``).
        reference: SimpleITK.Image. The original CT (or PET); its origin, spacing, direction
            and size define the output.
        interpolation: str. ``"linear"`` (float32 output) or ``"nearest"`` (uint8 output).
            Defaults to ``"linear"``.

    Returns:
        SimpleITK.Image on the reference grid; 0 outside the network grid.

    Raises:
        InputError: on a shape that does not match the grid or an unknown interpolation.

    Example:
        >>> prob = invert_to_reference(p, case.grid, ct_image)  # doctest: +SKIP
    """
    if interpolation not in ("linear", "nearest"):
        raise InputError(
            "interpolation must be 'linear' or 'nearest'. "
            f"Received: interpolation={interpolation!r}"
        )
    nearest = interpolation == "nearest"
    dtype = np.uint8 if nearest else np.float32
    source = grid.image(np.asarray(volume, dtype=dtype))
    if nearest:  # labels: the whole grid, so that no half-voxel tie can flip
        return sitk.Resample(source, reference, sitk.Transform(), sitk.sitkNearestNeighbor,
                             0.0, sitk.sitkUInt8)
    # Only the reference voxels around the grid can be non-zero: resample onto that block
    # (the 144 mm box is a small part of a CT) and place it in a zero image. Same values as
    # resampling the whole reference, to float32 rounding.
    start, stop = index_range(reference, physical_extent(source))
    block = sitk.Resample(  # the block's geometry only: no copy of the reference's voxels
        source,
        [int(n) for n in stop - start],
        sitk.Transform(),
        sitk.sitkLinear,
        reference.TransformIndexToPhysicalPoint([int(i) for i in start]),
        reference.GetSpacing(),
        reference.GetDirection(),
        0.0,
        sitk.sitkFloat32,
    )
    full = np.zeros(reference.GetSize()[::-1], dtype=dtype)
    full[start[2] : stop[2], start[1] : stop[1], start[0] : stop[0]] = (
        sitk.GetArrayViewFromImage(block))
    image = sitk.GetImageFromArray(full)
    image.CopyInformation(reference)
    return image


@dataclass
class InvertToReference:
    """Transform that moves a case's grid images back onto a reference image's grid.

    Args:
        reference: SimpleITK.Image. The original CT or PET.
        keys: tuple of str. Images to move. Defaults to ``("mask",)``.
        interpolation: dict of str to str. Per-key interpolation; ``"mask"`` defaults to
            ``"nearest"``, others to ``"linear"``.
    """

    reference: sitk.Image
    keys: tuple[str, ...] = (MASK,)
    interpolation: dict[str, str] = field(default_factory=dict)

    def __call__(self, case: Case) -> Case:
        if case.grid is None:
            raise case.error("InvertToReference needs a case on a grid (after ResampleToGrid)")
        moved = {}
        for key in self.keys:
            method = self.interpolation.get(key, "nearest" if key == MASK else "linear")
            array = sitk.GetArrayFromImage(case.images[key])
            moved[key] = invert_to_reference(array, case.grid, self.reference, interpolation=method)
        return case.replace(images={**case.images, **moved}, grid=None)


# ---------------------------------------------------------------------------------------------
# the preprocessing pipeline
# ---------------------------------------------------------------------------------------------
def crop_margin(box: BoundingBox, config: PreprocessConfig, input_spacing: float = 4.0) -> float:
    """The margin (mm) around the box that :class:`CropToBox` must keep so that the grid,
    moved by any augmentation the config allows, only samples kept voxels.

    Args:
        box: BoundingBox. The patient's box (mm).
        config: PreprocessConfig. Grid size, spacing, shift and rotation limits.
        input_spacing: float. The coarsest input voxel size, mm (room for interpolation).
            Defaults to 4.0.

    Returns:
        float. Margin in mm, >= 0.
    """
    half_grid = config.crop_size * config.spacing / 2
    rotation = 2 * math.sqrt(3) * math.sin(math.radians(config.max_rotation) / 2)
    needed = half_grid * (1 + rotation) + config.max_shift * config.spacing + 2 * input_spacing
    return max(0.0, needed - min(box.size) / 2)


def preprocess_case(
    case: Case,
    config: PreprocessConfig | None = None,
    *,
    rng: np.random.Generator | int | None = None,
) -> PreprocessedCase:
    """Preprocess one case for the network: (augment), resample once, normalise.

    The same function serves training (``rng`` given: random shift, flip and rotation) and
    prediction (``rng=None``: no augmentation).

    Args:
        case: Case. ``"ct"``, ``"pet"`` and optional ``"mask"`` images with the box.
        config: PreprocessConfig, optional. Defaults to ``PreprocessConfig()`` (1 mm, 144^3).
        rng: numpy Generator, int or None. Augmentation randomness; None disables
            augmentation. Defaults to None.

    Returns:
        PreprocessedCase with the image ``(D, H, W, 2)`` float32, mask ``(D, H, W)`` uint8 or
        None, and the grid.

    Raises:
        PatientError: if the PET and CT do not overlap or the box lies outside them.

    Example:
        >>> out = preprocess_case(case, PreprocessConfig.cpu())  # doctest: +SKIP
        >>> out.image.shape  # doctest: +SKIP
        (64, 64, 64, 2)
    """
    config = config or PreprocessConfig()
    if case.box is None:
        raise case.error("preprocess_case needs a bounding box in the case")
    # No CropToBox here: resampling reads only the voxels around the (augmented) grid, so a
    # crop would only copy them (the disk cache crops, to store less).
    check_overlap(case)
    if rng is not None:
        case = RandomAugment(config.max_shift, config.mirror, config.max_rotation, seed=rng)(case)
    resample = ResampleToGrid(
        config.spacing, config.crop_size, config.ct_outside, config.pet_outside
    )
    grid = Grid.from_box(case.box, config.spacing, config.crop_size)
    image = np.empty((*grid.shape, 2), dtype=np.float32)
    arrays: dict[str, np.ndarray] = {}

    def channel(key: str) -> None:
        # ResampleToGrid on this image alone, then NormaliseCT / NormalisePET written straight
        # into the network array's channel.
        resampled_image = resample(case.replace(images={key: case.images[key]})).images[key]
        resampled = sitk.GetArrayViewFromImage(resampled_image)  # valid while the image lives
        if key == CT:
            normalise_ct_array(resampled, config.ct_clip, out=image[..., 0])
        elif key == PET:
            normalise_pet_array(resampled, out=image[..., 1])
        else:
            arrays[key] = resampled.astype(np.uint8)

    keys = [key for key in (CT, PET, MASK) if key in case.images]
    if config.crop_size >= PARALLEL_MIN_SIZE:  # SimpleITK and NumPy release the GIL
        with ThreadPoolExecutor(max_workers=len(keys)) as pool:
            for done in [pool.submit(channel, key) for key in keys]:
                done.result()
    else:  # small grids: threads would cost more than they save
        for key in keys:
            channel(key)
    mask = arrays.get(MASK)
    return PreprocessedCase(image, mask, grid, case.augmentation)  # type: ignore[arg-type]
