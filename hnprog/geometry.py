"""Boxes and grids in physical space: the one place for geometry.

Everything here works in physical LPS coordinates, in mm, with SimpleITK's ``(x, y, z)``
order; NumPy arrays on a grid are ``(z, y, x)``.

- :class:`BoundingBox`: an axis-aligned box ``(x1, x2, y1, y2, z1, z2)``, as in HECKTOR's
  ``bbox.csv``; :meth:`BoundingBox.parse` reads ``"x1,x2,y1,y2,z1,z2"``.
- :class:`Grid`: a voxel grid (origin, spacing, size, direction), e.g. the network's cube
  centred on a box (:meth:`Grid.from_box`).
- :func:`physical_extent`: the box an image's voxels cover.
- :func:`index_range` and :func:`crop_to_box`: the voxels of an image that cover a box, and
  the index-space crop (no interpolation) to them.

The reading and writing of box CSVs and the automatic box from the PET are in
:mod:`hnprog.data.bbox`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import astuple, dataclass

import numpy as np
import SimpleITK as sitk

from hnprog.errors import InputError

__all__ = [
    "BoundingBox",
    "Grid",
    "crop_to_box",
    "index_range",
    "physical_extent",
    "voxel_centres",
]

Vector3 = tuple[float, float, float]
IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True)
class BoundingBox:
    """An axis-aligned box in physical LPS coordinates.

    Args:
        x1: float. Lower x bound, mm.
        x2: float. Upper x bound, mm.
        y1: float. Lower y bound, mm.
        y2: float. Upper y bound, mm.
        z1: float. Lower z bound, mm.
        z2: float. Upper z bound, mm.

    Raises:
        InputError: if a bound is not finite or an upper bound is not above its lower bound.

    Example:
        >>> box = BoundingBox.from_center((0.0, -20.0, 100.0), 144.0)
        >>> box.size
        (144.0, 144.0, 144.0)
        >>> BoundingBox.parse("-72,72,-92,52,28,172").center
        (0.0, -20.0, 100.0)
    """

    x1: float
    x2: float
    y1: float
    y2: float
    z1: float
    z2: float

    def __post_init__(self) -> None:
        values = astuple(self)
        if not all(math.isfinite(float(v)) for v in values):
            raise InputError(f"bounding box bounds must be finite. Received: {values}")
        for axis, (lo, hi) in zip("xyz", (values[0:2], values[2:4], values[4:6])):
            if not hi > lo:
                raise InputError(
                    f"bounding box {axis}2 must be greater than {axis}1. "
                    f"Received: {axis}1={lo}, {axis}2={hi}"
                )

    @classmethod
    def parse(cls, text: str) -> BoundingBox:
        """Read a box written ``"x1,x2,y1,y2,z1,z2"`` (mm; spaces allowed).

        Args:
            text: str. Six numbers separated by commas.

        Returns:
            BoundingBox.

        Raises:
            InputError: if the text is not six numbers, or the bounds are not ordered.
        """
        parts = str(text).replace(" ", "").split(",")
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            numbers = []
        if len(numbers) != 6:
            raise InputError(
                f"a box is six numbers x1,x2,y1,y2,z1,z2 in mm. Received: {text!r}"
            )
        return cls(*numbers)

    @classmethod
    def from_center(
        cls, center: Iterable[float], size: float | Iterable[float] = 144.0
    ) -> BoundingBox:
        """Build a box from its centre ``(x, y, z)`` in mm and its edge length(s) in mm."""
        cx, cy, cz = (float(c) for c in center)
        sx, sy, sz = (float(size),) * 3 if isinstance(size, (int, float)) else map(float, size)
        return cls(cx - sx / 2, cx + sx / 2, cy - sy / 2, cy + sy / 2, cz - sz / 2, cz + sz / 2)

    @classmethod
    def from_corners(cls, lower: Sequence[float], upper: Sequence[float]) -> BoundingBox:
        """Build a box from its lower and upper corners ``(x, y, z)``, mm."""
        return cls(float(lower[0]), float(upper[0]), float(lower[1]), float(upper[1]),
                   float(lower[2]), float(upper[2]))

    @property
    def lower(self) -> Vector3:
        """The corner with the smallest coordinates, ``(x1, y1, z1)`` in mm."""
        return (self.x1, self.y1, self.z1)

    @property
    def upper(self) -> Vector3:
        """The corner with the largest coordinates, ``(x2, y2, z2)`` in mm."""
        return (self.x2, self.y2, self.z2)

    @property
    def size(self) -> Vector3:
        """Edge lengths ``(x, y, z)`` in mm."""
        return (self.x2 - self.x1, self.y2 - self.y1, self.z2 - self.z1)

    @property
    def center(self) -> Vector3:
        """Centre ``(x, y, z)`` in mm."""
        return ((self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2, (self.z1 + self.z2) / 2)

    def check_cube(self, edge_mm: float, where: str = "box", tolerance_mm: float = 1.0
                   ) -> BoundingBox:
        """Refuse a box that is not the ``edge_mm`` cube a model sees; return it.

        A model crops its own cube (crop size x spacing) around the box's centre, so a box of
        another size would be recorded as given but not used as given.

        Args:
            edge_mm: float. The model's field of view, mm.
            where: str. Named in the error (e.g. ``"--bbox"``). Defaults to ``"box"``.
            tolerance_mm: float. Allowed difference per edge, mm. Defaults to 1.

        Raises:
            InputError: naming both sizes, and that a centre alone can be given.
        """
        if any(abs(edge - edge_mm) > tolerance_mm for edge in self.size):
            size = " x ".join(f"{edge:g}" for edge in self.size)
            centre = ",".join(f"{c:g}" for c in self.center)
            raise InputError(
                f"{where} is {size} mm but the model sees a {edge_mm:g} mm cube around the "
                f"box's centre: give a {edge_mm:g} mm box, or only its centre (--center "
                f"{centre})")
        return self

    def contains(self, point: Iterable[float]) -> bool:
        """Whether the physical point ``(x, y, z)`` (mm) lies inside the box (bounds included)."""
        x, y, z = point
        return self.x1 <= x <= self.x2 and self.y1 <= y <= self.y2 and self.z1 <= z <= self.z2

    def intersects(self, other: BoundingBox) -> bool:
        """Whether the two boxes share a region of non-zero volume."""
        return all(max(a, c) < min(b, d) for a, b, c, d in
                   zip(self.lower, self.upper, other.lower, other.upper))

    def expanded(self, margin: float) -> BoundingBox:
        """The box grown by ``margin`` mm on every side."""
        return BoundingBox(self.x1 - margin, self.x2 + margin, self.y1 - margin,
                           self.y2 + margin, self.z1 - margin, self.z2 + margin)

    def shifted_inside(self, extent: BoundingBox) -> BoundingBox:
        """Move the box, without resizing it, so that it lies inside ``extent``.

        Along an axis where the box is longer than ``extent``, the box is centred on
        ``extent`` instead (it then sticks out on both sides).

        Args:
            extent: BoundingBox. The region to stay in, typically
                :func:`physical_extent` of an image.

        Returns:
            BoundingBox. A box of the same size.
        """
        bounds = []
        for lo, hi, e_lo, e_hi in zip(self.lower, self.upper, extent.lower, extent.upper):
            if hi - lo > e_hi - e_lo:
                shift = (e_lo + e_hi) / 2 - (lo + hi) / 2
            else:
                shift = max(e_lo - lo, 0.0) + min(e_hi - hi, 0.0)
            bounds.append((lo + shift, hi + shift))
        (x1, x2), (y1, y2), (z1, z2) = bounds
        return BoundingBox(x1, x2, y1, y2, z1, z2)

    def describe(self) -> str:
        """The bounds for a message: ``"x=[-72.0, 72.0], y=[...], z=[...] mm"``."""
        return ", ".join(f"{a}=[{lo:.1f}, {hi:.1f}]"
                         for a, lo, hi in zip("xyz", self.lower, self.upper)) + " mm"

    def to_dict(self) -> dict[str, float]:
        """The bounds as ``{"x1": ..., ..., "z2": ...}``, floats in mm."""
        return dict(zip(("x1", "x2", "y1", "y2", "z1", "z2"), map(float, astuple(self))))


@dataclass(frozen=True)
class Grid:
    """A voxel grid in physical LPS space.

    Args:
        origin: tuple of 3 floats. Centre of voxel ``(0, 0, 0)``, ``(x, y, z)`` in mm.
        spacing: tuple of 3 floats. Voxel size ``(x, y, z)`` in mm.
        size: tuple of 3 ints. Number of voxels ``(x, y, z)``.
        direction: tuple of 9 floats. Direction cosines, row-major as SimpleITK gives them.
            Defaults to the identity (axis-aligned, as the network grid is).
    """

    origin: Vector3
    spacing: Vector3
    size: tuple[int, int, int]
    direction: tuple[float, ...] = IDENTITY

    @classmethod
    def from_box(cls, box: BoundingBox, spacing: float, size: int) -> Grid:
        """The axis-aligned cube of ``size`` voxels of ``spacing`` mm centred on the box."""
        origin = tuple(c - (size - 1) / 2 * spacing for c in box.center)
        return cls(origin, (float(spacing),) * 3, (int(size),) * 3)  # type: ignore[arg-type]

    @classmethod
    def covering(cls, lower: Sequence[float], size: Sequence[int], spacing: Sequence[float],
                 signs: Sequence[int] = (1, 1, 1)) -> Grid:
        """The grid whose voxels fill ``[lower, lower + size * spacing]`` (mm), each axis
        running up (+1) or down (-1) as ``signs`` says (diagonal direction cosines)."""
        origin = tuple(float(lo + sp / 2 if sign > 0 else lo + (n - 0.5) * sp)
                       for lo, n, sp, sign in zip(lower, size, spacing, signs))
        direction = (float(signs[0]), 0.0, 0.0, 0.0, float(signs[1]), 0.0, 0.0, 0.0,
                     float(signs[2]))
        return cls(origin, tuple(float(v) for v in spacing),  # type: ignore[arg-type]
                   tuple(int(n) for n in size), direction)  # type: ignore[arg-type]

    @classmethod
    def of(cls, image: sitk.Image) -> Grid:
        """The grid of a SimpleITK image."""
        return cls(tuple(image.GetOrigin()), tuple(image.GetSpacing()),  # type: ignore[arg-type]
                   tuple(image.GetSize()), tuple(float(d) for d in image.GetDirection()))

    @property
    def shape(self) -> tuple[int, int, int]:
        """The NumPy shape ``(z, y, x)`` of an array on this grid."""
        return (self.size[2], self.size[1], self.size[0])

    @property
    def center(self) -> Vector3:
        """Physical centre ``(x, y, z)`` in mm."""
        steps = np.asarray([(n - 1) / 2 * s for s, n in zip(self.spacing, self.size)])
        direction = np.asarray(self.direction, dtype=float).reshape(3, 3)
        return tuple(float(v) for v in np.asarray(self.origin) + direction @ steps)  # type: ignore[return-value]

    def _signs(self) -> tuple[float, float, float]:
        matrix = np.asarray(self.direction, dtype=float).reshape(3, 3)
        if not np.allclose(matrix, np.diag(np.diag(matrix))):
            raise InputError(f"this needs a grid with diagonal direction cosines. Received: "
                             f"direction={self.direction}")
        return tuple(float(v) for v in np.diag(matrix))  # type: ignore[return-value]

    def coordinates(self, axis: int, index: slice | None = None) -> np.ndarray:
        """Physical coordinates (mm) of the voxel centres along ``axis`` (0 = x) of a grid with
        diagonal direction cosines."""
        start, stop, _ = (index or slice(None)).indices(self.size[axis])
        steps = np.arange(start, stop, dtype=np.float64)
        return self.origin[axis] + self._signs()[axis] * self.spacing[axis] * steps

    def window(self, lower: Sequence[float], upper: Sequence[float]
               ) -> tuple[tuple[slice, slice, slice], tuple[np.ndarray, ...]] | None:
        """The voxels whose centres lie in the physical box ``[lower, upper]`` (mm, x-y-z).

        Returns:
            The NumPy ``(z, y, x)`` slices and broadcastable coordinate arrays ``(x, y, z)``
            of those voxels, or None when the box misses the grid.
        """
        signs = self._signs()
        slices = []
        for axis in range(3):
            step = signs[axis] * self.spacing[axis]
            a = (lower[axis] - self.origin[axis]) / step
            b = (upper[axis] - self.origin[axis]) / step
            first = max(0, math.ceil(min(a, b)))
            last = min(self.size[axis] - 1, math.floor(max(a, b)))
            if last < first:
                return None
            slices.append(slice(first, last + 1))
        x = self.coordinates(0, slices[0])[None, None, :]
        y = self.coordinates(1, slices[1])[None, :, None]
        z = self.coordinates(2, slices[2])[:, None, None]
        return (slices[2], slices[1], slices[0]), (x, y, z)

    def image(self, array: np.ndarray) -> sitk.Image:
        """Wrap a ``(z, y, x)`` array on this grid as a SimpleITK image with the grid's geometry.

        Raises:
            InputError: if the array's shape is not :attr:`shape`.
        """
        array = np.asarray(array)
        if array.shape != self.shape:
            raise InputError(
                f"array does not match the grid. Expected shape (z, y, x)={self.shape}. "
                f"Received: shape={array.shape}"
            )
        image = sitk.GetImageFromArray(array)
        image.SetOrigin(self.origin)
        image.SetSpacing(self.spacing)
        image.SetDirection(self.direction)
        return image

    def to_dict(self) -> dict[str, list]:
        """``{"origin": [...], "spacing": [...], "size": [...]}`` (and ``direction`` when not
        the identity), JSON-ready."""
        out = {"origin": list(self.origin), "spacing": list(self.spacing),
               "size": list(self.size)}
        if tuple(self.direction) != IDENTITY:
            out["direction"] = list(self.direction)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Sequence[float]]) -> Grid:
        """Rebuild a grid from :meth:`to_dict`'s output."""
        direction = values.get("direction")
        return cls(
            tuple(float(v) for v in values["origin"]),  # type: ignore[arg-type]
            tuple(float(v) for v in values["spacing"]),  # type: ignore[arg-type]
            tuple(int(v) for v in values["size"]),  # type: ignore[arg-type]
            IDENTITY if direction is None else tuple(float(v) for v in direction),
        )


