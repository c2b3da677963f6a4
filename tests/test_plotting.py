"""Tests of the overlay picture."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from hnprog.plotting import plot_overlay


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


def test_overlay_writes_a_png(tmp_path):
    ct, pet, mask = _images()
    out = tmp_path / "overlay.png"
    plot_overlay(ct, pet, mask, out, title="P1", reference_mask=mask)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["overlay.png"]


def test_overlay_without_mask_centres_on_the_image(tmp_path):
    ct, pet, _ = _images()
    plot_overlay(ct, pet, None, tmp_path / "o.png")
    assert (tmp_path / "o.png").stat().st_size > 1000


def _pixels(path):
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def _colour_mask(rgb, colour):
    return np.all(rgb == np.array(colour, np.uint8), axis=2)


def _cells(rgb):
    """The picture cut into its 2 rows x 3 columns of views (the heading dropped)."""
    from hnprog.plotting import PANEL_PX

    height, width = rgb.shape[:2]
    body = rgb[height - 2 * (PANEL_PX + 30):]  # two rows of labelled cells, from the bottom
    rows = np.array_split(body, 2, axis=0)
    return [np.array_split(row, 3, axis=1) for row in rows]


def test_overlay_draws_the_contour_in_every_view_with_the_true_aspect(tmp_path):
    ct, pet, mask = _images()  # the mask is a sphere of radius 8 mm; slices are 3 mm apart
    plot_overlay(ct, pet, mask, tmp_path / "o.png")
    cells = _cells(_pixels(tmp_path / "o.png"))
    for row in range(2):
        for col in range(3):
            red = _colour_mask(cells[row][col], (255, 0, 0))
            assert red.sum() > 20, (row, col)
            ys, xs = np.nonzero(red)
            # a sphere looks round in every view only if the 3 mm slices are stretched
            aspect = (ys.max() - ys.min()) / (xs.max() - xs.min())
            assert 0.8 < aspect < 1.25, (row, col, aspect)
    assert not _colour_mask(_pixels(tmp_path / "o.png"), (0, 255, 0)).any()


def test_overlay_shows_the_pet_only_in_the_lower_row(tmp_path):
    ct, pet, _ = _images()
    plot_overlay(ct, pet, None, tmp_path / "o.png")
    cells = _cells(_pixels(tmp_path / "o.png"))
    for col in range(3):
        top, bottom = cells[0][col], cells[1][col]
        assert (top[..., 0] == top[..., 2]).all()  # CT alone: grey
        assert (bottom[..., 0].astype(int) - bottom[..., 2]).max() > 50  # "hot" PET: red-yellow


def test_overlay_reference_alone_is_green(tmp_path):
    ct, pet, mask = _images()
    plot_overlay(ct, pet, None, tmp_path / "o.png", reference_mask=mask, title="line 1\nline 2")
    rgb = _pixels(tmp_path / "o.png")
    assert _colour_mask(rgb, (0, 255, 0)).sum() > 100
    assert not _colour_mask(rgb, (255, 0, 0)).any()


def test_overlay_writes_without_freetype(tmp_path, monkeypatch):
    # Pillow built without FreeType falls back to its bitmap font.
    from PIL import ImageFont

    from hnprog import plotting

    monkeypatch.setattr(plotting, "_font", lambda size: ImageFont.load_default_imagefont())
    ct, pet, mask = _images()
    plot_overlay(ct, pet, mask, tmp_path / "o.png", title="P1\nsecond line")
    assert _colour_mask(_pixels(tmp_path / "o.png"), (255, 0, 0)).any()
