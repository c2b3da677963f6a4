"""Tests of the overlay picture."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from hnprog.errors import InputError
from hnprog.geometry import BoundingBox
from hnprog.plotting import DEFAULT_SUV_WINDOW, orientation_letters, plot_overlay

CYAN, GREEN = (0, 255, 255), (0, 255, 0)


def _images():
    z, y, x = np.mgrid[:20, :48, :48]
    ball = ((z - 10) * 3.0) ** 2 + (y - 24.0) ** 2 + (x - 20.0) ** 2 < 64
    ct = sitk.GetImageFromArray(np.where(ball, 40.0, -1000.0).astype(np.float32))
    ct.SetSpacing((1.0, 1.0, 3.0))
    mask = sitk.GetImageFromArray(ball.astype(np.uint8))
    mask.CopyInformation(ct)
    pet = sitk.GetImageFromArray(np.ones((15, 12, 12), np.float32) * 2.0)
    pet.SetSpacing((4.0, 4.0, 4.0))
    pet.SetOrigin((-2.0, -2.0, -1.0))
    return ct, pet, mask


def _cube(centre_mm=(-30.0, 10.0, 20.0), radius_mm=10.0, suv=20.0):
    """A 32^3 CT, PET and mask of 4 mm voxels (124 mm across the view) with a ball of tissue
    (40 HU, ``suv``) at ``centre_mm`` (LPS) in air (-1000 HU, SUV 1); identity direction."""
    ct = sitk.Image(32, 32, 32, sitk.sitkFloat32)
    ct.SetSpacing((4.0, 4.0, 4.0))
    ct.SetOrigin((-64.0, -64.0, -64.0))
    k, j, i = np.mgrid[:32, :32, :32]
    points = np.stack([i, j, k], axis=-1) * 4.0 - 64.0
    ball = np.linalg.norm(points - np.array(centre_mm), axis=-1) < radius_mm
    images = []
    for values, pixel in ((np.where(ball, 40.0, -1000.0), np.float32),
                          (np.where(ball, suv, 1.0), np.float32), (ball, np.uint8)):
        image = sitk.GetImageFromArray(values.astype(pixel))
        image.CopyInformation(ct)
        images.append(image)
    return images


def _flip_x(image):
    """The same physical image stored with its first index axis pointing right (-x)."""
    flipped = sitk.GetImageFromArray(np.ascontiguousarray(sitk.GetArrayFromImage(image)[:, :, ::-1]))
    flipped.SetSpacing(image.GetSpacing())
    flipped.SetDirection((-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    flipped.SetOrigin(image.TransformIndexToPhysicalPoint((image.GetSize()[0] - 1, 0, 0)))
    return flipped


def _pixels(path):
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def _colour_mask(rgb, colour):
    return np.all(rgb == np.array(colour, np.uint8), axis=2)


def _in(rgb, box):
    left, top, right, bottom = box
    return rgb[top:bottom, left:right]


def test_overlay_writes_a_png(tmp_path):
    ct, pet, mask = _images()
    out = tmp_path / "overlay.png"
    layout = plot_overlay(ct, pet, mask, out, title="P1", reference_mask=mask)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["overlay.png"]
    assert layout.size == _pixels(out).shape[1::-1]


def test_overlay_without_mask_centres_on_the_image(tmp_path):
    ct, pet, _ = _images()
    layout = plot_overlay(ct, pet, None, tmp_path / "o.png")
    assert layout.centred_on == "CT centre"
    np.testing.assert_allclose(layout.centre, (23.5, 23.5, 28.5))


def test_overlay_draws_the_contour_in_every_view_with_the_true_aspect(tmp_path):
    ct, pet, mask = _images()  # the mask is a sphere of radius 8 mm; slices are 3 mm apart
    layout = plot_overlay(ct, pet, mask, tmp_path / "o.png")
    rgb = _pixels(tmp_path / "o.png")
    assert len(layout.views) == 6
    for view in layout.views:
        cyan = _colour_mask(_in(rgb, view.box), CYAN)
        assert cyan.sum() > 20, view
        ys, xs = np.nonzero(cyan)
        # a sphere looks round in every view only if the 3 mm slices are stretched
        aspect = (ys.max() - ys.min()) / (xs.max() - xs.min())
        assert 0.8 < aspect < 1.25, (view.name, view.layer, aspect)
        assert view.mm_per_px[0] == pytest.approx(view.mm_per_px[1], rel=0.02)
    assert not _colour_mask(rgb, GREEN).any()


def test_contours_keep_a_black_rim_over_saturated_pet(tmp_path):
    ct, pet, mask = _cube(centre_mm=(0.0, 0.0, 0.0), suv=30.0)  # SUV 30: white in the PET row
    layout = plot_overlay(ct, pet, mask, tmp_path / "o.png")
    rgb = _pixels(tmp_path / "o.png")
    axial_pet = next(v for v in layout.views if (v.name, v.layer) == ("axial", "PET over CT"))
    cell = _in(rgb, axial_pet.box)
    cyan = _colour_mask(cell, CYAN)
    # along the middle row: outside -> black rim -> cyan -> black rim -> inside (hot)
    row = cell.shape[0] // 2
    columns = np.nonzero(cyan[row])[0]
    assert len(columns) >= 4
    first, last = columns.min(), columns.max()
    assert (cell[row, first - 1] == 0).all() and (cell[row, last + 1] == 0).all()
    inside = cell[row, (first + last) // 2].astype(int)
    grey = (40.0 + 250.0) / 600.0 * 255.0  # 40 HU in the (-250, 350) window
    np.testing.assert_allclose(inside, 0.55 * grey + 0.45 * 255.0, atol=1.5)  # white PET


def test_overlay_shows_the_pet_only_in_the_lower_row(tmp_path):
    ct, pet, _ = _images()
    layout = plot_overlay(ct, pet, None, tmp_path / "o.png")
    rgb = _pixels(tmp_path / "o.png")
    for view in layout.views:
        inner = _in(rgb, view.box)[30:-30, 30:-30]  # clear of the letters and the scale bar
        if view.layer == "CT":
            assert (inner[..., 0] == inner[..., 2]).all()  # CT alone: grey
        else:
            assert (inner[..., 0].astype(int) - inner[..., 2]).max() > 50  # "hot" PET


def test_the_pet_colour_is_fixed_in_suv_not_scaled_to_the_patient(tmp_path):
    """SUV 5 over air (black CT) is the "hot" map's middle at 45% opacity: the same colour
    whatever the patient's hottest voxel; a window of (0, 20) makes it darker."""
    from hnprog.plotting import _hot_lut

    ct, _, _ = _images()
    colours = {}
    for name, values, window in (("flat", 5.0, DEFAULT_SUV_WINDOW), ("window", 5.0, (0, 20))):
        pet = sitk.GetImageFromArray(np.full((20, 48, 48), values, np.float32))
        pet.CopyInformation(ct)
        layout = plot_overlay(ct, pet, None, tmp_path / f"{name}.png", suv_window=window)
        axial = next(v for v in layout.views if (v.name, v.layer) == ("axial", "PET over CT"))
        left, top, _, _ = axial.box
        colours[name] = _pixels(tmp_path / f"{name}.png")[top + 40, left + 40].astype(int)
    np.testing.assert_allclose(colours["flat"], 0.45 * _hot_lut()[127], atol=1)
    np.testing.assert_allclose(colours["window"], 0.45 * _hot_lut()[63], atol=1)


