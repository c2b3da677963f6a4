"""RTSTRUCT: contours to a mask on the referenced series' grid, and a mask to contours.

Reading: the ROI is chosen by name or glob (default: the first ROI named GTVt, GTVp or GTV,
case and separators ignored, else one whose name starts with GTVt); each ``CLOSED_PLANAR``
contour is put on its slice of the grid (it must lie on one, within a quarter of the slice
spacing) and rasterised at the voxel centres with :class:`matplotlib.path.Path` (even-odd
rule). Contours of one slice are combined by XOR,
so a contour inside another is a hole and several islands per slice are kept.

Writing (:func:`write_rtstruct`): a mask's outline is traced along the voxel edges, so that
reading the file back gives exactly the mask again, and stored as an RT Structure Set
referencing the image series (pydicom; highdicom writes DICOM-SEG but not RTSTRUCT).
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hnprog.errors import InputError

__all__ = ["choose_roi", "read_rtstruct_mask", "referenced_series_uid", "roi_names",
           "write_rtstruct"]

DEFAULT_ROIS = ("gtvt", "gtvp", "gtv")
RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"


def roi_names(ds) -> list[str]:
    """The ROI names of an RTSTRUCT dataset, in file order."""
    return [str(r.ROIName) for r in ds.get("StructureSetROISequence", [])]


def _normalised(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def choose_roi(names: Sequence[str], pattern: str | None = None, *, where: str = "") -> str:
    """The ROI to read.

    Args:
        names: sequence of str. The ROI names.
        pattern: str, optional. An exact name or a glob (``"GTV*"``), case-insensitive.
            Defaults to None: the first ROI named GTVt, then GTVp, then GTV (case, spaces and
            punctuation ignored: ``GTV_T`` counts as GTVt), else the first whose name starts
            with GTVt (``GTVt_hnprog``).
        where: str. The file, named in the error.

    Returns:
        str. The chosen name.

    Raises:
        InputError: if no ROI matches; the ROIs are listed.
    """
    if pattern is None:
        for wanted in DEFAULT_ROIS:
            for name in names:
                if _normalised(name) == wanted:
                    return name
        for name in names:  # GTVt_hnprog, GTVt (predicted), ...
            if _normalised(name).startswith("gtvt"):
                return name
        what = "no ROI named GTVt, GTVp or GTV"
    else:
        for name in names:
            if name.lower() == pattern.lower() or fnmatch.fnmatch(name.lower(), pattern.lower()):
                return name
        what = f"no ROI matches --roi {pattern!r}"
    raise InputError(f"RTSTRUCT {where}: {what}; its ROIs are: "
                     f"{', '.join(repr(n) for n in names) or 'none'} (choose one with --roi)")


def referenced_series_uid(ds) -> str | None:
    """The SeriesInstanceUID the structure set's contours refer to, or None."""
    for frame in ds.get("ReferencedFrameOfReferenceSequence", []):
        for study in frame.get("RTReferencedStudySequence", []):
            for series in study.get("RTReferencedSeriesSequence", []):
                return str(series.SeriesInstanceUID)
    return None


