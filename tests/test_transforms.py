"""Geometry, intensity and augmentation of hnprog.transforms on tiny synthetic PET/CT cases."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from hnprog.testing.cohorts import BOX, CONFIG, POINT, make_ct, make_mask, make_pet

from hnprog.geometry import BoundingBox, physical_extent
from hnprog.errors import InputError, PatientError
from hnprog.transforms import (
    Augmentation,
    Case,
    Compose,
    CropToBox,
    Grid,
    InvertToReference,
    NormaliseCT,
    NormalisePET,
    PreprocessConfig,
    RandomAugment,
    ResampleToGrid,
    crop_margin,
    invert_to_reference,
    preprocess_case,
)

# POINT (5, -3, 3) mm on the 16^3 grid of 2 mm centred on 0 (origin -15 mm): (z, y, x) index
POINT_INDEX = (9, 6, 10)


def make_case(mask: bool = True, **kwargs) -> Case:
    ct = make_ct()
    images = {"ct": ct, "pet": make_pet(**kwargs)}
    if mask:
        images["mask"] = make_mask(ct)
    return Case(images, box=BOX, patient_id="P1")


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a * b).sum()) / float(a.sum() + b.sum())


def argmax3(volume: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(np.argmax(volume), volume.shape))


def test_point_source_lands_on_same_voxel_in_ct_and_pet():
    # CT at 1x1x3 mm, PET at 4x4x3 mm with another origin and a 90-degree rotated direction
    out = preprocess_case(make_case(), CONFIG)
    assert out.image.shape == (16, 16, 16, 2) and out.image.dtype == np.float32
    assert out.mask.shape == (16, 16, 16) and out.mask.dtype == np.uint8
    assert argmax3(out.image[..., 0]) == POINT_INDEX
    assert argmax3(out.image[..., 1]) == POINT_INDEX
    # the index is where the physical point is on the grid
    physical = [o + i * s for o, i, s in zip(out.grid.origin, POINT_INDEX[::-1], out.grid.spacing)]
    np.testing.assert_allclose(physical, POINT)


def test_grid_is_centred_on_box():
    grid = Grid.from_box(BoundingBox.from_center((10.0, -4.0, 7.5), 144.0), 1.0, 144)
    np.testing.assert_allclose(grid.center, (10.0, -4.0, 7.5))
    assert grid.shape == (144, 144, 144)
    assert Grid.from_dict(grid.to_dict()) == grid


def test_ct_normalisation_maps_window_to_minus_one_one():
    out = preprocess_case(make_case(), CONFIG)
    ct = out.image[..., 0]
    # air (-1000 HU) -> (-1000 + 1024) / 1024 - 1, soft tissue 40 HU -> 40 / 1024
    assert np.isclose(ct.min(), (-1000 + 1024) / 1024 - 1, atol=1e-6)
    assert np.isclose(ct[8, 8, 8], 40 / 1024, atol=1e-6)
    assert ct.max() <= 1.0 and ct.min() >= -1.0


def test_outside_values_are_minus_1024_hu_and_zero_suv():
    far = BoundingBox.from_center((17.0, 0.0, 0.0), 32.0)  # grid sticks out of the CT in +x
    out = preprocess_case(Case(make_case().images, box=far), CONFIG)
    # x > 20 mm is outside the CT: -1024 HU -> -1 after normalisation
    assert np.all(out.image[:, :, -1, 0] == -1.0)
    case = ResampleToGrid(2.0, 16)(Case(make_case().images, box=far))
    pet = sitk.GetArrayFromImage(case.images["pet"])
    assert np.all(pet[:, :, -1] == 0.0)  # beyond the PET's 24 mm half-width


def test_pet_zscore_has_zero_mean_unit_variance():
    out = preprocess_case(make_case(), CONFIG)
    pet = out.image[..., 1].astype(float)
    assert abs(pet.mean()) < 1e-5 and abs(pet.std() - 1.0) < 1e-5


def test_constant_pet_becomes_zeros():
    case = ResampleToGrid(2.0, 16)(make_case(point_value=None))
    pet = sitk.GetArrayFromImage(NormalisePET()(case).images["pet"])
    assert np.all(pet == 0.0)


def test_normalise_ct_keeps_geometry():
    case = make_case()
    out = NormaliseCT((-100.0, 100.0))(case).images["ct"]
    assert out.GetSpacing() == case.images["ct"].GetSpacing()
    assert out.GetOrigin() == case.images["ct"].GetOrigin()
    values = sitk.GetArrayFromImage(out)
    assert values.min() == -1.0 and values.max() == 1.0 and np.isclose(values[10, 20, 20], 0.4)


def test_crop_keeps_physical_positions_and_is_smaller():
    case = make_case()
    cropped = CropToBox(margin=0.0)(Case(case.images, box=BoundingBox.from_center((0, 0, 0), 10.0)))
    ct, ct_full = cropped.images["ct"], case.images["ct"]
    assert np.prod(ct.GetSize()) < np.prod(ct_full.GetSize())
    # the same physical point has the same value in the full and the cropped image
    probe = (1.0, 2.0, 0.0)
    assert (
        ct[ct.TransformPhysicalPointToIndex(probe)]
        == ct_full[ct_full.TransformPhysicalPointToIndex(probe)]
    )
    extent = physical_extent(ct)
    assert np.all(np.asarray(extent.lower) <= -5.0) and np.all(np.asarray(extent.upper) >= 5.0)


def test_crop_then_resample_equals_resample_of_whole_image():
    case = make_case()
    direct = ResampleToGrid(2.0, 16)(case)
    cropped = ResampleToGrid(2.0, 16)(CropToBox(margin=4.0)(case))
    for key in ("ct", "pet", "mask"):
        np.testing.assert_array_equal(
            sitk.GetArrayFromImage(direct.images[key]), sitk.GetArrayFromImage(cropped.images[key])
        )


@pytest.mark.parametrize(
    "augmentation, expected",
    [
        (Augmentation(shift=(1, 0, 0)), (9, 6, 9)),  # grid samples 2 mm further in +x
        (Augmentation(shift=(0, -2, 1)), (8, 8, 10)),
        (Augmentation(mirror=True), (9, 6, 5)),  # x index 10 -> 15 - 10
        (Augmentation(axis=(0.0, 0.0, 1.0), angle=90.0), None),
    ],
    ids=["shift_x", "shift_yz", "mirror", "rotate_90_about_z"],
)
def test_augmentation_moves_point_identically_in_ct_pet(augmentation, expected):
    case = make_case().replace(augmentation=augmentation)
    image, _ = Compose([ResampleToGrid(2.0, 16), NormaliseCT(), NormalisePET()])(case).arrays()
    if expected is None:
        # p_in = R (p - c) + c  =>  p = R^T (POINT - c) + c, c = 0
        p = augmentation.matrix().T @ np.asarray(POINT)
        expected = tuple(int(round((v + 15) / 2)) for v in p[::-1])
    assert argmax3(image[..., 0]) == expected
    assert argmax3(image[..., 1]) == expected


def test_augmentation_applies_same_transform_to_mask():
    case = make_case().replace(augmentation=Augmentation(shift=(2, 1, 0), mirror=True))
    moved = ResampleToGrid(2.0, 16)(case)
    ct = sitk.GetArrayFromImage(moved.images["ct"])
    mask = sitk.GetArrayFromImage(moved.images["mask"])
    # the mask lies inside the soft-tissue ball (40 HU) after the same transform
    assert mask.sum() > 0 and np.all(ct[mask == 1] > 0)


def test_random_augment_is_seeded_and_bounded():
    first = [RandomAugment(30, True, 5.0, seed=3)(make_case()).augmentation for _ in range(2)]
    again = RandomAugment(30, True, 5.0, seed=3)
    assert first[0] == again(make_case()).augmentation
    rng = np.random.default_rng(0)
    draws = [
        Augmentation.sample(rng, max_shift=30, mirror=True, max_rotation=5.0) for _ in range(400)
    ]
    shifts = np.array([d.shift for d in draws])
    assert shifts.min() == -30 and shifts.max() == 30
    assert 0.4 < np.mean([d.mirror for d in draws]) < 0.6
    assert max(abs(d.angle) for d in draws) <= 5.0
    for d in draws[:20]:
        m = d.matrix()
        np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-12)  # rotation (with flip)


def test_preprocess_with_rng_is_reproducible():
    a = preprocess_case(make_case(), CONFIG, rng=np.random.default_rng(7))
    b = preprocess_case(make_case(), CONFIG, rng=np.random.default_rng(7))
    c = preprocess_case(make_case(), CONFIG, rng=np.random.default_rng(8))
    np.testing.assert_array_equal(a.image, b.image)
    assert a.augmentation == b.augmentation != c.augmentation


@pytest.mark.parametrize("seed", [None, 3, 4])
def test_preprocess_case_equals_the_composed_transforms(seed):
    """preprocess_case's fast path (no crop, normalising into the output) is the pipeline."""
    fast = preprocess_case(make_case(), CONFIG, rng=None if seed is None else seed)
    steps = [CropToBox(crop_margin(BOX, CONFIG, 4.0))]
    if seed is not None:
        steps.append(RandomAugment(CONFIG.max_shift, CONFIG.mirror, CONFIG.max_rotation, seed=seed))
    steps += [ResampleToGrid(CONFIG.spacing, CONFIG.crop_size), NormaliseCT(CONFIG.ct_clip),
              NormalisePET()]
    image, mask = Compose(steps)(make_case()).arrays()
    np.testing.assert_array_equal(fast.image, image)
    np.testing.assert_array_equal(fast.mask, mask)


