"""Pictures that beat tables: mask overlays on the patient's own CT and PET.

Kaplan-Meier curves live in :mod:`hnprog.reporting`, beside the survival tables.
"""

from __future__ import annotations

import os

import numpy as np
import SimpleITK as sitk

from hnprog.io import atomic_path

__all__ = ["plot_overlay"]


def _view_region(ct: sitk.Image, mask: sitk.Image | None, half_width_mm: float) -> sitk.Image:
    """A sub-grid of the CT around the mask's centroid (or the image centre)."""
    if mask is not None and sitk.GetArrayViewFromImage(mask).any():
        stats = sitk.LabelShapeStatisticsImageFilter()
        stats.Execute(sitk.Cast(mask > 0, sitk.sitkUInt8))
        center = stats.GetCentroid(1)
    else:
        size = np.array(ct.GetSize()) - 1
        center = ct.TransformContinuousIndexToPhysicalPoint((size / 2).tolist())
    spacing = np.array(ct.GetSpacing())
    half = np.ceil(half_width_mm / spacing).astype(int)
    center_index = np.array(ct.TransformPhysicalPointToIndex(center))
    lower = np.clip(center_index - half, 0, np.array(ct.GetSize()) - 1)
    upper = np.clip(center_index + half + 1, 1, np.array(ct.GetSize()))
    return sitk.RegionOfInterest(ct, (upper - lower).tolist(), lower.tolist())


def plot_overlay(
    ct: sitk.Image,
    pet: sitk.Image,
    mask: sitk.Image | None,
    path: str | os.PathLike,
    *,
    title: str | None = None,
    reference_mask: sitk.Image | None = None,
    half_width_mm: float = 60.0,
    ct_window: tuple[float, float] = (-250.0, 350.0),
) -> None:
    """Save axial, coronal and sagittal views through the tumour, CT beside PET over CT.

    The PET is resampled onto the CT grid (linear) inside a cube of ``2 * half_width_mm``
    around the mask's centroid; the predicted contour is drawn in red and, when given, a
    reference contour in green. Views are shown with the true aspect ratio of the voxels.

    Args:
        ct: SimpleITK.Image. CT in HU, the grid of the picture.
        pet: SimpleITK.Image. PET in SUV, on any grid overlapping the CT.
        mask: SimpleITK.Image or None. Predicted binary mask on the CT grid.
        path: str or PathLike. PNG file to write (atomically).
        title: str, optional. Figure title. Defaults to None.
        reference_mask: SimpleITK.Image, optional. Ground-truth mask on the CT grid.
            Defaults to None.
        half_width_mm: float. Half the edge of the viewed cube, mm. Defaults to 60.
        ct_window: tuple of float. CT display window, HU. Defaults to (-250, 350).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    region = _view_region(ct, mask if mask is not None else reference_mask, half_width_mm)

    def on_region(image: sitk.Image | None, interpolator: int) -> np.ndarray | None:
        if image is None:
            return None
        resampled = sitk.Resample(image, region, sitk.Transform(), interpolator, 0.0)
        return sitk.GetArrayFromImage(resampled).astype(np.float32)

    ct_arr = sitk.GetArrayFromImage(region).astype(np.float32)
    pet_arr = on_region(pet, sitk.sitkLinear)
    mask_arr = on_region(mask, sitk.sitkNearestNeighbor)
    ref_arr = on_region(reference_mask, sitk.sitkNearestNeighbor)
    sx, sy, sz = region.GetSpacing()
    focus = mask_arr if mask_arr is not None and mask_arr.any() else ref_arr
    if focus is not None and focus.any():
        cz, cy, cx = (int(round(c)) for c in np.argwhere(focus > 0).mean(axis=0))
    else:
        cz, cy, cx = (s // 2 for s in ct_arr.shape)

    views = [  # (name, slicer, aspect = row spacing / column spacing)
        ("axial", lambda a: a[cz], sy / sx),
        ("coronal", lambda a: a[:, cy, :][::-1], sz / sx),
        ("sagittal", lambda a: a[:, :, cx][::-1], sz / sy),
    ]
    vmax = float(np.percentile(pet_arr, 99.5)) if pet_arr is not None and pet_arr.size else 1.0
    fig, axes = plt.subplots(2, 3, figsize=(11, 7.5), facecolor="black")
    for col, (name, cut, aspect) in enumerate(views):
        for row in range(2):
            ax = axes[row, col]
            ax.imshow(cut(ct_arr), cmap="gray", vmin=ct_window[0], vmax=ct_window[1],
                      aspect=aspect, interpolation="bilinear")
            if row == 1 and pet_arr is not None:
                ax.imshow(cut(pet_arr), cmap="hot", alpha=0.45, vmin=0, vmax=max(vmax, 1e-3),
                          aspect=aspect, interpolation="bilinear")
            for arr, color in ((ref_arr, "lime"), (mask_arr, "red")):
                if arr is not None and cut(arr).any():
                    ax.contour(cut(arr), levels=[0.5], colors=color, linewidths=1.2)
            ax.set_axis_off()
            label = f"{name} - {'CT' if row == 0 else 'PET over CT'}"
            # A fixed title position: matplotlib's automatic one measures every axis again.
            ax.set_title(label, color="white", fontsize=10, y=1.0, pad=4)
    legend = "red: predicted GTVt" + ("   green: reference GTVt" if ref_arr is not None else "")
    heading = (title + "\n" if title else "") + legend
    fig.suptitle(heading, color="white", fontsize=11, y=0.995, va="top")
    # Fixed margins rather than tight_layout (which draws the figure once more): the axes
    # carry no ticks, so only the heading's lines need room.
    heading_inches = 0.12 + 0.2 * (heading.count("\n") + 1)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - heading_inches / 7.5 - 0.03,
                        wspace=0.03, hspace=0.1)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, facecolor="black", format="png",
                    pil_kwargs={"compress_level": 1})
    plt.close(fig)