def _index_frame(image: sitk.Image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    direction = np.array(image.GetDirection(), float).reshape(3, 3)
    return np.array(image.GetOrigin(), float), direction, np.array(image.GetSpacing(), float)


def read_rtstruct_mask(ds, image: sitk.Image, *, roi: str | None = None,
                       path: str | os.PathLike = "") -> tuple[sitk.Image, str]:
    """Rasterise one ROI of an RTSTRUCT onto the grid of ``image``.

    Args:
        ds: pydicom.Dataset. The RTSTRUCT.
        image: SimpleITK.Image. The series it references (its grid is the mask's grid).
        roi: str, optional. Name or glob; see :func:`choose_roi`.
        path: str or PathLike. The RTSTRUCT file, named in errors.

    Returns:
        tuple ``(mask, roi_name)``: a uint8 0/1 image on ``image``'s grid, and the ROI read.

    Raises:
        InputError: if no ROI matches, the ROI has no contours, or a contour lies off the
            grid's slices.
    """
    from matplotlib.path import Path as Polygon

    name = choose_roi(roi_names(ds), roi, where=str(path))
    number = next(int(r.ROINumber) for r in ds.StructureSetROISequence if str(r.ROIName) == name)
    contours = []
    for item in ds.get("ROIContourSequence", []):
        if int(item.ReferencedROINumber) == number:
            contours = list(item.get("ContourSequence", []))
    if not contours:
        raise InputError(f"RTSTRUCT {path}: ROI {name!r} has no contours")
    origin, direction, spacing = _index_frame(image)
    size = image.GetSize()
    mask = np.zeros(size[::-1], bool)
    to_index = direction.T / spacing[:, None]  # (x, y, z) index per mm offset
    for contour in contours:
        if str(contour.get("ContourGeometricType", "CLOSED_PLANAR")) not in ("CLOSED_PLANAR",):
            continue
        points = np.array(contour.ContourData, float).reshape(-1, 3)
        index = (points - origin) @ to_index.T
        k = float(np.round(index[:, 2].mean()))
        if np.abs(index[:, 2] - k).max() > 0.25 or not 0 <= k < size[2]:
            raise InputError(f"RTSTRUCT {path}: a contour of ROI {name!r} at z index "
                             f"{index[:, 2].mean():.2f} does not lie on a slice of the "
                             f"referenced series ({size[2]} slices)")
        polygon = Polygon(index[:, :2], closed=False)
        lo = np.maximum(np.floor(index[:, :2].min(axis=0)), 0).astype(int)
        hi = np.minimum(np.ceil(index[:, :2].max(axis=0)), np.array(size[:2]) - 1).astype(int)
        if (hi < lo).any():
            continue
        xs, ys = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1))
        inside = polygon.contains_points(np.stack([xs.ravel(), ys.ravel()], axis=1))
        mask[int(k), ys.ravel()[inside], xs.ravel()[inside]] ^= True
    result = sitk.GetImageFromArray(mask.astype(np.uint8))
    result.CopyInformation(image)
    return result, name


def _outlines(mask2d: np.ndarray) -> list[np.ndarray]:
    """Closed outlines along the pixel edges of a ``(y, x)`` mask, as ``(n, 2)`` x-y corner
    coordinates in index units (pixel centres at integers, corners at half-integers).

    Every boundary edge belongs to exactly one outline, so the even-odd rule over all outlines
    gives back the mask whatever way loops touching at a corner are split.
    """
    padded = np.pad(mask2d.astype(bool), 1)
    inner = padded[1:-1, 1:-1]
    edges: dict[tuple[int, int], list[tuple[int, int]]] = {}
    # corner (c, r) is the point (c - 0.5, r - 0.5); edges run counter-clockwise in (x, y)
    for (dr, dc), (a, b) in (((-1, 0), ((0, 0), (1, 0))), ((0, 1), ((1, 0), (1, 1))),
                             ((1, 0), ((1, 1), (0, 1))), ((0, -1), ((0, 1), (0, 0)))):
        neighbour = padded[1 + dr:padded.shape[0] - 1 + dr, 1 + dc:padded.shape[1] - 1 + dc]
        for r, c in zip(*np.nonzero(inner & ~neighbour)):
            edges.setdefault((c + a[0], r + a[1]), []).append((c + b[0], r + b[1]))
    loops = []
    while edges:
        start = next(iter(edges))
        loop, vertex = [start], start
        while True:
            targets = edges[vertex]
            nxt = targets.pop()
            if not targets:
                del edges[vertex]
            if nxt == start:
                break
            loop.append(nxt)
            vertex = nxt
        points = np.array(loop, float)
        # drop the vertices in the middle of straight runs
        before, after = np.roll(points, 1, axis=0), np.roll(points, -1, axis=0)
        incoming, outgoing = points - before, after - points
        turn = incoming[:, 0] * outgoing[:, 1] - incoming[:, 1] * outgoing[:, 0] != 0
        loops.append(points[turn] - 0.5)
    return loops


