"""Pictures that beat tables: mask overlays on the patient's own CT and PET.

Kaplan-Meier curves live in :mod:`hnprog.reporting`, beside the survival tables.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import SimpleITK as sitk
from PIL import Image, ImageDraw, ImageFont

from hnprog.io import atomic_path

__all__ = ["plot_overlay"]


def _view_region(ct: sitk.Image, mask: sitk.Image | None, half_width_mm: float) -> sitk.Image:
    """A sub-grid of the CT around the mask's centroid (or the image centre)."""
    if mask is not None and sitk.GetArrayViewFromImage(mask).any():
        stats = sitk.LabelShapeStatisticsImageFilter()
        stats.ComputePerimeterOff()
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


PANEL_PX = 360  # edge of the square cell that holds each view, pixels
_GAP_PX = 8
_LABEL_PX = 22  # room for a view's label above it
_LINE_PX = 20  # one line of the heading
_PET_ALPHA = 0.45
_RED, _GREEN = (255, 0, 0), (0, 255, 0)


@functools.lru_cache(maxsize=1)
def _hot_lut() -> np.ndarray:
    """matplotlib's "hot" colour map as a (256, 3) float32 table of 0-255 RGB values."""
    import matplotlib

    return (matplotlib.colormaps["hot"](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(
        np.float32)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def _centred_text(draw: ImageDraw.ImageDraw, x: int, y: int, text: str, font: Any, *,
                  middle: bool = False) -> None:
    """Draw white text centred on ``x``, its top at ``y`` (or its middle, with ``middle``).

    Positions come from the text's bounding box rather than Pillow's anchors, which older
    Pillow versions refuse for the bitmap font used where FreeType is missing.
    """
    left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=font, spacing=6)
    origin_y = y - (bottom + top) / 2 if middle else y - top
    draw.multiline_text((x - (right + left) / 2, origin_y), text, fill="white", font=font,
                        align="center", spacing=6)


def _resize(slice_2d: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize of a 2D array to (height, width), float32."""
    image = Image.fromarray(np.ascontiguousarray(slice_2d, dtype=np.float32), mode="F")
    return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR))


def _outline(inside: np.ndarray) -> np.ndarray:
    """The 2-pixel-wide border of a boolean region (its pixels with a 4-neighbour outside)."""
    core = inside.copy()
    core[1:] &= inside[:-1]
    core[:-1] &= inside[1:]
    core[:, 1:] &= inside[:, :-1]
    core[:, :-1] &= inside[:, 1:]
    edge = inside & ~core
    edge[1:] |= edge[:-1].copy()
    edge[:, 1:] |= edge[:, :-1].copy()
    return edge


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
    survival_curve: Mapping[str, Any] | None = None,
    risk_map: sitk.Image | None = None,
) -> None:
    """Save axial, coronal and sagittal views through the tumour, CT above PET over CT.

    The PET is resampled onto the CT grid (linear) inside a cube of ``2 * half_width_mm``
    around the mask's centroid and drawn with the "hot" colour map at 45% opacity over the CT
    (scaled to the 99.5th SUV percentile of the cube); the predicted contour is drawn in red
    and, when given, a reference contour in green. Each view fills a square cell of
    ``PANEL_PX`` pixels with the true physical aspect of its voxels (bilinear). The picture is
    composed with NumPy and Pillow rather than matplotlib: about 0.1 s instead of 0.25 s for
    a head-and-neck CT, which matters next to a one-second forward pass.

    Args:
        ct: SimpleITK.Image. CT in HU, the grid of the picture.
        pet: SimpleITK.Image. PET in SUV, on any grid overlapping the CT.
        mask: SimpleITK.Image or None. Predicted binary mask on the CT grid.
        path: str or PathLike. PNG file to write (atomically).
        title: str, optional. Heading above the legend; may hold line breaks. Defaults to
            None.
        reference_mask: SimpleITK.Image, optional. Ground-truth mask on the CT grid.
            Defaults to None.
        half_width_mm: float. Half the edge of the viewed cube, mm. Defaults to 60.
        ct_window: tuple of float. CT display window, HU. Defaults to (-250, 350).
        survival_curve: dict, optional. The patient's predicted survival (``report.json``'s
            ``survival`` entry: ``curve`` with ``time_days``, ``probability`` and the folds'
            ``fold_min``/``fold_max``, and the requested ``times_days``/``probability``),
            drawn as a small panel on the right (:func:`_survival_panel`). Defaults to None.
        risk_map: SimpleITK.Image, optional. A risk activation map on the CT grid
            (:func:`hnprog.risk_activation_map`), drawn as a third row over the CT: blue to
            yellow and more opaque as the map rises, scaled to its maximum in the cube.
            Defaults to None.
    """
    region = _view_region(ct, mask if mask is not None else reference_mask, half_width_mm)

    def on_region(image: sitk.Image | None, interpolator: int) -> np.ndarray | None:
        if image is None:
            return None
        resampled = sitk.Resample(image, region, sitk.Transform(), interpolator, 0.0)
        return sitk.GetArrayFromImage(resampled)

    ct_arr = sitk.GetArrayViewFromImage(region)
    pet_arr = on_region(pet, sitk.sitkLinear)
    mask_arr = on_region(mask, sitk.sitkNearestNeighbor)
    ref_arr = on_region(reference_mask, sitk.sitkNearestNeighbor)
    risk_arr = on_region(risk_map, sitk.sitkLinear)
    rows = 2 if risk_arr is None else 3
    sx, sy, sz = region.GetSpacing()
    focus = mask_arr if mask_arr is not None and mask_arr.any() else ref_arr
    if focus is not None and focus.any():
        cz, cy, cx = (int(round(c)) for c in np.argwhere(focus > 0).mean(axis=0))
    else:
        cz, cy, cx = (s // 2 for s in ct_arr.shape)

    views = [  # (name, slicer, row spacing mm, column spacing mm); head up in both side views
        ("axial", lambda a: a[cz], sy, sx),
        ("coronal", lambda a: a[:, cy, :][::-1], sz, sx),
        ("sagittal", lambda a: a[:, :, cx][::-1], sz, sy),
    ]
    vmax = max(float(np.percentile(pet_arr, 99.5)), 1e-3) if pet_arr is not None else 1.0
    legend = "red: predicted GTVt" + ("   green: reference GTVt" if ref_arr is not None else "")
    if risk_arr is not None:
        legend += "\nrisk map: blue (low) to yellow (the map's maximum in view)"
        risk_max = max(float(risk_arr.max()), 1e-12)
    heading = (title + "\n" if title else "") + legend
    top = 10 + _LINE_PX * (heading.count("\n") + 1)
    cell = PANEL_PX + _GAP_PX
    canvas = np.zeros((top + rows * (_LABEL_PX + cell), _GAP_PX + 3 * cell, 3), np.uint8)
    labels = []
    for col, (name, cut, row_mm, col_mm) in enumerate(views):
        ct_slice = cut(ct_arr)
        scale = PANEL_PX / max(ct_slice.shape[0] * row_mm, ct_slice.shape[1] * col_mm)
        width = max(1, round(ct_slice.shape[1] * col_mm * scale))
        height = max(1, round(ct_slice.shape[0] * row_mm * scale))
        low, high = ct_window
        grey = np.clip((_resize(ct_slice, width, height) - low) / (high - low), 0, 1) * 255
        ct_rgb = np.repeat(grey[..., None], 3, axis=2)
        contours = [(_outline(_resize(cut(arr), width, height) >= 0.5), colour)
                    for arr, colour in ((ref_arr, _GREEN), (mask_arr, _RED))
                    if arr is not None and cut(arr).any()]
        x0 = _GAP_PX + col * cell + (PANEL_PX - width) // 2
        for row in range(rows):
            rgb = ct_rgb
            if row == 1 and pet_arr is not None:
                suv = _resize(cut(pet_arr), width, height)
                index = (np.clip(suv / vmax, 0, 1) * 255).astype(np.uint8)
                rgb = (1 - _PET_ALPHA) * ct_rgb + _PET_ALPHA * _hot_lut()[index]
            if row == 2:
                level = np.clip(_resize(cut(risk_arr), width, height) / risk_max, 0, 1)[..., None]
                colour = (1 - level) * np.array([40.0, 60.0, 255.0]) + level * np.array(
                    [255.0, 235.0, 0.0])
                rgb = (1 - 0.7 * level) * ct_rgb + 0.7 * level * colour
            rgb = rgb.astype(np.uint8)
            for edge, colour in contours:
                rgb[edge] = colour
            cell_top = top + row * (_LABEL_PX + cell)
            y0 = cell_top + _LABEL_PX + (PANEL_PX - height) // 2
            canvas[y0 : y0 + height, x0 : x0 + width] = rgb
            labels.append((_GAP_PX + col * cell + PANEL_PX // 2, cell_top + _LABEL_PX // 2,
                           f"{name} - {('CT', 'PET over CT', 'risk map over CT')[row]}"))

    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    _centred_text(draw, canvas.shape[1] // 2, 8, heading, _font(14))
    label_font = _font(13)
    for x, y, text in labels:
        _centred_text(draw, x, y, text, label_font, middle=True)
    if survival_curve is not None:
        picture = _beside(picture, _survival_panel(survival_curve, top, cell + _LABEL_PX))
    with atomic_path(path) as tmp:
        picture.save(tmp, format="PNG", compress_level=1)


# ---------------------------------------------------------------------------------------------
# The small survival curve beside the overlay
# ---------------------------------------------------------------------------------------------

_CURVE_PX = 330  # width of the survival panel
_BLUE, _GREY = (90, 160, 255), (110, 110, 110)


def _beside(picture: Image.Image, panel: Image.Image) -> Image.Image:
    """``panel`` to the right of ``picture``, top-aligned, on black."""
    joined = Image.new("RGB", (picture.width + panel.width, max(picture.height, panel.height)))
    joined.paste(picture, (0, 0))
    joined.paste(panel, (picture.width, 0))
    return joined


def _survival_panel(survival: Mapping[str, Any], top: int, height: int) -> Image.Image:
    """A small plot of a patient's predicted survival curve (white on black, Pillow only).

    The curve (and the band between the folds' lowest and highest curves for an ensemble)
    runs from day 0 to the training patients' follow-up; each requested time is a dot
    labelled with its probability, "n/a" beyond the follow-up.

    Args:
        survival: dict. ``report.json``'s ``survival`` entry.
        top: int. Pixels above the plot (the overlay's heading), left empty.
        height: int. Height of the plot area, pixels.

    Returns:
        PIL.Image.Image. The panel, ``_CURVE_PX`` wide.
    """
    curve = survival["curve"]
    days = np.asarray(curve["time_days"], dtype=float)
    probability = np.asarray([np.nan if p is None else p for p in curve["probability"]], float)
    panel = Image.new("RGB", (_CURVE_PX, top + height), (0, 0, 0))
    draw = ImageDraw.Draw(panel)
    left, right, upper, lower = 46, _CURVE_PX - 14, top + _LABEL_PX + 8, top + height - 40
    end = float(days.max()) if len(days) and days.max() > 0 else 1.0

    def xy(d: np.ndarray, p: np.ndarray) -> list[tuple[float, float]]:
        return list(zip(left + (right - left) * d / end, lower - (lower - upper) * p))

    font = _font(12)
    _centred_text(draw, _CURVE_PX // 2, top + _LABEL_PX // 2 - 6,
                  "predicted event-free survival", _font(13), middle=True)
    for p in (0.0, 0.5, 1.0):
        (_, y), = xy(np.array([0.0]), np.array([p]))
        draw.line([(left, y), (right, y)], fill=(45, 45, 45))
        draw.text((left - 8, y), f"{p:.0%}" if p else "0", fill=_GREY, font=font, anchor="rm")
    years = np.arange(0.0, end + 1, 365.0)
    for d in years:
        (x, _), = xy(np.array([d]), np.array([0.0]))
        draw.line([(x, lower), (x, lower + 4)], fill=_GREY)
        draw.text((x, lower + 6), f"{d / 365:g} y", fill=_GREY, font=font, anchor="ma")
    draw.rectangle([left, upper, right, lower], outline=_GREY)
    if curve.get("fold_min") is not None and curve.get("fold_max") is not None:
        low = np.asarray([np.nan if p is None else p for p in curve["fold_min"]], float)
        high = np.asarray([np.nan if p is None else p for p in curve["fold_max"]], float)
        ok = np.isfinite(low) & np.isfinite(high)
        if ok.sum() > 1:
            draw.polygon(xy(days[ok], high[ok]) + xy(days[ok], low[ok])[::-1], fill=(30, 55, 95))
            draw.text((left, lower + 40), "shaded: lowest to highest fold", fill=_GREY,
                      font=font)
    ok = np.isfinite(probability)
    if ok.sum() > 1:
        draw.line(xy(days[ok], probability[ok]), fill=_BLUE, width=2)
    lines = []
    for d, p in zip(survival.get("times_days", []), survival.get("probability", [])):
        if p is None:
            lines.append(f"{d / 365:g} y: n/a (beyond follow-up)")
            continue
        (x, y), = xy(np.array([min(d, end)]), np.array([p]))
        draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=(255, 255, 255))
        lines.append(f"{d / 365:g} y: {p:.0%}")
    draw.text((left, lower + 22), "   ".join(lines), fill=(230, 230, 230), font=font)
    return panel
