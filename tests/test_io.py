"""Tests of hnprog.io: geometry-preserving NIfTI I/O, clear read errors, atomic writes."""

from __future__ import annotations

import gzip
import os

import numpy as np
import pytest
import SimpleITK as sitk

from hnprog.errors import InputError, PatientError
from hnprog.io import atomic_write, read_image, write_image, write_json


def _image(shape=(6, 7, 8), spacing=(0.9, 1.1, 3.0), origin=(-10.0, 20.0, 5.5)):
    array = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    # a rotation about z by 10 degrees: direction cosines must survive the round trip
    c, s = np.cos(np.deg2rad(10)), np.sin(np.deg2rad(10))
    image.SetDirection((c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0))
    return image


def test_write_then_read_preserves_geometry_and_values(tmp_path):
    image = _image()
    path = tmp_path / "ct.nii.gz"
    write_image(image, path)
    back = read_image(path)
    np.testing.assert_allclose(back.GetSpacing(), image.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(back.GetOrigin(), image.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(back.GetDirection(), image.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
    assert [p.name for p in tmp_path.iterdir()] == ["ct.nii.gz"]  # no temporary left behind


def test_read_missing_file_names_patient_role_and_path(tmp_path):
    with pytest.raises(PatientError, match=r"patient P1: PET file .*pt.nii.gz: file not found"):
        read_image(tmp_path / "pt.nii.gz", patient_id="P1", role="PET")


def test_read_truncated_file_is_a_clear_error(tmp_path):
    path = tmp_path / "ct.nii.gz"
    write_image(_image(shape=(20, 30, 30)), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cannot be read"):
        read_image(path, role="CT")


def test_read_rejects_nan_voxels(tmp_path):
    array = np.zeros((4, 4, 4), np.float32)
    array[1, 2, 3] = np.nan
    path = tmp_path / "pt.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    with pytest.raises(PatientError, match="1 NaN or infinite voxels"):
        read_image(path, patient_id="P2", role="PET")


def test_atomic_write_leaves_old_file_when_interrupted(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as f:
            f.write("new, partial")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.csv"]


def test_write_json_converts_numpy(tmp_path):
    write_json({"c_index": np.float64(0.7), "n": np.int64(3)}, tmp_path / "a.json")
    assert '"c_index": 0.7' in (tmp_path / "a.json").read_text()


def test_atomic_write_rejects_append_mode(tmp_path):
    with pytest.raises(ValueError, match="mode='a'"):
        with atomic_write(tmp_path / "x", mode="a"):
            pass


def test_gzip_garbage_is_reported(tmp_path):
    path = tmp_path / "x.nii.gz"
    path.write_bytes(gzip.compress(b"not a nifti"))
    with pytest.raises(InputError, match=r"image file .*x.nii.gz: (cannot be read|truncated)"):
        read_image(path)


def test_truncated_integer_nifti_is_detected_from_the_gzip_trailer(tmp_path):
    array = np.random.default_rng(0).integers(-1000, 1000, (20, 30, 30)).astype(np.int16)
    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path), True)
    assert read_image(path).GetSize() == (30, 30, 20)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(PatientError, match="patient X: CT file .*truncated"):
        read_image(path, patient_id="X", role="CT")


@pytest.fixture
def umask_027():
    """Run a test under umask 027 and restore the previous umask after it."""
    previous = os.umask(0o027)
    try:
        yield 0o027
    finally:
        os.umask(previous)


def test_written_files_get_the_mode_open_would_give(tmp_path, umask_027):
    """Not mkstemp's 0600: colleagues on a shared server must be able to read results."""
    expected = 0o666 & ~umask_027  # 0o640
    with atomic_write(tmp_path / "risk.csv") as f:
        f.write("patient_id,risk\n")
    write_json({"a": 1}, tmp_path / "report.json")
    write_image(_image(), tmp_path / "mask.nii.gz")  # through atomic_path
    for name in ("risk.csv", "report.json", "mask.nii.gz"):
        assert oct((tmp_path / name).stat().st_mode & 0o777) == oct(expected), name


def test_rewriting_a_file_keeps_its_mode(tmp_path, umask_027):
    target = tmp_path / "risk.csv"
    target.write_text("old")
    target.chmod(0o604)
    with atomic_write(target) as f:
        f.write("new")
    assert target.read_text() == "new"
    assert oct(target.stat().st_mode & 0o777) == oct(0o604)


@pytest.mark.parametrize("pixel_type", [sitk.sitkUInt8, sitk.sitkInt16, sitk.sitkFloat32,
                                        sitk.sitkFloat64])
@pytest.mark.parametrize("direction", [
    (1, 0, 0, 0, 1, 0, 0, 0, 1),
    (-1, 0, 0, 0, -1, 0, 0, 0, 1),  # RAS-stored images, as many scanners write them
    (0.0, 0.0, 1.0, 0.6, 0.8, 0.0, -0.8, 0.6, 0.0),  # oblique, a permutation with a rotation
])
def test_nifti_gz_bytes_equal_simpleitks_own_writer(tmp_path, pixel_type, direction):
    # write_image compresses with ISA-L but must write exactly the NIfTI SimpleITK would.
    rng = np.random.default_rng(0)
    array = rng.normal(40, 30, size=(5, 9, 12))
    image = sitk.Cast(sitk.GetImageFromArray(array), pixel_type)
    image.SetSpacing((0.97, 1.3, 3.27))
    image.SetOrigin((-120.5, 33.25, -500.0))
    image.SetDirection(direction)
    ours, theirs = tmp_path / "ours.nii.gz", tmp_path / "theirs.nii.gz"
    write_image(image, ours)
    sitk.WriteImage(image, str(theirs), True)
    assert gzip.decompress(ours.read_bytes()) == gzip.decompress(theirs.read_bytes())
    back = read_image(ours, pixel_type=pixel_type)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(back),
                                  sitk.GetArrayViewFromImage(image))
    np.testing.assert_allclose(back.GetDirection(), direction, atol=1e-6)


def test_images_nifti_1_cannot_hold_fall_back_to_simpleitk(tmp_path):
    vector = sitk.Image([4, 5, 6], sitk.sitkVectorFloat32, 3)
    write_image(vector, tmp_path / "vector.nii.gz")
    assert sitk.ReadImage(str(tmp_path / "vector.nii.gz")).GetNumberOfComponentsPerPixel() == 3
    flat = sitk.GetImageFromArray(np.ones((5, 6), np.float32))
    write_image(flat, tmp_path / "flat.nii.gz")
    assert sitk.ReadImage(str(tmp_path / "flat.nii.gz")).GetSize() == (6, 5)
    write_image(_image(), tmp_path / "plain.nii", compress=False)
    assert (tmp_path / "plain.nii").read_bytes()[:4] != b"\x1f\x8b"  # not gzip


def test_an_empty_file_is_called_empty(tmp_path):
    path = tmp_path / "CT.nii.gz"
    path.write_bytes(b"")
    with pytest.raises(InputError, match=r"CT file .*CT.nii.gz: empty \(0 bytes\)"):
        read_image(path, role="CT")
