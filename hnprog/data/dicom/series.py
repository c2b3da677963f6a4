"""DICOM series: scan a folder, group the files by series, choose one, read it as a volume.

Reading uses `pydicom <https://pydicom.github.io>`_ (headers and uncompressed or
pydicom-decodable pixel data). Geometry comes from each slice's ``ImagePositionPatient`` and
the series' ``ImageOrientationPatient``: the slices are sorted along the normal (row x column
direction), their spacing is the distance between consecutive positions, and a series whose
spacing is uneven (a missing slice, a mixed series) is refused with the gap named, as are
slices shifted in-plane (a gantry tilt) and multi-frame (enhanced) files. DICOM and
SimpleITK share the LPS patient frame, so the volume's origin and direction are the DICOM ones.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hnprog.errors import InputError

__all__ = ["Series", "choose_series", "read_series", "scan_folder"]

logger = logging.getLogger(__name__)

# Relative tolerance on the slice spacing before a series counts as unevenly spaced.
SPACING_TOLERANCE = 0.01


@dataclass
class Series:
    """One DICOM series found below a folder.

    Args:
        uid: str. The SeriesInstanceUID.
        modality: str. The Modality tag (``"CT"``, ``"PT"``, ``"RTSTRUCT"``, ...).
        files: list of Path. The series' files, in the order found.
        description: str. The SeriesDescription, or ``""``.
    """

    uid: str
    modality: str
    files: list[Path] = field(default_factory=list)
    description: str = ""

    def describe(self) -> str:
        """One line naming the series: modality, size, description and UID."""
        text = f"{self.modality} series {self.uid} ({len(self.files)} files"
        return text + (f", '{self.description}')" if self.description else ")")


def _fail(message: str, patient_id: str | None) -> InputError:
    from hnprog.errors import PatientError

    return PatientError(patient_id, message) if patient_id is not None else InputError(message)


def scan_folder(folder: str | os.PathLike) -> list[Series]:
    """Group the DICOM files anywhere below ``folder`` by SeriesInstanceUID.

    Files that are not DICOM (no DICM preamble and not readable as DICOM) are skipped.

    Args:
        folder: str or PathLike. The folder to scan, recursively.

    Returns:
        list of Series, sorted by modality then UID.

    Raises:
        InputError: if ``folder`` is not a folder.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"DICOM folder {folder}: not a folder")
    found: dict[str, Series] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True,
                                 specific_tags=["SeriesInstanceUID", "Modality",
                                                "SeriesDescription"])
        except (InvalidDicomError, OSError, EOFError, ValueError, AttributeError):
            continue
        uid = str(ds.get("SeriesInstanceUID", "") or "")
        if not uid:
            continue
        series = found.setdefault(uid, Series(uid, str(ds.get("Modality", "") or ""),
                                              description=str(ds.get("SeriesDescription", "")
                                                              or "")))
        series.files.append(path)
    return sorted(found.values(), key=lambda s: (s.modality, s.uid))


def choose_series(series: Sequence[Series], modality: str, *, folder: str | os.PathLike = "",
                  patient_id: str | None = None) -> Series:
    """The series of one modality; among several, the one with the most files (logged).

    Args:
        series: sequence of Series, from :func:`scan_folder`.
        modality: str. ``"CT"`` or ``"PT"``.
        folder: str or PathLike. The scanned folder, named in messages.
        patient_id: str, optional. The patient, for a :class:`~hnprog.errors.PatientError`.

    Returns:
        Series.

    Raises:
        PatientError: (InputError without ``patient_id``) if no series has that modality.
    """
    candidates = [s for s in series if s.modality == modality]
    if not candidates:
        present = sorted({s.modality for s in series}) or ["no DICOM files"]
        raise _fail(f"DICOM folder {folder}: no {modality} series found (found: "
                    f"{', '.join(present)})", patient_id)
    best = max(candidates, key=lambda s: (len(s.files), s.uid))
    if len(candidates) > 1:
        others = "; ".join(s.describe() for s in candidates if s is not best)
        logger.info("%s: %d %s series, using the one with the most slices, %s (not: %s)",
                    folder, len(candidates), modality, best.describe(), others)
    return best


def _orientation(ds, path: Path) -> np.ndarray:
    values = ds.get("ImageOrientationPatient")
    if values is None or len(values) != 6:
        raise InputError(f"DICOM file {path}: no ImageOrientationPatient (0020,0037)")
    row, col = np.array(values[:3], float), np.array(values[3:], float)
    return np.stack([row, col, np.cross(row, col)])