def test_the_colour_bar_runs_from_the_window_low_to_high_in_suv(tmp_path):
    from hnprog.plotting import _hot_lut

    ct, pet, mask = _cube()
    layout = plot_overlay(ct, pet, mask, tmp_path / "o.png")
    assert layout.suv_window == (0.0, 10.0)
    labels = [text for text, _ in layout.colour_bar_labels]
    assert labels[0] == "10" and labels[-1] == "0"  # top, bottom
    left, top, right, bottom = layout.colour_bar
    rgb = _pixels(tmp_path / "o.png")
    middle = (left + right) // 2
    np.testing.assert_allclose(rgb[top, middle], _hot_lut()[255], atol=1)  # white: SUV 10
    np.testing.assert_allclose(rgb[bottom - 1, middle], _hot_lut()[0], atol=1)  # black: 0
    assert [y for _, y in layout.colour_bar_labels] == sorted(
        y for _, y in layout.colour_bar_labels)
    for _, y in layout.colour_bar_labels:  # each label is written beside its tick
        assert (rgb[y - 6 : y + 7, right + 7 : right + 30] > 200).all(axis=2).any()
    # the bar beside the PET row, not over a view
    pet_views = [v for v in layout.views if v.layer == "PET over CT"]
    assert left >= max(v.box[2] for v in pet_views)
    assert pet_views[0].box[1] <= top < bottom <= pet_views[0].box[3]