def test_random_augment_after_resample_is_an_error():
    case = ResampleToGrid(2.0, 16)(make_case())
    with pytest.raises(PatientError, match="before ResampleToGrid"):
        RandomAugment(seed=0)(case)


@pytest.mark.parametrize("spacing, size, minimum", [(1.0, 40, 0.95), (2.0, 20, 0.9)])
def test_mask_round_trip_keeps_dice(spacing, size, minimum):
    ct = make_ct()
    mask = make_mask(ct, radius=10.0)
    box = BoundingBox.from_center((0.3, -0.2, 0.4), 40.0)
    case = Case({"ct": ct, "pet": make_pet(), "mask": mask}, box=box)
    out = preprocess_case(case, PreprocessConfig(spacing=spacing, crop_size=size))
    truth = sitk.GetArrayFromImage(mask)
    back = invert_to_reference(out.mask, out.grid, ct, interpolation="nearest")
    assert back.GetSize() == ct.GetSize() and back.GetOrigin() == ct.GetOrigin()
    assert dice(sitk.GetArrayFromImage(back), truth) > minimum
    probability = invert_to_reference(out.mask.astype(np.float32), out.grid, ct)
    assert dice(sitk.GetArrayFromImage(probability) >= 0.5, truth) > minimum


def test_preprocess_case_threads_give_the_serial_arrays(monkeypatch):
    import hnprog.transforms.pipeline as pipeline

    config = PreprocessConfig(spacing=0.5, crop_size=96)
    threaded = preprocess_case(make_case(), config, rng=5)
    monkeypatch.setattr(pipeline, "PARALLEL_MIN_SIZE", 10_000)
    serial = preprocess_case(make_case(), config, rng=5)
    np.testing.assert_array_equal(threaded.image, serial.image)
    np.testing.assert_array_equal(threaded.mask, serial.mask)
    assert threaded.mask.any() and threaded.augmentation == serial.augmentation