def physical_extent(image: sitk.Image) -> BoundingBox:
    """The axis-aligned physical region (mm, LPS) that an image's voxels cover.

    The box spans the outer faces of the corner voxels (half a voxel beyond their centres),
    after applying the image's direction cosines, so flipped or rotated images get the
    region they really cover.

    Args:
        image: SimpleITK.Image. A 3D image.

    Returns:
        BoundingBox. The smallest axis-aligned box containing the whole image.
    """
    size = image.GetSize()
    corners = np.array([
        image.TransformContinuousIndexToPhysicalPoint(
            [-0.5 if upper == 0 else n - 0.5 for upper, n in zip(choice, size)])
        for choice in itertools.product((0, 1), repeat=3)
    ])
    return BoundingBox.from_corners(corners.min(axis=0), corners.max(axis=0))


def index_range(image: sitk.Image, box: BoundingBox) -> tuple[np.ndarray, np.ndarray]:
    """The voxel index range of ``image`` that covers a physical box, with a 1-2 voxel rim.

    Args:
        image: SimpleITK.Image. Any geometry (direction cosines respected).
        box: BoundingBox. The region, mm.

    Returns:
        tuple ``(start, stop)`` of int arrays in ``(x, y, z)`` index order, clipped to the
        image; at least one voxel even when the box misses the image.
    """
    lower, upper = box.lower, box.upper
    corners = np.asarray([
        image.TransformPhysicalPointToContinuousIndex(
            [float(lower[i] if bit == 0 else upper[i]) for i, bit in enumerate(bits)])
        for bits in np.ndindex(2, 2, 2)
    ])
    size = np.asarray(image.GetSize())
    start = np.clip(np.floor(corners.min(axis=0)).astype(int) - 1, 0, size)
    stop = np.clip(np.ceil(corners.max(axis=0)).astype(int) + 2, 0, size)
    if np.any(stop <= start):  # box outside this image (e.g. a mask): keep one voxel
        start = np.minimum(start, size - 1)
        stop = start + 1
    return start, stop