def test_another_suv_window_labels_the_colour_bar(tmp_path):
    ct, pet, mask = _cube()
    layout = plot_overlay(ct, pet, mask, tmp_path / "o.png", suv_window=(2, 7))
    assert [text for text, _ in layout.colour_bar_labels] == ["7", "4.5", "2"]


@pytest.mark.parametrize("window", [(5, 2), (3, 3), (0, float("nan")), (1,), "0-10"])
def test_a_bad_suv_window_is_an_input_error(tmp_path, window):
    ct, pet, mask = _cube()
    with pytest.raises(InputError, match=r"suv_window .*Received: suv_window="):
        plot_overlay(ct, pet, mask, tmp_path / "o.png", suv_window=window)
    assert not (tmp_path / "o.png").exists()


def test_the_scale_bar_is_50_mm_at_the_displayed_pixel_size(tmp_path):
    ct, pet, mask = _cube(centre_mm=(0.0, 0.0, 0.0))  # 4 mm voxels: 31 within 60 mm, 124 mm
    layout = plot_overlay(ct, pet, mask, tmp_path / "o.png")
    rgb = _pixels(tmp_path / "o.png")
    for view in layout.views:
        left, top, right, bottom = view.box
        assert right - left == 360 and bottom - top == 360  # 124 mm on 360 pixels
        assert view.scale_bar_mm == 50.0
        x1, y1, x2, y2 = view.scale_bar
        assert abs((x2 - x1) - 50.0 / (124.0 / 360.0)) <= 1.0
        assert (_in(rgb, view.scale_bar) == 255).all()  # solid white
        assert (rgb[y1 + 1, x1 - 1] == 0).all() and (rgb[y1 + 1, x2] == 0).all()  # black ends
        assert left < x1 and x2 < (left + right) / 2 and top < y1 and y2 < bottom


def test_a_view_too_small_for_50_mm_gets_a_shorter_scale_bar(tmp_path):
    ct, pet, mask = _cube(centre_mm=(0.0, 0.0, 0.0))
    layout = plot_overlay(ct, pet, mask, tmp_path / "o.png", half_width_mm=20.0)
    view = layout.views[0]  # 11 voxels, 44 mm on 360 pixels: 50 mm would not fit
    assert view.scale_bar_mm == 10.0
    x1, _, x2, _ = view.scale_bar
    assert abs((x2 - x1) - 10.0 * 360 / 44.0) <= 1.0


@pytest.mark.parametrize(("view", "identity", "flipped_x"), [
    ("axial", ("A", "P", "R", "L"), ("A", "P", "L", "R")),
    ("coronal", ("S", "I", "R", "L"), ("S", "I", "L", "R")),
    ("sagittal", ("S", "I", "A", "P"), ("S", "I", "A", "P")),
])
def test_orientation_letters_come_from_the_direction_cosines(view, identity, flipped_x):
    assert orientation_letters((1, 0, 0, 0, 1, 0, 0, 0, 1), view) == identity
    assert orientation_letters((-1, 0, 0, 0, 1, 0, 0, 0, 1), view) == flipped_x


