"""Bounding boxes of a cohort: the HECKTOR box CSV, and the automatic box found with the PET.

A box (:class:`hnprog.geometry.BoundingBox`) is an axis-aligned region in physical LPS
coordinates, in mm, written ``(x1, x2, y1, y2, z1, z2)`` as in HECKTOR's ``bbox.csv``. The
network's input grid is the box sampled at the chosen spacing, so the box, not the image,
defines what the model sees.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping
from dataclasses import astuple
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hnprog.errors import InputError, PatientError
from hnprog.geometry import BoundingBox, physical_extent, voxel_centres
from hnprog.io import atomic_write

__all__ = ["auto_bbox", "read_bboxes", "write_bboxes"]

BBOX_COLUMNS = ("PatientID", "x1", "x2", "y1", "y2", "z1", "z2")


def read_bboxes(path: str | os.PathLike) -> dict[str, BoundingBox]:
    """Read a HECKTOR-format box CSV: ``PatientID,x1,x2,y1,y2,z1,z2`` in mm.

    Args:
        path: str or PathLike. The CSV file.

    Returns:
        dict mapping patient id to :class:`BoundingBox`.

    Raises:
        InputError: naming the file and row, on text that is not UTF-8, missing columns,
            non-numeric or inverted bounds, or a patient listed twice. A UTF-8 byte-order
            mark and spaces after the commas are accepted.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"bounding-box file {path}: file not found")
    boxes: dict[str, BoundingBox] = {}
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")  # a spreadsheet's byte-order mark is not part of a name
    except UnicodeDecodeError as exc:
        line_no = raw[: exc.start].count(b"\n") + 1
        raise InputError(
            f"bounding-box file {path}, line {line_no}: not UTF-8 text (byte "
            f"0x{raw[exc.start]:02x}); save the file as UTF-8 CSV"
        ) from None
    reader = csv.DictReader(io.StringIO(text, newline=""), skipinitialspace=True)
    if reader.fieldnames:
        reader.fieldnames = [name.strip() for name in reader.fieldnames]
    missing = [c for c in BBOX_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise InputError(
            f"bounding-box file {path}: missing columns {missing}; expected "
            f"{list(BBOX_COLUMNS)} separated by commas. Received: columns={reader.fieldnames}"
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


def auto_bbox(
    pet: sitk.Image,
    size: float = 144.0,
    *,
    threshold: float = 3.0,
    sigma_voxels: float = 3.0,
    below_brain: float = 114.0,
    anterior_shift: float = 30.0,
    patient_id: str | None = None,
) -> BoundingBox:
    """Find the oropharynx box from the PET alone (the HECKTOR baseline algorithm).

    The PET is smoothed with a Gaussian of ``sigma_voxels`` voxels and thresholded at
    ``threshold`` SUV. Of the connected components, the one with the most voxels in the top
    third of the scan (highest physical z) is the brain. The cube of edge ``size`` then spans
    from ``below_brain`` mm below the brain's lowest voxel centre upwards (30 mm above it for
    the default 144 mm), is centred on the brain's extent in x, and centred on it in y then
    moved ``anterior_shift`` mm anterior (towards -y in LPS). Finally it is moved, not
    resized, to lie inside the PET (:meth:`BoundingBox.shifted_inside`). All coordinates are
    physical, so origin, spacing and direction cosines are respected.

    On synthetic cohorts (:func:`hnprog.data.synthetic.generate_cohort`) the box contains the
    whole GTVt for at least 95% of patients; the original algorithm did for 96.5% of HECKTOR
    2020 cases.

    Args:
        pet: SimpleITK.Image. The PET in SUV, 3D, any orientation.
        size: float. Edge of the cube, mm. Defaults to 144.0.
        threshold: float. SUV threshold on the smoothed PET. Defaults to 3.0.
        sigma_voxels: float. Gaussian smoothing sigma, in voxels of each axis. Defaults to
            3.0.
        below_brain: float. How far the cube's lower face lies below the brain's lowest
            point, mm. Defaults to 114.0.
        anterior_shift: float. Anterior shift of the cube from the brain's y centre, mm.
            Defaults to 30.0.
        patient_id: str, optional. Named in the error message. Defaults to None.

    Returns:
        BoundingBox. A cube of edge ``size`` mm in physical LPS coordinates.

    Raises:
        PatientError: (InputError when no ``patient_id`` is given) if no voxel of the
            smoothed PET above ``threshold`` lies in the top third of the scan, so no brain
            is found.

    Example:
        >>> import SimpleITK as sitk
        >>> from hnprog.data.bbox import auto_bbox
        >>> box = auto_bbox(sitk.ReadImage("SYNA001_pt.nii.gz"))  # doctest: +SKIP
    """
    if not size > 0:
        raise InputError(f"auto_bbox: size must be positive. Received: size={size!r}")
    pet = sitk.Cast(pet, sitk.sitkFloat32)
    sigma_mm = [sigma_voxels * spacing for spacing in pet.GetSpacing()]
    smoothed = sitk.SmoothingRecursiveGaussian(pet, sigma_mm)
    hot = sitk.GetArrayViewFromImage(smoothed) > threshold
    components = sitk.GetArrayFromImage(
        sitk.ConnectedComponent(sitk.GetImageFromArray(hot.astype(np.uint8)))
    )
    index = np.nonzero(components)
    labels = components[index]
    points = voxel_centres(pet, index)
    extent = physical_extent(pet)
    top_third = points[:, 2] > extent.z1 + 2.0 * (extent.z2 - extent.z1) / 3.0
    if not top_third.any():
        message = (
            f"no PET uptake above SUV {threshold} (after smoothing) in the top third of the "
            f"scan (z > {extent.z1 + 2.0 * (extent.z2 - extent.z1) / 3.0:.1f} mm), so the "
            "brain cannot be found; is the image a PET in SUV that includes the head? "
            "Give the box yourself: in the cohort's bboxes.csv (hnprog preprocess/predict: "
            "--bboxes FILE), or with "
            "--bbox x1,x2,y1,y2,z1,z2 (mm) for hnprog predict --ct/--pet"
        )
        raise PatientError(patient_id, message) if patient_id else InputError(message)
    brain_label = np.bincount(labels[top_third]).argmax()
    brain = points[labels == brain_label]
    low, high = brain.min(axis=0), brain.max(axis=0)
    centre_x = (low[0] + high[0]) / 2
    centre_y = (low[1] + high[1]) / 2 - anterior_shift
    z1 = low[2] - below_brain
    box = BoundingBox(
        centre_x - size / 2, centre_x + size / 2,
        centre_y - size / 2, centre_y + size / 2,
        z1, z1 + size,
    )  # fmt: skip
    return box.shifted_inside(extent)
