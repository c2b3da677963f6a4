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