def test_orientation_letters_of_a_grid_stored_in_another_order():
    # index axis i runs posterior, j superior, k to the patient's left (a sagittal series)
    direction = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], float).ravel()
    assert orientation_letters(direction, "axial") == ("I", "S", "A", "P")
    # a grid tilted 20 degrees about x keeps the letter of its closest patient axis
    tilt = np.radians(20)
    tilted = np.array([[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)],
                       [0, np.sin(tilt), np.cos(tilt)]]).ravel()
    assert orientation_letters(tilted, "sagittal") == ("S", "I", "A", "P")


def test_a_flipped_image_is_drawn_in_the_radiological_convention(tmp_path):
    """The patient's right (x < 0 in LPS) is on the image left whatever the storage order:
    a CT stored with i pointing right gives the same picture, letters included."""
    images = _cube(centre_mm=(-30.0, 0.0, 0.0))
    layouts, pictures = [], []
    for name, (ct, pet, mask) in (("identity", images), ("flipped", map(_flip_x, images))):
        assert name == "identity" or ct.GetDirection()[0] == -1.0
        layouts.append(plot_overlay(ct, pet, mask, tmp_path / f"{name}.png",
                                    half_width_mm=70.0))
        pictures.append(_pixels(tmp_path / f"{name}.png"))
    np.testing.assert_array_equal(pictures[0], pictures[1])
    for layout in layouts:
        for view in layout.views:
            assert view.letters == {"axial": ("A", "P", "R", "L"),
                                    "coronal": ("S", "I", "R", "L"),
                                    "sagittal": ("S", "I", "A", "P")}[view.name]
    rgb = pictures[0]
    for view in layouts[0].views:
        if view.name in ("axial", "coronal"):  # the ball, on the patient's right: image left
            xs = np.nonzero(_colour_mask(_in(rgb, view.box), CYAN))[1]
            width = view.box[2] - view.box[0]
            assert xs.max() < width / 2, view


def test_the_letters_are_written_at_the_view_edges(tmp_path):
    from PIL import Image, ImageDraw

    from hnprog.plotting import _font

    ct, pet, mask = _cube(centre_mm=(0.0, 0.0, 0.0))
    layout = plot_overlay(ct, pet, mask, tmp_path / "o.png")
    rgb = _pixels(tmp_path / "o.png")
    probe = ImageDraw.Draw(Image.new("RGB", (40, 40)))
    for view in layout.views:
        left, top, right, bottom = view.box
        mid_x, mid_y = (left + right) // 2, (top + bottom) // 2
        # the CT outside the ball is air (black): white pixels there are text
        for letter, (x1, y1, x2, y2) in zip(view.letters, (
                (mid_x - 12, top, mid_x + 12, top + 26), (mid_x - 12, bottom - 26, mid_x + 12, bottom),
                (left, mid_y - 12, left + 26, mid_y + 12), (right - 26, mid_y - 12, right, mid_y + 12))):
            white = (rgb[y1:y2, x1:x2] > 200).all(axis=2)
            assert white.any(), (view.name, letter)
            width = probe.textlength(letter, font=_font(15))
            assert np.ptp(np.nonzero(white)[1]) <= width + 2, (view.name, letter)


