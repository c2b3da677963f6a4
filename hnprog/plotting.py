"""Pictures that beat tables: mask overlays on the patient's own CT and PET.

Kaplan-Meier curves live in :mod:`hnprog.reporting`, beside the survival tables.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import SimpleITK as sitk
from PIL import Image, ImageDraw, ImageFont

from hnprog.errors import InputError
from hnprog.geometry import BoundingBox
from hnprog.io import atomic_path

__all__ = ["DEFAULT_SUV_WINDOW", "OverlayLayout", "OverlayView", "check_suv_window",
           "orientation_letters", "plot_overlay"]

DEFAULT_SUV_WINDOW = (0.0, 10.0)  # SUV shown from black (low) to white (high) in the overlay
SCALE_BAR_MM = 50.0  # length of each view's scale bar, mm (shorter only where it cannot fit)

PANEL_PX = 360  # edge of the square cell that holds each view, pixels
_GAP_PX = 8
_LABEL_PX = 22  # room for a view's label above it
_LINE_PX = 20  # one line of the heading
_BAR_COLUMN_PX = 60  # room right of the PET row for the SUV colour bar
_PET_ALPHA = 0.45
# Contours visible over CT and over hot PET (black to red to yellow to white): neither hue is
# in the "hot" map, and each is drawn with a 1-pixel black rim.
_PREDICTED, _REFERENCE = (0, 255, 255), (0, 255, 0)  # cyan, green

# Each view as (index axis pointing down the screen, its sign), (index axis pointing right,
# its sign), with the index axes in SimpleITK order (0: i, 1: j, 2: k). On a grid oriented
# "LPS" (i to the patient's left, j posterior, k superior) this is the radiological
# convention: the patient's right on the image left in the axial and coronal views, the head
# up in the coronal and sagittal views, anterior on the left of the sagittal view.
_VIEW_AXES = {
    "axial": ((1, 1), (0, 1)),
    "coronal": ((2, -1), (0, 1)),
    "sagittal": ((2, -1), (1, 1)),
}


def orientation_letters(direction: Sequence[float], view: str) -> tuple[str, str, str, str]:
    """The patient directions at the top, bottom, left and right edges of a view.

    Each is the letter of the patient axis closest to the screen direction, read from the
    grid's direction cosines: R/L (x in LPS: towards the patient's left is L), A/P (y:
    posterior is P) and I/S (z: superior is S).

    Args:
        direction: sequence of 9 float. The grid's direction matrix, row-major as SimpleITK
            gives it (``image.GetDirection()``): column c is the physical direction of index
            axis c.
        view: str. ``"axial"``, ``"coronal"`` or ``"sagittal"``, cut from that grid as
            :func:`plot_overlay` cuts it.

    Returns:
        tuple of 4 str: (top, bottom, left, right).

    Example:
        >>> orientation_letters((1, 0, 0, 0, 1, 0, 0, 0, 1), "axial")
        ('A', 'P', 'R', 'L')
        >>> orientation_letters((-1, 0, 0, 0, 1, 0, 0, 0, 1), "axial")  # i towards the right
        ('A', 'P', 'L', 'R')
    """
    matrix = np.asarray(direction, dtype=float).reshape(3, 3)
    (down_axis, down_sign), (right_axis, right_sign) = _VIEW_AXES[view]
    down = down_sign * matrix[:, down_axis]
    right = right_sign * matrix[:, right_axis]
    return _letter(-down), _letter(down), _letter(-right), _letter(right)


def _letter(vector: np.ndarray) -> str:
    """The LPS letter of the patient axis closest to a physical direction."""
    axis = int(np.argmax(np.abs(vector)))
    return ("RL", "AP", "IS")[axis][int(vector[axis] > 0)]


def _cut(volume: np.ndarray, view: str, index: Sequence[int]) -> np.ndarray:
    """The 2D view of a ``(z, y, x)`` array through ``index`` (i, j, k), rows down the screen."""
    (down_axis, down_sign), (right_axis, right_sign) = _VIEW_AXES[view]
    fixed = 3 - down_axis - right_axis
    plane = np.take(volume, index[fixed], axis=2 - fixed)
    # the array axis of index axis a is 2 - a; the remaining two keep their order
    if 2 - down_axis > 2 - right_axis:
        plane = plane.T
    return plane[::down_sign, ::right_sign]


@dataclasses.dataclass(frozen=True)
class OverlayView:
    """Where one view lies in the overlay picture and what is drawn on it.

    Args:
        name: str. ``"axial"``, ``"coronal"`` or ``"sagittal"``.
        layer: str. ``"CT"``, ``"PET over CT"`` or ``"risk map over CT"``.
        box: tuple of 4 int. The image's (left, top, right, bottom) in the picture, pixels,
            right and bottom excluded.
        mm_per_px: tuple of 2 float. Displayed size of a pixel (down, across), mm.
        letters: tuple of 4 str. Orientation letters at the (top, bottom, left, right) edges
            (:func:`orientation_letters`).
        scale_bar: tuple of 4 int or None. The scale bar's (left, top, right, bottom) in the
            picture, pixels, right and bottom excluded; None when even 5 mm does not fit.
        scale_bar_mm: float or None. The scale bar's length, mm.
    """

    name: str
    layer: str
    box: tuple[int, int, int, int]
    mm_per_px: tuple[float, float]
    letters: tuple[str, str, str, str]
    scale_bar: tuple[int, int, int, int] | None
    scale_bar_mm: float | None


@dataclasses.dataclass(frozen=True)
class OverlayLayout:
    """The geometry of an overlay picture, as :func:`plot_overlay` drew it.

    Args:
        size: tuple of 2 int. (width, height) of the picture, pixels.
        centred_on: str. What the views pass through: ``"predicted GTVt"``, ``"reference
            GTVt"``, ``"model's box"`` or ``"CT centre"``.
        centre: tuple of 3 float. That point, physical LPS (x, y, z), mm.
        views: tuple of OverlayView. Row by row, axial, coronal, sagittal in each.
        suv_window: tuple of 2 float. The SUVs shown as the colour map's ends.
        colour_bar: tuple of 4 int or None. The SUV colour bar's (left, top, right, bottom),
            pixels, right and bottom excluded; None without a PET.
        colour_bar_labels: tuple of (str, int). Each label of the colour bar and the row of
            its tick, pixels, from the top (highest SUV) down.
        risk_colour_bar: tuple of 4 int or None. The risk map's colour bar, beside its row
            (0 at the bottom, the map's maximum in the region shown at the top); None
            without a risk map.
        risk_colour_bar_labels: tuple of (str, int). Its labels and tick rows, top down.
    """

    size: tuple[int, int]
    centred_on: str
    centre: tuple[float, float, float]
    views: tuple[OverlayView, ...]
    suv_window: tuple[float, float]
    colour_bar: tuple[int, int, int, int] | None
    colour_bar_labels: tuple[tuple[str, int], ...]
    risk_colour_bar: tuple[int, int, int, int] | None = None
    risk_colour_bar_labels: tuple[tuple[str, int], ...] = ()


def _view_centre(ct: sitk.Image, mask: sitk.Image | None, reference_mask: sitk.Image | None,
                 box: BoundingBox | None) -> tuple[tuple[float, float, float], str]:
    """The point the views pass through and what it is: the centroid of the predicted mask
    when it is not empty, else of the reference mask, else the box's centre, else the CT's."""
    for image, source in ((mask, "predicted GTVt"), (reference_mask, "reference GTVt")):
        if image is not None and sitk.GetArrayViewFromImage(image).any():
            stats = sitk.LabelShapeStatisticsImageFilter()
            stats.ComputePerimeterOff()
            stats.Execute(sitk.Cast(image > 0, sitk.sitkUInt8))
            return tuple(stats.GetCentroid(1)), source
    if box is not None:
        return tuple(float(c) for c in box.center), "model's box"
    size = np.array(ct.GetSize()) - 1
    return ct.TransformContinuousIndexToPhysicalPoint((size / 2).tolist()), "CT centre"


def _view_region(ct: sitk.Image, centre: Sequence[float], half_width_mm: float) -> sitk.Image:
    """The CT's voxels within ``half_width_mm`` of ``centre`` along each index axis (clipped
    to the CT), reordered (without resampling) so that the index axes point left, posterior
    and superior. Which voxels are kept does not depend on the order the CT is stored in."""
    half = half_width_mm / np.array(ct.GetSpacing())
    center_index = np.array(ct.TransformPhysicalPointToContinuousIndex(tuple(map(float, centre))))
    size = np.array(ct.GetSize())
    lower = np.clip(np.ceil(center_index - half - 1e-6).astype(int), 0, size - 1)
    upper = np.clip(np.floor(center_index + half + 1e-6).astype(int) + 1, lower + 1, size)
    region = sitk.RegionOfInterest(ct, (upper - lower).tolist(), lower.tolist())
    return sitk.DICOMOrient(region, "LPS")


@functools.lru_cache(maxsize=1)
def _hot_lut() -> np.ndarray:
    """matplotlib's "hot" colour map as a (256, 3) float32 table of 0-255 RGB values."""
    import matplotlib

    return (matplotlib.colormaps["hot"](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(
        np.float32)


_RISK_LOW, _RISK_HIGH = np.array([40.0, 60.0, 255.0]), np.array([255.0, 235.0, 0.0])


def _risk_colours(level: np.ndarray) -> np.ndarray:
    """The risk map's colours, blue (``level`` 0) to yellow (1), as 0-255 RGB floats."""
    level = np.asarray(level, np.float32)[..., None]
    return (1 - level) * _RISK_LOW + level * _RISK_HIGH


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


def _text(draw: ImageDraw.ImageDraw, x: float, y: float, text: str, font: Any, *,
          across: str = "left", down: str = "top", halo: bool = True) -> None:
    """White text placed by its bounding box (as :func:`_centred_text`): ``across`` ("left",
    "centre", "right") and ``down`` ("top", "middle", "bottom") say which of its edges lies at
    ``x`` and ``y``; with ``halo``, ringed by a black pixel so it reads over any image."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    ox = x - {"left": left, "centre": (left + right) / 2, "right": right}[across]
    oy = y - {"top": top, "middle": (top + bottom) / 2, "bottom": bottom}[down]
    if halo and isinstance(font, ImageFont.FreeTypeFont):
        draw.text((ox, oy), text, fill="white", font=font, stroke_width=1, stroke_fill="black")
        return
    for dx in (-1, 0, 1) if halo else ():  # the bitmap font draws no stroke
        for dy in (-1, 0, 1):
            if dx or dy:
                draw.text((ox + dx, oy + dy), text, fill="black", font=font)
    draw.text((ox, oy), text, fill="white", font=font)


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


def _dilate(region: np.ndarray) -> np.ndarray:
    """A boolean region grown by one pixel (8-neighbourhood)."""
    grown = region.copy()
    grown[1:] |= region[:-1]
    grown[:-1] |= region[1:]
    wide = grown.copy()
    wide[:, 1:] |= grown[:, :-1]
    wide[:, :-1] |= grown[:, 1:]
    return wide


def _scale_bar_mm(width_px: int, mm_per_px: float) -> float | None:
    """The scale bar's length: ``SCALE_BAR_MM`` unless it would reach the bottom letter
    (half the view's width), then 20, 10 or 5 mm; None when none fits."""
    room = width_px / 2 - 24
    for length in (SCALE_BAR_MM, 20.0, 10.0, 5.0):
        if length / mm_per_px <= room:
            return length
    return None


def check_suv_window(suv_window: Sequence[float]) -> tuple[float, float]:
    """The overlay's PET display window as two floats (low, high), SUV.

    Raises:
        InputError: if it is not two finite numbers with the lower first.
    """
    try:
        low, high = (float(v) for v in suv_window)
    except (TypeError, ValueError):
        low = high = float("nan")
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise InputError("suv_window is two finite SUVs, the lower first, e.g. (0, 10). "
                         f"Received: suv_window={suv_window!r}")
    return low, high


# How each risk-map method reads in the overlay's legend.
_METHOD_WORDS = {"occlusion": " (risk drop when each block is hidden)", "gradcam": " (Grad-CAM)"}


def plot_overlay(
    ct: sitk.Image,
    pet: sitk.Image,
    mask: sitk.Image | None,
    path: str | os.PathLike,
    *,
    title: str | None = None,
    reference_mask: sitk.Image | None = None,
    box: BoundingBox | None = None,
    half_width_mm: float = 60.0,
    ct_window: tuple[float, float] = (-250.0, 350.0),
    suv_window: tuple[float, float] = DEFAULT_SUV_WINDOW,
    survival_curve: Mapping[str, Any] | None = None,
    risk_map: sitk.Image | None = None,
    risk_map_method: str | None = None,
) -> OverlayLayout:
    """Save axial, coronal and sagittal views through the tumour, CT above PET over CT.

    The views pass through the centroid of the predicted mask; when it is empty (no GTVt
    predicted) or None, through that of the reference mask, else the centre of ``box`` (the
    crop the model saw), else the CT's centre. They show the CT's voxels in a cube of
    ``2 * half_width_mm`` around that point, in the radiological convention whatever the
    CT's storage order (the patient's right on the image left in the axial and coronal views,
    head up, anterior on the left of the sagittal view), with orientation letters at the
    edges read from the direction cosines (:func:`orientation_letters`) and a 50 mm scale
    bar (20, 10 or 5 mm in a view too small for it). Each view fills a square cell of
    ``PANEL_PX`` pixels with the true physical aspect of its voxels (bilinear).

    The PET is resampled onto the CT grid (linear) and drawn with the "hot" colour map at 45%
    opacity over the CT, from black at ``suv_window[0]`` to white at ``suv_window[1]`` and
    above, the same for every patient, with a colour bar in SUV. The predicted contour is
    drawn in cyan and, when given, the reference contour in green, each with a black rim so
    that it stays visible over hot PET; the heading's legend says which is which and what
    the views are centred on. The picture is composed with NumPy and Pillow rather than
    matplotlib: about 0.1 s instead of 0.25 s for a head-and-neck CT, which matters next to a
    one-second forward pass.

    Args:
        ct: SimpleITK.Image. CT in HU, the grid of the picture.
        pet: SimpleITK.Image. PET in SUV, on any grid overlapping the CT.
        mask: SimpleITK.Image or None. Predicted binary mask on the CT grid.
        path: str or PathLike. PNG file to write (atomically).
        title: str, optional. Heading above the legend; may hold line breaks. Defaults to
            None.
        reference_mask: SimpleITK.Image, optional. Ground-truth mask on the CT grid.
            Defaults to None.
        box: BoundingBox, optional. The box the prediction cropped (physical LPS, mm): when
            neither mask holds a voxel the views are centred on it and widened to show all
            of it. Defaults to None.
        half_width_mm: float. Half the edge of the viewed cube, mm. Defaults to 60.
        ct_window: tuple of float. CT display window, HU. Defaults to (-250, 350).
        suv_window: tuple of float. PET display window (low, high), SUV. Defaults to
            ``DEFAULT_SUV_WINDOW``, (0, 10).
        survival_curve: dict, optional. The patient's predicted survival (``report.json``'s
            ``survival`` entry: ``curve`` with ``time_days``, ``probability`` and the folds'
            ``fold_min``/``fold_max``, and the requested ``times_days``/``probability``),
            drawn as a small panel on the right (:func:`_survival_panel`). Defaults to None.
        risk_map: SimpleITK.Image, optional. A risk activation map on the CT grid
            (:func:`hnprog.risk_activation_map`), drawn as a third row over the CT: blue to
            yellow and more opaque as the map rises, scaled to its maximum in the cube, with
            a colour bar from 0 to that maximum (for occlusion, the drop of the log-hazard
            when the block is hidden). Defaults to None.
        risk_map_method: str, optional. How the map was made (``"occlusion"``,
            ``"gradcam"``), named in its legend line. Defaults to None.

    Returns:
        OverlayLayout. Where the views, letters, scale bars and colour bars were drawn.

    Raises:
        InputError: if ``suv_window`` is not two finite SUVs, the lower first.

    Example:
        >>> import numpy as np, SimpleITK as sitk, tempfile, os
        >>> ct = sitk.GetImageFromArray(np.full((8, 8, 8), 40.0, np.float32))
        >>> pet = sitk.GetImageFromArray(np.full((8, 8, 8), 3.0, np.float32))
        >>> out = os.path.join(tempfile.mkdtemp(), "overlay.png")
        >>> layout = plot_overlay(ct, pet, None, out, suv_window=(0, 8))
        >>> layout.centred_on, [text for text, _ in layout.colour_bar_labels]
        ('CT centre', ['8', '4', '0'])
    """
    low_suv, high_suv = check_suv_window(suv_window)
    centre, centred_on = _view_centre(ct, mask, reference_mask, box)
    if centred_on == "model's box":  # show the whole crop the model saw
        half_width_mm = max(half_width_mm, max(box.size) / 2)
    region = _view_region(ct, centre, half_width_mm)

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
    spacing = region.GetSpacing()
    through = np.clip(np.round(region.TransformPhysicalPointToContinuousIndex(
        tuple(map(float, centre)))).astype(int), 0, np.array(region.GetSize()) - 1)

    legend: list[tuple[tuple[int, int, int] | None, str]] = []
    if mask_arr is not None:
        legend.append((_PREDICTED, "predicted GTVt" + ("" if mask_arr.any() else " (none)")))
    if ref_arr is not None:
        legend.append((_REFERENCE, "reference GTVt"))
    legend.append((None, f"views centred on the {centred_on}"))
    title_lines = title.count("\n") + 1 if title else 0
    legend_lines = 2 if risk_arr is not None else 1
    if risk_arr is not None:
        risk_max = max(float(risk_arr.max()), 1e-12)
    top = 10 + _LINE_PX * (title_lines + legend_lines)
    cell = PANEL_PX + _GAP_PX
    bar_column = 0 if pet_arr is None and risk_arr is None else _BAR_COLUMN_PX
    if risk_arr is not None:
        bar_column += 30  # the risk bar's labels (e.g. 0.00063) are longer than SUVs
    canvas = np.zeros((top + rows * (_LABEL_PX + cell), _GAP_PX + 3 * cell + bar_column, 3),
                      np.uint8)
    labels, views = [], []
    layers = ("CT", "PET over CT", "risk map over CT")
    for col, name in enumerate(_VIEW_AXES):
        (down_axis, _), (right_axis, _) = _VIEW_AXES[name]

        def cut(volume: np.ndarray, name: str = name) -> np.ndarray:
            return _cut(volume, name, through)

        ct_slice = cut(ct_arr)
        row_mm, col_mm = spacing[down_axis], spacing[right_axis]
        extent_down, extent_across = ct_slice.shape[0] * row_mm, ct_slice.shape[1] * col_mm
        scale = PANEL_PX / max(extent_down, extent_across)
        width = max(1, round(extent_across * scale))
        height = max(1, round(extent_down * scale))
        mm_per_px = (extent_down / height, extent_across / width)
        letters = orientation_letters(region.GetDirection(), name)
        bar_mm = _scale_bar_mm(width, mm_per_px[1])
        low, high = ct_window
        grey = np.clip((_resize(ct_slice, width, height) - low) / (high - low), 0, 1) * 255
        ct_rgb = np.repeat(grey[..., None], 3, axis=2)
        contours = [(_outline(_resize(cut(arr), width, height) >= 0.5), colour)
                    for arr, colour in ((ref_arr, _REFERENCE), (mask_arr, _PREDICTED))
                    if arr is not None and cut(arr).any()]
        rims = [_dilate(edge) for edge, _ in contours]
        x0 = _GAP_PX + col * cell + (PANEL_PX - width) // 2
        for row in range(rows):
            rgb = ct_rgb
            if row == 1 and pet_arr is not None:
                suv = _resize(cut(pet_arr), width, height)
                level = np.clip((suv - low_suv) / (high_suv - low_suv), 0, 1)
                rgb = (1 - _PET_ALPHA) * ct_rgb + _PET_ALPHA * _hot_lut()[
                    (level * 255).astype(np.uint8)]
            if row == 2:
                level = np.clip(_resize(cut(risk_arr), width, height) / risk_max, 0, 1)
                rgb = ((1 - 0.7 * level[..., None]) * ct_rgb
                       + 0.7 * level[..., None] * _risk_colours(level))
            rgb = rgb.astype(np.uint8)
            for rim in rims:
                rgb[rim] = 0
            for edge, colour in contours:
                rgb[edge] = colour
            cell_top = top + row * (_LABEL_PX + cell)
            y0 = cell_top + _LABEL_PX + (PANEL_PX - height) // 2
            canvas[y0 : y0 + height, x0 : x0 + width] = rgb
            labels.append((_GAP_PX + col * cell + PANEL_PX // 2, cell_top + _LABEL_PX // 2,
                           f"{name} - {layers[row]}"))
            scale_bar = None
            if bar_mm is not None:
                length = int(round(bar_mm / mm_per_px[1]))
                bar_top = y0 + height - 14
                scale_bar = (x0 + 10, bar_top, x0 + 10 + length, bar_top + 3)
            views.append(OverlayView(name, layers[row], (x0, y0, x0 + width, y0 + height),
                                     mm_per_px, letters, scale_bar, bar_mm))

    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    if title:
        _centred_text(draw, canvas.shape[1] // 2, 8, title, _font(14))
    _legend(draw, canvas.shape[1] // 2, 8 + _LINE_PX * title_lines, legend, _font(14))
    if risk_arr is not None:
        _centred_text(draw, canvas.shape[1] // 2, 8 + _LINE_PX * (title_lines + 1),
                      f"risk map{_METHOD_WORDS.get(risk_map_method, '')}: blue (0) to yellow "
                      "(its maximum in the region shown, the same for the three views)",
                      _font(14))
    label_font = _font(13)
    for x, y, text in labels:
        _centred_text(draw, x, y, text, label_font, middle=True)
    letter_font, bar_font = _font(15), _font(12)
    for view in views:
        left, upper, right, lower = view.box
        mid_x, mid_y = (left + right) / 2, (upper + lower) / 2
        top_letter, bottom_letter, left_letter, right_letter = view.letters
        _text(draw, mid_x, upper + 4, top_letter, letter_font, across="centre")
        _text(draw, mid_x, lower - 4, bottom_letter, letter_font, across="centre",
                   down="bottom")
        _text(draw, left + 5, mid_y, left_letter, letter_font, down="middle")
        _text(draw, right - 5, mid_y, right_letter, letter_font, across="right",
                   down="middle")
        if view.scale_bar is not None:
            x1, y1, x2, y2 = view.scale_bar
            draw.rectangle([x1 - 1, y1 - 1, x2, y2], fill="black")
            draw.rectangle([x1, y1, x2 - 1, y2 - 1], fill="white")
            _text(draw, x1, y1 - 4, f"{view.scale_bar_mm:g} mm", bar_font, down="bottom")
    colour_bar, bar_labels = None, ()
    if pet_arr is not None:
        colour_bar, bar_labels = _colour_bar(picture, draw, _GAP_PX + 3 * cell,
                                             top + _LABEL_PX + cell + _LABEL_PX,
                                             (low_suv, high_suv))
    risk_bar, risk_labels = None, ()
    if risk_arr is not None:
        risk_bar, risk_labels = _colour_bar(
            picture, draw, _GAP_PX + 3 * cell, top + 2 * (_LABEL_PX + cell) + _LABEL_PX,
            (0.0, risk_max), colours=_risk_colours(np.linspace(0.0, 1.0, 256)),
            heading="risk", number="{:.2g}")
    if survival_curve is not None:
        picture = _beside(picture, _survival_panel(survival_curve, top, cell + _LABEL_PX))
    with atomic_path(path) as tmp:
        picture.save(tmp, format="PNG", compress_level=1)
    views.sort(key=lambda v: layers.index(v.layer))  # row by row (a stable sort)
    return OverlayLayout((picture.width, picture.height), centred_on,
                         tuple(float(c) for c in centre), tuple(views), (low_suv, high_suv),
                         colour_bar, bar_labels, risk_bar, risk_labels)


def _legend(draw: ImageDraw.ImageDraw, x: int, y: int,
            items: Sequence[tuple[tuple[int, int, int] | None, str]], font: Any) -> None:
    """One line centred on ``x``, its top at ``y``: each item a short line in its colour
    (none for plain text) followed by its text."""
    swatch, pad, between = 20, 6, 24
    widths = [(swatch + pad if colour else 0) + draw.textlength(text, font=font)
              for colour, text in items]
    cursor = x - (sum(widths) + between * (len(items) - 1)) / 2
    left, top, right, bottom = draw.textbbox((0, 0), "Ag", font=font)
    middle = y + (bottom - top) / 2
    for (colour, text), width in zip(items, widths):
        if colour is not None:
            draw.rectangle([cursor, middle - 2, cursor + swatch, middle + 1], fill=colour)
            cursor += swatch + pad
        draw.text((cursor, y - top), text, fill="white", font=font)
        cursor += width - (swatch + pad if colour else 0) + between


def _colour_bar(picture: Image.Image, draw: ImageDraw.ImageDraw, left: int, panel_top: int,
                window: tuple[float, float], *, colours: np.ndarray | None = None,
                heading: str = "SUV", number: str = "{:g}"
                ) -> tuple[tuple[int, int, int, int], tuple[tuple[str, int], ...]]:
    """A colour bar beside a row of views: ``colours`` (a (256, 3) table, low to high;
    default the PET's "hot" map) from ``window[1]`` (top) down to ``window[0]``, under
    ``heading``, ticked and labelled (``number`` format) at both ends and the middle.

    Returns:
        tuple of the bar's (left, top, right, bottom) and its (label, tick row) pairs.
    """
    x1, x2 = left + 4, left + 18
    y1, y2 = panel_top + 40, panel_top + PANEL_PX - 30
    table = _hot_lut() if colours is None else colours
    ramp = table[np.linspace(255, 0, y2 - y1).round().astype(int)].astype(np.uint8)
    picture.paste(Image.fromarray(np.ascontiguousarray(
        np.repeat(ramp[:, None], x2 - x1, axis=1))), (x1, y1))
    draw.rectangle([x1 - 1, y1 - 1, x2, y2], outline=(110, 110, 110))
    font = _font(12)
    _centred_text(draw, (x1 + x2) // 2, y1 - 22, heading, font)
    low, high = window
    labels = []
    for value, y in ((high, y1), ((low + high) / 2, (y1 + y2 - 1) // 2), (low, y2 - 1)):
        draw.line([(x2, y), (x2 + 4, y)], fill="white")
        text = number.format(value)
        _text(draw, x2 + 7, y, text, font, down="middle", halo=False)
        labels.append((text, y))
    return (x1, y1, x2, y2), tuple(labels)


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