def read_series(series: Series, *, patient_id: str | None = None
                ) -> tuple[sitk.Image, list]:
    """Read a CT or PET series as a float32 volume with the rescale tags applied.

    Each slice's stored values are multiplied by its own ``RescaleSlope`` and offset by its
    ``RescaleIntercept`` (PET slices often have different slopes), so CT comes out in HU and
    PET in the series' ``Units`` (e.g. Bq/mL for ``BQML``).

    Args:
        series: Series. A single-frame image series.
        patient_id: str, optional. The patient, for a :class:`~hnprog.errors.PatientError`.

    Returns:
        tuple ``(image, datasets)``: the SimpleITK image (float32, spacing in mm, LPS origin
        and direction) and the slices' pydicom datasets in volume order (z index 0 first).

    Raises:
        PatientError: (InputError without ``patient_id``) if a slice lacks its geometry tags,
            slices differ in orientation or size, two slices share a position, the spacing
            between slices is uneven (the gap is named), the slices are shifted in-plane (a
            gantry tilt), or a file is multi-frame.
    """
    import pydicom

    datasets = []
    for path in series.files:
        try:
            ds = pydicom.dcmread(path)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is one clear line
            raise _fail(f"DICOM file {path}: cannot be read: {exc}", patient_id) from None
        ds.filename = str(path)
        datasets.append(ds)
    try:
        frame = _orientation(datasets[0], Path(datasets[0].filename))
        positions = []
        for ds in datasets:
            if not np.allclose(_orientation(ds, Path(ds.filename)), frame, atol=1e-4):
                raise InputError(f"DICOM file {ds.filename}: its ImageOrientationPatient "
                                 f"differs from the rest of {series.describe()}")
            if "ImagePositionPatient" not in ds:
                raise InputError(f"DICOM file {ds.filename}: no ImagePositionPatient "
                                 "(0020,0032)")
            positions.append(np.array(ds.ImagePositionPatient, float))
    except InputError as exc:
        raise _fail(str(exc), patient_id) from None
    multi = next((ds for ds in datasets if int(ds.get("NumberOfFrames", 1) or 1) > 1), None)
    if multi is not None:
        raise _fail(f"DICOM file {multi.filename}: a multi-frame (enhanced) image of "
                    f"{multi.NumberOfFrames} frames; export the series as single-frame slices",
                    patient_id)
    along = np.array([p @ frame[2] for p in positions])
    order = np.argsort(along, kind="stable")
    datasets = [datasets[i] for i in order]
    along = along[order]
    where = series.describe()
    if len(datasets) > 1:
        gaps = np.diff(along)
        if (gaps < 1e-3).any():
            i = int(np.argmax(gaps < 1e-3))
            raise _fail(f"{where}: two slices at the same position {along[i]:.2f} mm "
                        f"({datasets[i].filename}, {datasets[i + 1].filename})", patient_id)
        step = float(np.median(gaps))
        uneven = np.abs(gaps - step) > SPACING_TOLERANCE * step
        if uneven.any():
            i = int(np.argmax(uneven))
            raise _fail(f"{where}: uneven slice spacing, a gap of {gaps[i]:.2f} mm between "
                        f"{along[i]:.2f} and {along[i + 1]:.2f} mm along the normal (elsewhere "
                        f"{step:.2f} mm): a slice is missing or two series are mixed",
                        patient_id)
        ordered = np.array([positions[i] for i in order])
        in_plane = (ordered - ordered[0]) @ frame[:2].T  # offsets along the row and column
        if np.abs(in_plane).max() > 0.01 * step + 1e-3:
            raise _fail(f"{where}: the slices are shifted in-plane by up to "
                        f"{np.abs(in_plane).max():.2f} mm along the series (a gantry tilt?); "
                        "resample it to an orthogonal grid first", patient_id)
    else:
        step = float(datasets[0].get("SliceThickness") or 1.0)
    rows, cols = int(datasets[0].Rows), int(datasets[0].Columns)
    volume = np.empty((len(datasets), rows, cols), np.float32)
    for k, ds in enumerate(datasets):
        if (int(ds.Rows), int(ds.Columns)) != (rows, cols):
            raise _fail(f"DICOM file {ds.filename}: {ds.Rows}x{ds.Columns} pixels, the rest of "
                        f"{where} has {rows}x{cols}", patient_id)
        try:
            pixels = ds.pixel_array
        except Exception as exc:  # noqa: BLE001 - codec missing, corrupt pixel data
            raise _fail(f"DICOM file {ds.filename}: pixel data cannot be decoded: {exc}",
                        patient_id) from None
        slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
        intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
        volume[k] = pixels.astype(np.float64) * slope + intercept
    pixel_spacing = datasets[0].get("PixelSpacing")
    if pixel_spacing is None:
        raise _fail(f"DICOM file {datasets[0].filename}: no PixelSpacing (0028,0030)",
                    patient_id)
    image = sitk.GetImageFromArray(volume)
    # PixelSpacing is (between rows, between columns) = (y, x).
    image.SetSpacing((float(pixel_spacing[1]), float(pixel_spacing[0]), step))
    image.SetOrigin(tuple(float(v) for v in datasets[0].ImagePositionPatient))
    image.SetDirection(tuple(frame.T.ravel()))
    return image, datasets
