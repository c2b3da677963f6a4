"""Tiny PET/CT cases with known geometry, and the tiny synthetic cohort, shared by the tests.

:func:`tiny_synthetic_cohort` writes the three-patient synthetic cohort at half resolution
that the prediction, dataset and CLI tests share (``tests/conftest.py`` makes it once per
session). The hand-made cases below have exactly known geometry:

CT: 40 x 40 x 20 voxels of 1 x 1 x 3 mm, identity direction, voxel centres at integer x, y in
[-20, 19] mm and z = -30 + 3k mm. PET: 12 x 12 x 20 voxels of 4 x 4 x 3 mm, a different
origin and a direction rotated 90 degrees about z (index i runs along +y, index j along -x).
The point ``POINT`` (5, -3, 3) mm is a voxel centre of the CT, the PET and the test grid
(``BOX`` with ``CONFIG``: 16^3 voxels of 2 mm centred on the origin).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hnprog.data.bbox import write_bboxes
from hnprog.geometry import BoundingBox
from hnprog.io import write_image
from hnprog.transforms import PreprocessConfig

POINT = (5.0, -3.0, 3.0)
BOX = BoundingBox.from_center((0.0, 0.0, 0.0), 32.0)
CONFIG = PreprocessConfig(spacing=2.0, crop_size=16, max_shift=3, max_rotation=5.0)
PET_DIRECTION = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)


def make_ct(point_value: float | None = 1000.0) -> sitk.Image:
    """A CT in HU: air, a soft-tissue ball of radius 15 mm, an optional bright voxel at POINT."""
    z, y, x = np.meshgrid(
        -30 + 3 * np.arange(20), np.arange(-20, 20), np.arange(-20, 20), indexing="ij"
    )
    ct = np.where(x**2 + y**2 + z**2 < 15**2, 40.0, -1000.0).astype(np.float32)
    image = sitk.GetImageFromArray(ct)
    image.SetSpacing((1.0, 1.0, 3.0))
    image.SetOrigin((-20.0, -20.0, -30.0))
    if point_value is not None:
        image[image.TransformPhysicalPointToIndex(POINT)] = point_value
    return image


def make_pet(point_value: float | None = 50.0, shift_mm: float = 0.0) -> sitk.Image:
    """A rotated-direction PET in SUV: background 1, a bright voxel at POINT."""
    pet = np.ones((20, 12, 12), dtype=np.float32)
    image = sitk.GetImageFromArray(pet)
    image.SetSpacing((4.0, 4.0, 3.0))
    image.SetDirection(PET_DIRECTION)
    image.SetOrigin((21.0, -23.0, -27.0))
    if point_value is not None:
        image[image.TransformPhysicalPointToIndex(POINT)] = point_value
    image.SetOrigin((21.0 + shift_mm, -23.0, -27.0))
    return image


def make_mask(ct: sitk.Image, radius: float = 8.0, label: int = 1) -> sitk.Image:
    """An ellipsoidal GTVt on the CT grid around (2, 1, 0) mm."""
    z, y, x = np.meshgrid(
        -30 + 3 * np.arange(20), np.arange(-20, 20), np.arange(-20, 20), indexing="ij"
    )
    inside = ((x - 2) / radius) ** 2 + ((y - 1) / (radius * 0.8)) ** 2 + (
        z / (radius * 1.5)
    ) ** 2 < 1
    mask = sitk.GetImageFromArray((inside * label).astype(np.uint8))
    mask.CopyInformation(ct)
    return mask


def write_cohort(root: Path, ids: list[str], *, events: list[int] | None = None) -> Path:
    """A HECKTOR-2021 flat cohort of identical tiny cases, with endpoints.csv and bboxes.csv."""
    root.mkdir(parents=True, exist_ok=True)
    ct = make_ct()
    for pid in ids:
        write_image(ct, root / f"{pid}_ct.nii.gz")
        write_image(make_pet(), root / f"{pid}_pt.nii.gz")
        write_image(make_mask(ct), root / f"{pid}_gtvt.nii.gz")
    events = events if events is not None else [i % 2 for i in range(len(ids))]
    lines = ["PatientID,Progression,Progression free survival"]
    lines += [f"{pid},{e},{100.0 * (i + 1)}" for i, (pid, e) in enumerate(zip(ids, events))]
    (root / "endpoints.csv").write_text("\n".join(lines) + "\n")
    write_bboxes({pid: BOX for pid in ids}, root / "bboxes.csv")
    return root


def tiny_synthetic_cohort(folder: Path, n_patients: int = 3, seed: int = 3) -> Path:
    """A small synthetic HECKTOR 2021 cohort (half-resolution scans, a few seconds to write).

    Args:
        folder: pathlib.Path. Where to write it.
        n_patients: int. Defaults to 3.
        seed: int. Defaults to 3.

    Returns:
        pathlib.Path. The cohort folder.
    """
    from hnprog.data.synthetic import generate_cohort

    return generate_cohort(folder, n_patients=n_patients, seed=seed, image_scale=0.5)
