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

__all__ = ["auto_bbox", "brain_problems", "read_bboxes", "write_bboxes"]

BBOX_COLUMNS = ("PatientID", "x1", "x2", "y1", "y2", "z1", "z2")

# What the hot component found by auto_bbox must look like to be taken for the brain. An adult
# brain is about 1.2 L, 140 mm wide (x), 170 mm deep (y) and 100-130 mm high; the bounds are
# loose enough for a scan that starts mid-brain and for the smoothing, and refuse the hot
# tumour of a limb or trunk scan that has no head in it.
BRAIN_VOLUME_ML = (250.0, 3000.0)
BRAIN_WIDTH_MM = (110.0, 230.0)  # left-right (x) extent
BRAIN_DEPTH_MM = (120.0, 250.0)  # anterior-posterior (y) extent
BRAIN_HEIGHT_MM = (30.0, 220.0)  # superior-inferior (z) extent
BRAIN_TOP_MARGIN_MM = 80.0  # the brain's top lies at most this far below the scan's top
BRAIN_MIN_FILL = 0.3  # voxels / voxels of its bounding box (an ellipsoid fills 0.52)


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
            is found, or if the component found does not look like a brain
            (:func:`brain_problems`: the hot tumour of a limb or trunk scan).

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
    problems = brain_problems(brain, np.asarray(pet.GetSpacing()), extent.z2)
    if problems:
        message = (
            f"the hottest region of the top third of the PET (SUV > {threshold} after "
            f"smoothing) does not look like a brain: {'; '.join(problems)}. Is this a "
            "head-and-neck PET in SUV? The automatic box needs the brain at the top of the "
            "scan; give the box yourself: in the cohort's bboxes.csv (hnprog preprocess/"
            "predict: --bboxes FILE), or with --bbox x1,x2,y1,y2,z1,z2 (mm) for hnprog "
            "predict --ct/--pet"
        )
        raise PatientError(patient_id, message) if patient_id else InputError(message)
    centre_x = (low[0] + high[0]) / 2
    centre_y = (low[1] + high[1]) / 2 - anterior_shift
    z1 = low[2] - below_brain
    box = BoundingBox(
        centre_x - size / 2, centre_x + size / 2,
        centre_y - size / 2, centre_y + size / 2,
        z1, z1 + size,
    )  # fmt: skip
    return box.shifted_inside(extent)


def brain_problems(points: np.ndarray, spacing: np.ndarray, scan_top: float) -> list[str]:
    """Why a hot PET component is not a brain, if it is not: volume, size, position, shape.

    The bounds are module constants: ``BRAIN_VOLUME_ML`` (250 to 3000 mL),
    ``BRAIN_WIDTH_MM`` (110 to 230 mm left-right), ``BRAIN_DEPTH_MM`` (120 to 250 mm
    anterior-posterior), ``BRAIN_HEIGHT_MM``
    (30 to 220 mm), ``BRAIN_TOP_MARGIN_MM`` (its top at most 80 mm below the scan's top) and
    ``BRAIN_MIN_FILL`` (at least 0.3 of its bounding box; an ellipsoid fills 0.52).

    Args:
        points: numpy array of shape ``(n, 3)``. The component's voxel centres, physical
            LPS (x, y, z), mm.
        spacing: numpy array of shape ``(3,)``. Voxel spacing of the image, mm.
        scan_top: float. The scan's highest physical z, mm.

    Returns:
        list of str. Each problem with the measured value and the expected range; empty
        when the component looks like a brain.

    Example:
        >>> import numpy as np
        >>> grid = np.stack(np.meshgrid(*[np.arange(-60.0, 61.0, 4.0)] * 3), -1).reshape(-1, 3)
        >>> ball = grid[np.linalg.norm(grid, axis=1) <= 60.0]   # a 120 mm ball, 0.9 L
        >>> brain_problems(ball, np.array([4.0, 4.0, 4.0]), scan_top=80.0)
        []
        >>> brain_problems(ball / 3, np.array([4.0, 4.0, 4.0]) / 3, scan_top=80.0)[0]
        'volume 34 mL (a brain: 250 to 3000 mL)'
    """
    problems = []
    low, high = points.min(axis=0), points.max(axis=0)
    size = high - low + spacing  # to the voxels' outer faces
    volume_ml = len(points) * float(np.prod(spacing)) / 1000.0
    fill = volume_ml * 1000.0 / float(np.prod(size))
    if not BRAIN_VOLUME_ML[0] <= volume_ml <= BRAIN_VOLUME_ML[1]:
        problems.append(f"volume {volume_ml:.0f} mL (a brain: {BRAIN_VOLUME_ML[0]:.0f} to "
                        f"{BRAIN_VOLUME_ML[1]:.0f} mL)")
    for axis, name, bounds in ((0, "left-right", BRAIN_WIDTH_MM),
                               (1, "anterior-posterior", BRAIN_DEPTH_MM)):
        if not bounds[0] <= size[axis] <= bounds[1]:
            problems.append(f"{size[axis]:.0f} mm {name} (a brain: {bounds[0]:.0f} to "
                            f"{bounds[1]:.0f} mm)")
    if not BRAIN_HEIGHT_MM[0] <= size[2] <= BRAIN_HEIGHT_MM[1]:
        problems.append(f"{size[2]:.0f} mm high (a brain: {BRAIN_HEIGHT_MM[0]:.0f} to "
                        f"{BRAIN_HEIGHT_MM[1]:.0f} mm)")
    below_top = scan_top - (high[2] + spacing[2] / 2)
    if below_top > BRAIN_TOP_MARGIN_MM:
        problems.append(f"its top lies {below_top:.0f} mm below the top of the scan (a brain: "
                        f"at most {BRAIN_TOP_MARGIN_MM:.0f} mm)")
    if fill < BRAIN_MIN_FILL:
        problems.append(f"it fills {fill:.2f} of its bounding box (a brain: at least "
                        f"{BRAIN_MIN_FILL})")
    return problems