@pytest.mark.parametrize("interpolation", ["linear", "nearest"])
@pytest.mark.parametrize("reference", ["ct", "rotated_pet"])
def test_invert_equals_resampling_the_whole_reference(interpolation, reference):
    """invert_to_reference resamples only the block around the grid (linear): the same
    voxels as the plain whole-image resampling, to float32 rounding."""
    out = preprocess_case(make_case(), PreprocessConfig(spacing=1.5, crop_size=16))
    target = make_ct() if reference == "ct" else make_pet()
    nearest = interpolation == "nearest"
    volume = np.random.default_rng(0).random(out.grid.shape).astype(np.float32)
    volume = (volume > 0.5).astype(np.uint8) if nearest else volume
    expected = sitk.Resample(out.grid.image(volume), target, sitk.Transform(),
                             sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear, 0.0,
                             sitk.sitkUInt8 if nearest else sitk.sitkFloat32)
    back = invert_to_reference(volume, out.grid, target, interpolation=interpolation)
    assert back.GetSize() == target.GetSize() and back.GetOrigin() == target.GetOrigin()
    assert back.GetPixelID() == expected.GetPixelID()
    np.testing.assert_allclose(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(expected),
                               rtol=0, atol=1e-6)
    assert sitk.GetArrayFromImage(expected).any()


