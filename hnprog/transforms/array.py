"""Pure array and image functions of the preprocessing: no case, no keys.

Each function takes SimpleITK images or NumPy arrays and returns new ones with their
geometry; the dict transforms of :mod:`hnprog.transforms.case` wrap them (MONAI's array +
dictionary pattern), and :func:`hnprog.transforms.preprocess_case` composes those.

Conventions: SimpleITK spacing, origin and sizes are ``(x, y, z)``; NumPy arrays are
``(z, y, x)`` (``D, H, W``); CT in HU, PET in SUV, distances in mm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from hnprog.errors import InputError
from hnprog.geometry import BoundingBox, Grid, index_range, physical_extent
from hnprog.transforms.config import PreprocessConfig

__all__ = [
    "Augmentation",
    "crop_margin",
    "invert_to_reference",
    "is_label_map",
    "normalise_ct_array",
    "normalise_pet_array",
    "resample_to_grid",
]

Vector3 = tuple[float, float, float]

#: SimpleITK pixel types of label maps (masks): resampled with nearest neighbour.
LABEL_PIXEL_TYPES = frozenset({sitk.sitkUInt8, sitk.sitkInt8, sitk.sitkUInt16, sitk.sitkInt16,
                               sitk.sitkUInt32, sitk.sitkInt32, sitk.sitkUInt64,
                               sitk.sitkInt64})


def is_label_map(image: sitk.Image) -> bool:
    """Whether an image is a label map (an integer pixel type, e.g. a uint8 mask).

    Label maps are resampled with nearest neighbour into uint8; intensity images (floating
    point: CT in HU, PET in SUV) with linear interpolation into float32.
    """
    return image.GetPixelID() in LABEL_PIXEL_TYPES


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



def resample_to_grid(
    image: sitk.Image,
    grid: Grid,
    *,
    augmentation: Augmentation | None = None,
    outside: float = 0.0,
) -> sitk.Image:
    """Resample an image once onto a grid, composing an optional random transform.

    Label maps (:func:`is_label_map`) use nearest neighbour and give uint8; intensity images
    use linear interpolation and give float32.

    Args:
        image: SimpleITK.Image. Any geometry.
        grid: Grid. The output grid.
        augmentation: Augmentation, optional. Applied about the grid's centre in the same
            resampling. Defaults to None (identity).
        outside: float. Value of grid voxels outside the image. Defaults to 0.

    Returns:
        SimpleITK.Image on ``grid``.
    """
    transform = (augmentation or Augmentation()).transform(grid.center, grid.spacing)
    resample = sitk.ResampleImageFilter()
    resample.SetSize(grid.size)
    resample.SetOutputOrigin(grid.origin)
    resample.SetOutputSpacing(grid.spacing)
    resample.SetOutputDirection(grid.direction)
    resample.SetTransform(transform)
    resample.SetDefaultPixelValue(float(outside))
    if is_label_map(image):
        resample.SetInterpolator(sitk.sitkNearestNeighbor)
        resample.SetOutputPixelType(sitk.sitkUInt8)
    else:
        resample.SetInterpolator(sitk.sitkLinear)
        resample.SetOutputPixelType(sitk.sitkFloat32)
    return resample.Execute(image)


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