def crop_to_box(image: sitk.Image, box: BoundingBox) -> sitk.Image:
    """Crop an image, in index space (no interpolation), to the voxels that cover ``box``.

    The image keeps its own grid; a 1-2 voxel rim is kept for interpolation, the crop is
    clipped to the image (cropping twice is harmless) and the image itself is returned when
    the box covers all of it.

    Args:
        image: SimpleITK.Image. Any geometry.
        box: BoundingBox. The region to keep, mm.

    Returns:
        SimpleITK.Image. A view-free copy of the kept voxels, with their geometry.
    """
    start, stop = index_range(image, box)
    if np.all(start == 0) and np.all(stop == np.asarray(image.GetSize())):
        return image
    return image[int(start[0]):int(stop[0]), int(start[1]):int(stop[1]),
                 int(start[2]):int(stop[2])]


def voxel_centres(image: sitk.Image, index_zyx: tuple[np.ndarray, ...]) -> np.ndarray:
    """Physical points (mm, ``(n, 3)`` x-y-z) of voxels given as NumPy ``(z, y, x)`` indices.

    The vectorised form of ``image.TransformIndexToPhysicalPoint``:
    ``origin + direction @ (spacing * index)``.

    Args:
        image: SimpleITK.Image. The voxels' image.
        index_zyx: tuple of 3 int arrays. NumPy indices, as ``np.nonzero`` returns them.

    Returns:
        numpy.ndarray ``(n, 3)`` float64, ``(x, y, z)`` in mm.
    """
    index_xyz = np.stack(index_zyx[::-1], axis=1).astype(np.float64)
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    scaled = index_xyz * np.asarray(image.GetSpacing(), dtype=np.float64)
    return np.asarray(image.GetOrigin(), dtype=np.float64) + scaled @ direction.T