def test_invert_onto_rotated_pet_grid_and_zero_outside():
    out = preprocess_case(make_case(), CONFIG)
    pet = make_pet()
    ones = np.ones(out.grid.shape, dtype=np.float32)
    back = invert_to_reference(ones, out.grid, pet)
    assert back.GetDirection() == pet.GetDirection()
    values = sitk.GetArrayFromImage(back)
    assert values.max() == 1.0 and values.min() == 0.0  # PET reaches beyond the 32 mm grid
    # the grid maps the point back onto its PET voxel
    spike = np.zeros(out.grid.shape, dtype=np.uint8)
    spike[POINT_INDEX] = 1
    back = invert_to_reference(spike, out.grid, pet, interpolation="nearest")
    assert back[pet.TransformPhysicalPointToIndex(POINT)] == 1


def test_invert_transform_on_case():
    case = Compose([CropToBox(), ResampleToGrid(2.0, 16)])(make_case())
    ct = make_ct()
    inverted = InvertToReference(ct)(case)
    assert inverted.images["mask"].GetSize() == ct.GetSize() and inverted.grid is None


def test_config_round_trip_and_validation():
    config = PreprocessConfig.cpu()
    assert (config.spacing, config.crop_size, config.max_shift) == (2.0, 64, 15)
    assert PreprocessConfig.from_dict(config.to_dict()) == config
    with pytest.raises(InputError, match="spacing must be a positive"):
        PreprocessConfig(spacing=0)
    with pytest.raises(InputError, match="crop_size must be a positive integer"):
        PreprocessConfig(crop_size=1.5)
    with pytest.raises(InputError, match="ct_clip"):
        PreprocessConfig(ct_clip=(100, -100))
    with pytest.raises(InputError, match="unknown preprocessing parameters"):
        PreprocessConfig.from_dict({"spacing": 1.0, "voxel": 2})


def test_invert_rejects_wrong_shape_and_interpolation():
    grid = Grid.from_box(BOX, 2.0, 16)
    with pytest.raises(InputError, match=r"Expected shape \(z, y, x\)=\(16, 16, 16\)"):
        invert_to_reference(np.zeros((8, 8, 8)), grid, make_ct())
    with pytest.raises(InputError, match="interpolation must be"):
        invert_to_reference(np.zeros((16, 16, 16)), grid, make_ct(), interpolation="cubic")


def test_pet_ct_not_overlapping_is_a_patient_error():
    with pytest.raises(PatientError, match="P1.*PET and CT do not overlap"):
        preprocess_case(make_case(shift_mm=500.0), CONFIG)


def test_box_outside_image_is_a_patient_error():
    case = Case(make_case().images, box=BoundingBox.from_center((300, 0, 0), 32), patient_id="P1")
    with pytest.raises(PatientError, match="bounding box .* lies outside the CT image"):
        preprocess_case(case, CONFIG)


def test_case_arrays_before_resampling_is_an_error():
    with pytest.raises(PatientError, match="not on a grid"):
        make_case().arrays()