def write_rtstruct(mask: sitk.Image, datasets: Sequence, path: str | os.PathLike, *,
                   roi_name: str = "GTVt", label: str = "hnprog",
                   uid_entropy: Sequence[str] | None = None) -> Path:
    """Write a 0/1 mask as an RTSTRUCT referencing an image series, atomically.

    Args:
        mask: SimpleITK.Image. 0/1 on the grid of the series (same size, spacing, origin,
            direction).
        datasets: sequence of pydicom.Dataset. The series' slices in volume order (z index 0
            first), as :func:`~hnprog.data.dicom.series.read_series` returns them.
        path: str or PathLike. The file to write.
        roi_name: str. The ROI's name. Defaults to ``"GTVt"``.
        label: str. StructureSetLabel. Defaults to ``"hnprog"``.
        uid_entropy: sequence of str, optional. Makes the new UIDs deterministic.

    Returns:
        pathlib.Path. ``path``.

    Raises:
        InputError: if the mask and the series differ in size.
    """
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence as DicomSequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from hnprog.io import atomic_path

    array = sitk.GetArrayFromImage(mask) > 0
    if array.shape[0] != len(datasets) or array.shape[1:] != (int(datasets[0].Rows),
                                                              int(datasets[0].Columns)):
        raise InputError(f"write_rtstruct: the mask is {array.shape[::-1]} voxels, the series "
                         f"{int(datasets[0].Columns), int(datasets[0].Rows), len(datasets)}")
    origin, direction, spacing = _index_frame(mask)

    def uid(*parts: str) -> str:
        return generate_uid(entropy_srcs=[*uid_entropy, *parts] if uid_entropy else None)

    first = datasets[0]
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = RTSTRUCT_SOP_CLASS
    ds.SOPInstanceUID = uid("rtstruct", roi_name)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = RTSTRUCT_SOP_CLASS
    ds.Modality = "RTSTRUCT"
    for key in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
                "StudyDate", "StudyTime", "StudyID", "AccessionNumber",
                "ReferringPhysicianName", "FrameOfReferenceUID"):
        setattr(ds, key, first.get(key, ""))
    ds.SeriesInstanceUID = uid("rtstruct series", roi_name)
    ds.SeriesNumber = 99
    ds.SeriesDescription = f"{label} {roi_name}"
    ds.Manufacturer = "hnprog"
    ds.StructureSetLabel = label
    ds.StructureSetDate = first.get("StudyDate", "")
    ds.StructureSetTime = first.get("StudyTime", "")

    images = []
    for slice_ds in datasets:
        item = Dataset()
        item.ReferencedSOPClassUID = slice_ds.SOPClassUID
        item.ReferencedSOPInstanceUID = slice_ds.SOPInstanceUID
        images.append(item)
    series_ref = Dataset()
    series_ref.SeriesInstanceUID = first.SeriesInstanceUID
    series_ref.ContourImageSequence = DicomSequence(images)
    study_ref = Dataset()
    study_ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management
    study_ref.ReferencedSOPInstanceUID = first.StudyInstanceUID
    study_ref.RTReferencedSeriesSequence = DicomSequence([series_ref])
    frame_ref = Dataset()
    frame_ref.FrameOfReferenceUID = first.get("FrameOfReferenceUID", "")
    frame_ref.RTReferencedStudySequence = DicomSequence([study_ref])
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([frame_ref])

    roi = Dataset()
    roi.ROINumber = 1
    roi.ReferencedFrameOfReferenceUID = ds.FrameOfReferenceUID
    roi.ROIName = roi_name
    roi.ROIGenerationAlgorithm = "AUTOMATIC" if label == "hnprog" else "MANUAL"
    ds.StructureSetROISequence = DicomSequence([roi])

    contours = []
    for k in np.flatnonzero(array.any(axis=(1, 2))):
        for outline in _outlines(array[k]):
            index = np.column_stack([outline, np.full(len(outline), float(k))])
            points = origin + (index * spacing) @ direction.T
            contour = Dataset()
            image_ref = Dataset()
            image_ref.ReferencedSOPClassUID = datasets[k].SOPClassUID
            image_ref.ReferencedSOPInstanceUID = datasets[k].SOPInstanceUID
            contour.ContourImageSequence = DicomSequence([image_ref])
            contour.ContourGeometricType = "CLOSED_PLANAR"
            contour.NumberOfContourPoints = len(points)
            contour.ContourData = [float(f"{v:.4f}") for v in points.ravel()]
            contours.append(contour)
    roi_contour = Dataset()
    roi_contour.ReferencedROINumber = 1
    roi_contour.ROIDisplayColor = [255, 0, 0]
    if contours:  # an empty prediction: the ROI, without contours (ContourSequence is type 3)
        roi_contour.ContourSequence = DicomSequence(contours)
    ds.ROIContourSequence = DicomSequence([roi_contour])
    observation = Dataset()
    observation.ObservationNumber = 1
    observation.ReferencedROINumber = 1
    observation.RTROIInterpretedType = "GTV"
    observation.ROIInterpreter = ""
    ds.RTROIObservationsSequence = DicomSequence([observation])

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        pydicom.dcmwrite(tmp, ds, enforce_file_format=True)
    return path