def test_an_empty_prediction_centres_on_the_reference(tmp_path):
    ct, pet, reference = _cube(centre_mm=(-40.0, 30.0, -35.0))  # far off the CT's centre
    empty = sitk.Image(reference.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(reference)
    layout = plot_overlay(ct, pet, empty, tmp_path / "o.png", reference_mask=reference,
                          box=BoundingBox.from_center((0.0, 0.0, 0.0), 100.0))
    assert layout.centred_on == "reference GTVt"
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(reference)
    np.testing.assert_allclose(layout.centre, stats.GetCentroid(1), atol=1e-6)
    rgb = _pixels(tmp_path / "o.png")
    for view in layout.views:  # the whole reference contour in every view
        green = _colour_mask(_in(rgb, view.box), GREEN)
        assert green.sum() > 50, view
        ys, xs = np.nonzero(green)
        height, width = view.box[3] - view.box[1], view.box[2] - view.box[0]
        assert 0 < xs.min() and xs.max() < width - 1 and 0 < ys.min() and ys.max() < height - 1
    assert not any(_colour_mask(_in(rgb, v.box), CYAN).any() for v in layout.views)


def test_without_any_contour_the_views_centre_on_the_box_and_show_all_of_it(tmp_path):
    ct, pet, _ = _cube()
    box = BoundingBox.from_center((20.0, -24.0, 16.0), 80.0)
    layout = plot_overlay(ct, pet, None, tmp_path / "o.png", box=box, half_width_mm=20.0)
    assert layout.centred_on == "model's box"
    np.testing.assert_allclose(layout.centre, box.center)
    axial = layout.views[0]
    extent = np.array([axial.box[2] - axial.box[0], axial.box[3] - axial.box[1]])
    assert (extent * np.array(axial.mm_per_px[::-1]) >= 80.0).all()  # widened to the box


def test_overlay_reference_alone_is_green(tmp_path):
    ct, pet, mask = _images()
    layout = plot_overlay(ct, pet, None, tmp_path / "o.png", reference_mask=mask,
                          title="line 1\nline 2")
    rgb = _pixels(tmp_path / "o.png")
    assert layout.centred_on == "reference GTVt"
    views = np.concatenate([_in(rgb, v.box).reshape(-1, 3) for v in layout.views])
    assert _colour_mask(views[None], GREEN).sum() > 100
    assert not _colour_mask(rgb, CYAN).any()  # no predicted mask: no cyan, legend included


def test_the_risk_map_row_and_the_survival_panel_still_draw(tmp_path):
    ct, pet, mask = _cube(centre_mm=(0.0, 0.0, 0.0))
    risk = sitk.Cast(mask, sitk.sitkFloat32)
    survival = {"curve": {"time_days": [0, 365, 730], "probability": [1.0, 0.8, 0.6]},
                "times_days": [365], "probability": [0.8]}
    layout = plot_overlay(ct, pet, mask, tmp_path / "o.png", risk_map=risk,
                          survival_curve=survival)
    assert [v.layer for v in layout.views[::3]] == ["CT", "PET over CT", "risk map over CT"]
    rgb = _pixels(tmp_path / "o.png")
    risk_view = _in(rgb, layout.views[2 * 3].box)
    assert (risk_view[..., 1].astype(int) - risk_view[..., 2] > 100).any()  # yellow at the peak
    assert layout.size[0] > layout.colour_bar[2] + 300  # the survival panel on the right
    # the risk row has its own colour bar, 0 to the map's maximum (1), yellow at the top
    left, top, right, bottom = layout.risk_colour_bar
    assert top > layout.views[2 * 3].box[1] and [t for t, _ in layout.risk_colour_bar_labels] == [
        "1", "0.5", "0"]
    bar = rgb[top:bottom, left:right]
    assert tuple(bar[0, 0]) == (255, 235, 0) and tuple(bar[-1, 0]) == (40, 60, 255)


def test_overlay_writes_without_freetype(tmp_path, monkeypatch):
    # Pillow built without FreeType falls back to its bitmap font.
    from PIL import ImageFont

    from hnprog import plotting

    monkeypatch.setattr(plotting, "_font", lambda size: ImageFont.load_default_imagefont())
    ct, pet, mask = _images()
    layout = plot_overlay(ct, pet, mask, tmp_path / "o.png", title="P1\nsecond line")
    assert _colour_mask(_pixels(tmp_path / "o.png"), CYAN).any()
    assert [text for text, _ in layout.colour_bar_labels][::2] == ["10", "0"]
