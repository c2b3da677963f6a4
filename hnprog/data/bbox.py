"""Bounding boxes in physical space: reading, writing and (with the PET) finding them.

A :class:`BoundingBox` is an axis-aligned box in physical LPS coordinates, in mm, written
``(x1, x2, y1, y2, z1, z2)`` as in HECKTOR's ``bbox.csv``. The network's input grid is the
box sampled at the chosen spacing, so the box, not the image, defines what the model sees.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import astuple, dataclass
from pathlib import Path

from hnprog.errors import InputError
from hnprog.io import atomic_write

__all__ = ["BoundingBox", "read_bboxes", "write_bboxes"]

BBOX_COLUMNS = ("PatientID", "x1", "x2", "y1", "y2", "z1", "z2")


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
    def from_center(
        cls, center: Iterable[float], size: float | Iterable[float] = 144.0
    ) -> BoundingBox:
        """Build a box from its centre ``(x, y, z)`` in mm and its edge length(s) in mm."""
        cx, cy, cz = (float(c) for c in center)
        sx, sy, sz = (float(size),) * 3 if isinstance(size, (int, float)) else map(float, size)
        return cls(cx - sx / 2, cx + sx / 2, cy - sy / 2, cy + sy / 2, cz - sz / 2, cz + sz / 2)

    @property
    def lower(self) -> tuple[float, float, float]:
        """The corner with the smallest coordinates, ``(x1, y1, z1)`` in mm."""
        return (self.x1, self.y1, self.z1)

    @property
    def upper(self) -> tuple[float, float, float]:
        """The corner with the largest coordinates, ``(x2, y2, z2)`` in mm."""
        return (self.x2, self.y2, self.z2)

    @property
    def size(self) -> tuple[float, float, float]:
        """Edge lengths ``(x, y, z)`` in mm."""
        return (self.x2 - self.x1, self.y2 - self.y1, self.z2 - self.z1)

    @property
    def center(self) -> tuple[float, float, float]:
        """Centre ``(x, y, z)`` in mm."""
        return ((self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2, (self.z1 + self.z2) / 2)

    def contains(self, point: Iterable[float]) -> bool:
        """Whether the physical point ``(x, y, z)`` (mm) lies inside the box (bounds included)."""
        x, y, z = point
        return self.x1 <= x <= self.x2 and self.y1 <= y <= self.y2 and self.z1 <= z <= self.z2

    def to_dict(self) -> dict[str, float]:
        """The bounds as ``{"x1": ..., ..., "z2": ...}``, floats in mm."""
        return dict(zip(BBOX_COLUMNS[1:], map(float, astuple(self))))


def read_bboxes(path: str | os.PathLike) -> dict[str, BoundingBox]:
    """Read a HECKTOR-format box CSV: ``PatientID,x1,x2,y1,y2,z1,z2`` in mm.

    Args:
        path: str or PathLike. The CSV file.

    Returns:
        dict mapping patient id to :class:`BoundingBox`.

    Raises:
        InputError: naming the file and row, on missing columns, non-numeric or inverted
            bounds, or a patient listed twice.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"bounding-box file {path}: file not found")
    boxes: dict[str, BoundingBox] = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in BBOX_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(
                f"bounding-box file {path}: missing columns {missing}; expected {list(BBOX_COLUMNS)}"
            )
        for line_no, row in enumerate(reader, start=2):
            pid = (row["PatientID"] or "").strip()
            where = f"bounding-box file {path}, line {line_no} (patient {pid or '?'})"
            if not pid:
                raise InputError(f"{where}: empty PatientID")
            if pid in boxes:
                raise InputError(f"{where}: patient listed twice")
            try:
                values = [float(row[c]) for c in BBOX_COLUMNS[1:]]
            except (TypeError, ValueError):
                raise InputError(f"{where}: bounds must be numbers, got {row}") from None
            try:
                boxes[pid] = BoundingBox(*values)
            except InputError as exc:
                raise InputError(f"{where}: {exc}") from None
    return boxes


def write_bboxes(boxes: Mapping[str, BoundingBox], path: str | os.PathLike) -> None:
    """Write boxes as a HECKTOR-format CSV (``PatientID,x1,x2,y1,y2,z1,z2``, mm), atomically."""
    with atomic_write(path, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(BBOX_COLUMNS)
        for pid, box in boxes.items():
            writer.writerow([pid, *(f"{v:.3f}" for v in astuple(box))])
