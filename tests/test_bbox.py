"""Tests of the automatic oropharynx box (auto_bbox) and the box geometry helpers."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from hnprog.data.bbox import auto_bbox, brain_problems, read_bboxes
from hnprog.geometry import BoundingBox, physical_extent, voxel_centres
from hnprog.data.synthetic import generate_cohort, read_truth
from hnprog.errors import InputError, PatientError

SPACING = (4.0, 4.0, 3.0)
ORIGIN = (-100.0, -120.0, -10.0)


def _phantom(shape_zyx=(90, 60, 50), brain=True, bottom_blob=False) -> sitk.Image:
    """A PET (SUV) of background 1 with a 'brain' block of SUV 10 at the top.

    Brain voxels: z index 70-84, y index 10-49, x index 8-41 (on a 4x4x3 mm grid: a block of
    136 x 160 x 45 mm, 0.98 L, as wide and deep as an adult brain).
    """
    values = np.ones(shape_zyx, np.float32)
    if brain:
        values[70:85, 10:50, 8:42] = 10.0
    if bottom_blob:  # larger and hotter, but in the lower two thirds (bladder-like)
        values[5:40, 5:55, 5:45] = 20.0
    image = sitk.GetImageFromArray(values)
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    return image


def _physical(index_xyz) -> np.ndarray:
    return np.asarray(ORIGIN) + np.asarray(SPACING) * np.asarray(index_xyz, float)


def _resample_onto(image: sitk.Image, direction, origin, size) -> sitk.Image:
    """The same physical content stored on another grid (nearest neighbour, exact here)."""
    reference = sitk.Image(size, sitk.sitkFloat32)
    reference.SetSpacing(image.GetSpacing())
    reference.SetDirection(direction)
    reference.SetOrigin(origin)
    return sitk.Resample(image, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 1.0)


def test_box_follows_the_baseline_recipe():
    box = auto_bbox(_phantom())
    assert box.size == pytest.approx((144.0, 144.0, 144.0))
    low = _physical((8, 10, 70))  # lowest, most left/anterior brain voxel centre
    high = _physical((41, 49, 84))
    # x: centred on the brain; y: centred then 30 mm anterior (-y in LPS)
    assert box.center[0] == pytest.approx((low[0] + high[0]) / 2)
    assert box.center[1] == pytest.approx((low[1] + high[1]) / 2 - 30.0)
    # z: 114 mm below to 30 mm above the lowest brain slice; smoothing (sigma 3 voxels)
    # lets the thresholded brain reach at most 2 slices lower than the block itself
    assert low[2] - 2 * SPACING[2] - 114.0 <= box.z1 <= low[2] - 114.0
    assert box.z2 == pytest.approx(box.z1 + 144.0)


def test_brain_is_taken_from_the_top_third():
    assert auto_bbox(_phantom(bottom_blob=True)) == auto_bbox(_phantom())


@pytest.mark.parametrize(
    "direction",
    [
        (-1, 0, 0, 0, -1, 0, 0, 0, 1),  # x and y flipped (RAS-stored NIfTI)
        (0, -1, 0, 1, 0, 0, 0, 0, 1),  # rotated 90 degrees about z
        (1, 0, 0, 0, 1, 0, 0, 0, -1),  # slices stored from the top down
    ],
)
def test_box_is_the_same_whatever_the_direction_cosines(direction):
    image = _phantom()
    extent = physical_extent(image)
    # the new grid covers the same physical region: voxel 0 sits in the corner that each
    # index axis walks away from (in-plane spacing is isotropic, so rotations keep it)
    matrix = np.asarray(direction, float).reshape(3, 3)
    size = np.abs(matrix.T @ np.asarray(image.GetSize(), float)).round().astype(int)
    span = matrix @ (np.asarray(SPACING) * (size - 1))
    half = np.asarray(SPACING) / 2
    origin = np.where(span < 0, np.asarray(extent.upper) - half, np.asarray(extent.lower) + half)
    moved = _resample_onto(image, direction, origin.tolist(), [int(v) for v in size])
    assert moved.GetDirection() == pytest.approx(direction)
    np.testing.assert_allclose(
        list(physical_extent(moved).to_dict().values()), list(extent.to_dict().values())
    )
    box, reference = auto_bbox(moved), auto_bbox(image)
    np.testing.assert_allclose(
        list(box.to_dict().values()), list(reference.to_dict().values()), atol=1e-3
    )


def test_box_is_clamped_to_the_image():
    # a brain reaching below the top third of a short scan: the cube would stick out below
    values = np.ones((60, 60, 50), np.float32)
    values[35:60, 10:50, 8:42] = 10.0
    image = sitk.GetImageFromArray(values)
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    box = auto_bbox(image)
    extent = physical_extent(image)
    assert box.size == pytest.approx((144.0, 144.0, 144.0))
    assert box.z1 == pytest.approx(extent.z1)  # moved up, not cut
    assert extent.x1 <= box.x1 and box.x2 <= extent.x2


def test_no_brain_is_a_patient_error():
    with pytest.raises(PatientError, match=r"patient CHGJ007: no PET uptake above SUV 3"):
        auto_bbox(_phantom(brain=False), patient_id="CHGJ007")
    with pytest.raises(InputError, match="the brain cannot be found") as error:
        auto_bbox(_phantom(brain=False))
    # the hint names the fix for a cohort and for one pair, in the format --bbox parses
    assert "bboxes.csv" in str(error.value)
    assert "--bbox x1,x2,y1,y2,z1,z2 (mm) for hnprog predict --ct/--pet" in str(error.value)
    with pytest.raises(InputError, match="size must be positive. Received: size=0"):
        auto_bbox(_phantom(), size=0)


def _limb_scan(seed: int) -> sitk.Image:
    """A PET of a thigh (a 150 mm cylinder, SUV 0.7) with a hot sarcoma in the top third.

    Tumour diameters 30 to 110 mm, SUV 5 to 15, a necrotic core when larger than 60 mm: the
    scans for which the brain-less box search used to take the tumour for the brain.
    """
    rng = np.random.default_rng(seed)
    spacing = 4.0
    z, y, x = np.meshgrid(*[np.arange(n) * spacing for n in (100, 50, 50)], indexing="ij")
    x, y = x - 100.0, y - 100.0
    values = np.where(x**2 + y**2 < 75.0**2, 0.7, 0.02).astype(np.float32)
    semi = rng.uniform(15, 55) * rng.uniform(0.85, 1.15, 3)
    centre = (rng.uniform(-25, 25), rng.uniform(-25, 25), rng.uniform(290, 350))
    r = np.sqrt(sum(((c - m) / a) ** 2 for c, m, a in zip((x, y, z), centre, semi)))
    values[r < 1] = rng.uniform(5, 15)
    if semi.mean() > 30:
        values[r < 0.5] = 1.0
    image = sitk.GetImageFromArray(values)
    image.SetSpacing((spacing,) * 3)
    return image


@pytest.mark.parametrize("seed", range(10))
def test_a_limb_scan_is_refused_not_boxed(seed):
    with pytest.raises(PatientError, match=r"patient STS-01: the hottest region .* does not "
                       r"look like a brain: .*Is this a head-and-neck PET") as error:
        auto_bbox(_limb_scan(seed), patient_id="STS-01")
    assert "--bbox x1,x2,y1,y2,z1,z2 (mm)" in str(error.value)


def test_a_scan_that_starts_mid_brain_is_still_boxed():
    values = np.ones((90, 60, 50), np.float32)
    values[70:90, 10:50, 8:42] = 10.0  # the brain runs out of the top of the scan
    image = sitk.GetImageFromArray(values)
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    assert auto_bbox(image).size == pytest.approx((144.0, 144.0, 144.0))


def test_brain_problems_name_each_measure():
    spacing = np.array([4.0, 4.0, 4.0])
    slab = np.stack(np.meshgrid(np.arange(0.0, 400.0, 4.0), np.arange(0.0, 40.0, 4.0),
                                np.arange(0.0, 40.0, 4.0), indexing="ij"), -1).reshape(-1, 3)
    problems = brain_problems(slab, spacing, scan_top=40.0)  # 400 x 40 x 40 mm, 0.64 L
    assert problems == ["400 mm left-right (a brain: 110 to 230 mm)",
                        "40 mm anterior-posterior (a brain: 120 to 250 mm)"]
    low = brain_problems(slab[:, [1, 2, 0]], spacing, scan_top=798.0)
    assert "its top lies 400 mm below the top of the scan (a brain: at most 80 mm)" in low
    assert "400 mm high (a brain: 30 to 220 mm)" in low


def test_voxel_centres_match_simpleitk():
    image = sitk.Image((7, 5, 4), sitk.sitkFloat32)
    image.SetSpacing((0.8, 1.3, 2.5))
    image.SetOrigin((10.0, -4.0, 7.0))
    angle = np.deg2rad(20)
    image.SetDirection(
        (np.cos(angle), -np.sin(angle), 0, np.sin(angle), np.cos(angle), 0, 0, 0, -1)
    )
    index = np.nonzero(np.ones((4, 5, 7), bool))  # (z, y, x)
    points = voxel_centres(image, index)
    expected = [
        image.TransformIndexToPhysicalPoint((int(x), int(y), int(z))) for z, y, x in zip(*index)
    ]
    np.testing.assert_allclose(points, expected, atol=1e-9)


def test_physical_extent_of_a_flipped_image():
    image = sitk.Image((10, 20, 5), sitk.sitkUInt8)
    image.SetSpacing((2.0, 1.0, 3.0))
    image.SetOrigin((0.0, 0.0, 0.0))
    image.SetDirection((-1, 0, 0, 0, 1, 0, 0, 0, 1))
    extent = physical_extent(image)
    assert extent == BoundingBox(-19.0, 1.0, -0.5, 19.5, -1.5, 13.5)


def test_shifted_inside():
    extent = BoundingBox(0, 100, 0, 300, 0, 50)
    box = BoundingBox(-10, 40, 270, 320, 10, 70).shifted_inside(extent)
    # x moved right by 10, y moved down by 20, z too long: centred on the extent
    assert box == BoundingBox(0, 50, 250, 300, -5, 55)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return generate_cohort(tmp_path_factory.mktemp("synth"), n_patients=24, seed=11,
                           image_scale=0.5)


def test_auto_box_contains_the_whole_gtvt_for_95_percent(cohort):
    truth = read_truth(cohort)
    assert len(truth) >= 20
    contained = []
    for pid in truth.index:
        pet = sitk.ReadImage(str(cohort / f"{pid}_pt.nii.gz"))
        mask = sitk.ReadImage(str(cohort / f"{pid}_gtvt.nii.gz"))
        box = auto_bbox(pet, patient_id=pid)
        points = voxel_centres(mask, np.nonzero(sitk.GetArrayViewFromImage(mask)))
        inside = (points >= np.asarray(box.lower)) & (points <= np.asarray(box.upper))
        contained.append(bool(inside.all()))
    assert np.mean(contained) >= 0.95, dict(zip(truth.index, contained))


def test_given_boxes_contain_the_gtvt(cohort):
    boxes = read_bboxes(cohort / "bboxes.csv")
    for pid, box in boxes.items():
        mask = sitk.ReadImage(str(cohort / f"{pid}_gtvt.nii.gz"))
        points = voxel_centres(mask, np.nonzero(sitk.GetArrayViewFromImage(mask)))
        assert box.size == pytest.approx((144.0, 144.0, 144.0))
        assert ((points >= np.asarray(box.lower)) & (points <= np.asarray(box.upper))).all()


def test_grid_covering_a_box_with_flipped_axes():
    from hnprog.geometry import Grid

    grid = Grid.covering((0.0, 0.0, 0.0), (4, 2, 3), (1.0, 2.0, 3.0), signs=(1, -1, 1))
    extent = physical_extent(grid.image(np.zeros(grid.shape, np.float32)))
    assert extent.to_dict() == {"x1": 0.0, "x2": 4.0, "y1": 0.0, "y2": 4.0, "z1": 0.0, "z2": 9.0}
    np.testing.assert_allclose(grid.coordinates(1), [3.0, 1.0])  # y runs down
    (zs, ys, xs), (x, y, z) = grid.window((0.9, 0.0, 0.0), (2.6, 1.5, 9.0))
    assert (xs, ys, zs) == (slice(1, 3), slice(1, 2), slice(0, 3))
    np.testing.assert_allclose(x.ravel(), [1.5, 2.5])
    assert grid.window((10.0, 0.0, 0.0), (11.0, 1.0, 1.0)) is None
