"""Native-grid PET measures (SUVmax, SUVpeak, MTV, TLG) against closed forms on tiny images."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk

from hnprog.errors import InputError, PatientError
from hnprog.radiomics.features import (
    SUVPEAK_RADIUS_MM,
    extract_features,
    native_pet_features,
    suvpeak_kernel,
)
from hnprog.radiomics.params import NATIVE_PET_FEATURES, feature_names, load_params
from hnprog.transforms import Case


def image(array: np.ndarray, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0)) -> sitk.Image:
    out = sitk.GetImageFromArray(array)
    out.SetSpacing(tuple(float(s) for s in spacing))
    out.SetOrigin(tuple(float(o) for o in origin))
    return out


def sphere(n: int, radius_vox: float) -> np.ndarray:
    z, y, x = np.mgrid[:n, :n, :n] - (n - 1) / 2
    return x**2 + y**2 + z**2 <= radius_vox**2


def test_uniform_sphere_gives_the_closed_forms():
    inside = sphere(41, 10.0)  # radius 10 mm at 1 mm
    pet = image(np.where(inside, 8.0, 1.0).astype(np.float32))
    mask = image(inside.astype(np.uint8))
    features = native_pet_features(pet, mask)
    assert list(features) == list(NATIVE_PET_FEATURES)
    volume_ml = 4.0 / 3.0 * math.pi * 10.0**3 / 1000.0
    assert features["PET_native_SUVmax"] == 8.0
    assert features["PET_native_SUVpeak_1mL"] == pytest.approx(8.0, rel=0.01)
    for threshold in ("SUV2.5", "41pct"):  # 2.5 and 3.28 both select exactly the sphere
        mtv = features[f"PET_native_MTV_{threshold}_mL"]
        assert mtv == pytest.approx(volume_ml, rel=0.05)
        assert mtv == pytest.approx(inside.sum() / 1000.0)
        assert features[f"PET_native_TLG_{threshold}"] == pytest.approx(mtv * 8.0)


def test_single_hot_voxel_has_a_low_suvpeak():
    values = np.ones((21, 21, 21), np.float32)
    values[10, 10, 10] = 100.0
    mask = np.zeros(values.shape, np.uint8)
    mask[8:13, 8:13, 8:13] = 1
    features = native_pet_features(image(values), image(mask))
    n = int((suvpeak_kernel((1.0, 1.0, 1.0)) > 0).sum())  # voxels of the 1 mL sphere
    assert features["PET_native_SUVmax"] == 100.0
    assert features["PET_native_SUVpeak_1mL"] == pytest.approx((100.0 + n - 1) / n)
    assert features["PET_native_SUVpeak_1mL"] < 0.05 * features["PET_native_SUVmax"]
    # 41% of 100: the hot voxel alone; SUV >= 2.5: the hot voxel alone too
    assert features["PET_native_MTV_41pct_mL"] == pytest.approx(0.001)
    assert features["PET_native_TLG_41pct"] == pytest.approx(0.1)
    assert features["PET_native_MTV_SUV2.5_mL"] == pytest.approx(0.001)


def test_nothing_above_2p5_gives_zero_mtv_and_tlg():
    values = np.full((9, 9, 9), 2.0, np.float32)
    mask = np.zeros(values.shape, np.uint8)
    mask[3:6, 3:6, 3:6] = 1
    features = native_pet_features(image(values), image(mask))
    assert features["PET_native_MTV_SUV2.5_mL"] == 0.0 and features["PET_native_TLG_SUV2.5"] == 0.0
    assert features["PET_native_MTV_41pct_mL"] == pytest.approx(27 / 1000.0)


def test_suvpeak_kernel_is_a_normalised_sphere_of_about_1ml():
    for spacing in ((1.0, 1.0, 1.0), (4.0, 4.0, 3.0), (2.0, 2.0, 2.0)):
        kernel = suvpeak_kernel(spacing)
        assert kernel.sum() == pytest.approx(1.0)
        assert all(size % 2 == 1 for size in kernel.shape)
    volume = (suvpeak_kernel((1.0, 1.0, 1.0)) > 0).sum() / 1000.0  # 1 mm voxels: mL
    assert volume == pytest.approx(1.0, rel=0.03)
    assert SUVPEAK_RADIUS_MM == pytest.approx(6.2035, abs=1e-3)
    # (z, y, x) = (3, 4, 4) mm: the centre, 6 faces, the 4 in-plane diagonals and 2 x 4
    # plane-to-plane edges within 6.2 mm, no corner (6.4 mm)
    kernel = suvpeak_kernel((4.0, 4.0, 3.0))
    assert kernel.shape == (5, 3, 3)  # z reaches 2 x 3 = 6 mm
    assert int((kernel > 0).sum()) == 1 + 6 + 4 + 8 + 2


def test_fine_mask_on_a_coarse_pet_uses_the_pet_voxels_in_the_mapped_mask():
    rng = np.random.default_rng(0)
    pet_values = rng.uniform(1.0, 10.0, size=(12, 12, 12)).astype(np.float32)
    pet = image(pet_values, spacing=(4.0, 4.0, 4.0), origin=(-2.0, -2.0, -2.0))
    inside = sphere(31, 9.0)
    mask = image(inside.astype(np.uint8), origin=(6.3, 7.1, 5.6))  # 1 mm grid, off the PET's
    mapped = sitk.GetArrayFromImage(
        sitk.Resample(mask, pet, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    ).astype(bool)
    # the same mapping written out: a PET voxel centre -> the nearest mask index
    zyx = np.stack(np.meshgrid(*(np.arange(12),) * 3, indexing="ij"), -1).reshape(-1, 3)
    centre_xyz = -2.0 + 4.0 * zyx[:, ::-1]
    index = np.rint(centre_xyz - np.array([6.3, 7.1, 5.6])).astype(int)
    ok = np.all((index >= 0) & (index < 31), axis=1)
    expected = np.zeros(len(zyx), bool)
    expected[ok] = inside[index[ok, 2], index[ok, 1], index[ok, 0]]
    assert np.array_equal(expected.reshape(12, 12, 12), mapped) and mapped.sum() > 10
    features = native_pet_features(pet, mask)
    assert features["PET_native_SUVmax"] == pytest.approx(float(pet_values[mapped].max()))
    assert features["PET_native_MTV_41pct_mL"] == pytest.approx(
        (pet_values[mapped] >= 0.41 * pet_values[mapped].max()).sum() * 0.064
    )


def test_mask_smaller_than_a_pet_voxel_uses_the_voxel_that_holds_it():
    pet_values = np.ones((8, 8, 8), np.float32)
    pet_values[3, 4, 5] = 6.0
    pet = image(pet_values, spacing=(4.0, 4.0, 4.0))
    mask_values = np.zeros((4, 4, 4), np.uint8)
    mask_values[1, 1, 1] = mask_values[1, 1, 2] = 1  # two 1 mm voxels between PET centres
    mask = image(mask_values, origin=(4 * 5 + 0.4, 4 * 4 - 0.6, 4 * 3 - 0.6))
    features = native_pet_features(pet, mask)
    assert features["PET_native_SUVmax"] == 6.0


def test_empty_or_outside_mask_is_a_patient_error():
    pet = image(np.ones((8, 8, 8), np.float32), spacing=(4.0, 4.0, 4.0))
    with pytest.raises(PatientError, match="empty"):
        native_pet_features(pet, image(np.zeros((4, 4, 4), np.uint8)), patient_id="P1")
    far = image(np.ones((4, 4, 4), np.uint8), origin=(500.0, 500.0, 500.0))
    with pytest.raises(PatientError, match="PET"):
        native_pet_features(pet, far, patient_id="P1")


def test_firstorder_maximum_is_below_the_native_suvmax_when_resampling_lowers_it():
    rng = np.random.default_rng(1)
    ct = image(rng.normal(-50.0, 20.0, size=(40, 40, 40)).astype(np.float32))
    pet_values = np.ones((10, 10, 10), np.float32)
    pet_values[5, 5, 5] = 20.0  # one hot 4 mm voxel, centre at 21 mm (origin 1 mm)
    pet_values[4:7, 4:7, 4:7] += 2.0
    pet = image(pet_values, spacing=(4.0, 4.0, 4.0), origin=(1.0, 1.0, 1.0))
    mask = image(sphere(40, 7.0).astype(np.uint8))  # 1 mm, centred at 19.5 mm
    features = extract_features(Case({"ct": ct, "pet": pet, "mask": mask}, patient_id="P1"))
    assert features["PET_native_SUVmax"] == pytest.approx(22.0)
    assert features["PET_bw1_firstorder_Maximum"] < features["PET_native_SUVmax"] - 1.0
    assert list(features) == feature_names()


def test_params_switch_the_native_features_off():
    names = feature_names()
    assert len(names) == 280 and names[-6:] == list(NATIVE_PET_FEATURES)
    params = load_params()
    assert params["native_pet"] is True
    params["native_pet"] = False
    assert feature_names(params) == names[:274]
    with pytest.raises(InputError, match="native_pet"):
        load_params({**params, "native_pet": "yes"})
