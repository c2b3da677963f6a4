"""Tests of hnprog.metrics against hand-computed values, scikit-survival and lifelines."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sksurv import datasets
from sksurv.metrics import concordance_index_censored

from hnprog.errors import InputError
from hnprog.metrics import concordance_index, dice_score, surface_distances

pytestmark = pytest.mark.backend_independent

SKSURV_DATASETS = [
    "load_whas500",
    "load_veterans_lung_cancer",
    "load_gbsg2",
    "load_aids",
    "load_breast_cancer",
    "load_flchain",
]


def sksurv_cindex(event, time, risk) -> float:
    return concordance_index_censored(np.asarray(event, bool), np.asarray(time, float), risk)[0]


# ------------------------------------------------------------------------ concordance_index


@pytest.mark.parametrize(
    "time, event, risk, expected",
    [
        ([1, 2, 3], [1, 1, 0], [3, 2, 1], 1.0),  # perfect ranking
        ([1, 2, 3], [1, 1, 0], [1, 2, 3], 0.0),  # reversed
        ([1, 2, 3], [1, 1, 0], [5, 5, 5], 0.5),  # all risks tied
        ([2, 2], [1, 0], [1, 0], 1.0),  # censored at the event's time is still at risk
        ([2, 2], [1, 1], [1, 0], float("nan")),  # tied events are not comparable
        ([1, 2, 3, 4], [1, 0, 1, 0], [4, 1, 3, 2], (3 + 1) / 4),  # pairs (0,1..3) and (2,3)
    ],
)
def test_concordance_index_hand_computed(time, event, risk, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        value = concordance_index(event=event, time=time, risk=risk)
    np.testing.assert_equal(value, expected)


@pytest.mark.parametrize("loader", SKSURV_DATASETS)
def test_concordance_index_equals_sksurv_on_its_datasets(loader):
    features, y = getattr(datasets, loader)()
    event_field, time_field = y.dtype.names
    event, time = y[event_field], y[time_field].astype(float)
    numeric = features.select_dtypes("number").dropna(axis=1)
    assert numeric.shape[1] >= 2
    standardised = ((numeric - numeric.mean()) / numeric.std().replace(0, 1)).to_numpy()
    coef = np.random.default_rng(0).normal(size=standardised.shape[1])
    risks = {
        "one column (tied risks)": numeric.iloc[:, 0].to_numpy(float),
        "linear predictor": standardised @ coef,
        "rounded linear predictor (tied risks)": np.round(standardised @ coef, 1),
    }
    for name, risk in risks.items():
        expected = sksurv_cindex(event, time, risk)
        assert concordance_index(event=event, time=time, risk=risk) == pytest.approx(
            expected, abs=1e-12
        ), name


def test_concordance_index_equals_sksurv_on_random_ties():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(2, 30))
        time = rng.integers(0, 5, n).astype(float)  # many tied times, including 0
        event = rng.random(n) < 0.5
        risk = rng.integers(0, 3, n) + rng.choice([0.0, 5e-9], n)  # ties within tied_tol
        if not event.any() or (time[event].min() == time.max() and event.all()):
            continue
        try:
            expected = sksurv_cindex(event, time, risk)
        except Exception:  # sksurv raises when no pair is comparable
            continue
        assert concordance_index(event=event, time=time, risk=risk) == pytest.approx(
            expected, abs=1e-12
        )


def test_concordance_index_equals_lifelines_with_negated_risk():
    pytest.importorskip("lifelines", reason="reference: pip install 'hnprog[reference]'")
    from lifelines.utils import concordance_index as lifelines_cindex

    rng = np.random.default_rng(1)
    time = rng.exponential(500.0, 300).round()
    event = rng.random(300) < 0.3
    risk = rng.normal(size=300)
    expected = lifelines_cindex(time, -risk, event)
    assert concordance_index(event=event, time=time, risk=risk) == pytest.approx(
        expected, abs=1e-12
    )


def test_concordance_index_without_comparable_pair_warns_and_returns_nan():
    with pytest.warns(RuntimeWarning, match="no comparable pair"):
        value = concordance_index(event=[0, 0], time=[1.0, 2.0], risk=[0.3, 0.1])
    assert np.isnan(value)


@pytest.mark.parametrize(
    "time, event, risk, match",
    [
        ([1, 2, 3], [1, 0], [1, 2, 3], r"same length\. Received: len\(event\)=2, len\(time\)=3"),
        ([1, np.nan], [1, 0], [1, 2], r"row 1: time is missing or not finite"),
        ([1, 2], [1, 0], [np.nan, 2], r"risk holds NaN"),
        ([1, -2], [1, 0], [1, 2], r"row 1: time is negative\. Received: time=-2"),
        ([1, 2], [1, 2], [1, 2], r"row 1: event must be 0 or 1"),
        ([[1, 2]], [[1, 0]], [[1, 2]], r"event and time must be 1D"),
        (["a", "b"], [1, 0], [1, 2], r"time must be numeric"),
        ([1, 2], [1, 0], [1, 2, 3], r"risk must have one value per patient"),
    ],
)
def test_concordance_index_rejects_bad_inputs(time, event, risk, match):
    with pytest.raises(InputError, match=match):
        concordance_index(event=event, time=time, risk=risk)


def test_concordance_index_keyword_form_matches_sksurv_argument_order():
    event, time, risk = [True, True, False, True], [5.0, 1.0, 3.0, 8.0], [0.2, 0.9, 0.1, 0.5]
    expected = concordance_index_censored(np.array(event), np.array(time), np.array(risk))[0]
    assert concordance_index(event=event, time=time, risk=risk) == pytest.approx(expected)
    with pytest.raises(TypeError, match="risk"):
        concordance_index(event=event, time=time)


def test_concordance_index_positional_form_is_deprecated_with_the_old_order():
    time, event, risk = [5.0, 1.0, 3.0, 8.0], [1, 1, 0, 1], [0.2, 0.9, 0.1, 0.5]
    expected = concordance_index(event=event, time=time, risk=risk)
    new_form = r"concordance_index\(event=\.\.\., time=\.\.\., risk=\.\.\.\)"
    with pytest.warns(DeprecationWarning, match=new_form):
        assert concordance_index(time, event, risk) == expected
    with pytest.warns(DeprecationWarning):
        assert concordance_index(time, event, risk=risk, tied_tol=1e-8) == expected
    with pytest.raises(TypeError, match="multiple values for argument 'time'"):
        concordance_index(time, time=time, event=event, risk=risk)
    with pytest.raises(TypeError, match="keyword arguments only"):
        concordance_index(time, event, risk, 1e-8)


# ------------------------------------------------------------------------------ dice_score


@pytest.mark.parametrize(
    "pred, truth, expected",
    [
        ([1, 1, 0, 0], [1, 1, 0, 0], 1.0),
        ([1, 1, 0, 0], [1, 0, 0, 0], 2 / 3),
        ([0, 0, 1, 1], [1, 1, 0, 0], 0.0),
        ([0, 0, 0, 0], [1, 1, 0, 0], 0.0),  # empty prediction: 0, as in HECKTOR
        ([1, 0, 0, 0], [0, 0, 0, 0], 0.0),  # empty truth, false positive
        ([0, 0, 0, 0], [0, 0, 0, 0], 1.0),  # both empty: perfect agreement
        ([True, False], [1.0, 0.0], 1.0),  # bool and 0/1 floats mix
    ],
)
def test_dice_score_hand_computed(pred, truth, expected):
    assert dice_score(np.asarray(pred), np.asarray(truth)) == pytest.approx(expected)


def test_dice_score_on_3d_masks_and_empty_score_option():
    truth = np.zeros((8, 8, 8), bool)
    truth[2:6, 2:6, 2:6] = True  # 64 voxels
    pred = np.zeros_like(truth)
    pred[3:7, 2:6, 2:6] = True  # 64 voxels, 48 shared
    assert dice_score(pred, truth) == pytest.approx(2 * 48 / 128)
    assert np.isnan(dice_score(np.zeros(3), np.zeros(3), empty_score=float("nan")))


def test_dice_score_rejects_probabilities_and_shape_mismatch():
    with pytest.raises(InputError, match=r"pred holds values other than 0 and 1.*prob >= 0\.5"):
        dice_score(np.array([0.2, 0.9]), np.array([0, 1]))
    with pytest.raises(InputError, match=r"same shape\. Received: pred\.shape=\(2,\)"):
        dice_score(np.array([0, 1]), np.array([0, 1, 1]))


@pytest.mark.parametrize("n", [1, 2, 3, 8, 31, 64, 257])
def test_prefix_counting_matches_brute_force(n):
    # The wavelet matrix behind concordance_index, against the definition, including the
    # empty and full prefixes and the thresholds 0 and n.
    from hnprog.metrics import _count_prefix_below

    rng = np.random.default_rng(n)
    values = rng.permutation(n)
    prefix = np.concatenate([[0, n, n, 0], rng.integers(0, n + 1, size=100)])
    threshold = np.concatenate([[0, 0, n, n], rng.integers(0, n + 1, size=100)])
    expected = [int((values[:p] < t).sum()) for p, t in zip(prefix, threshold)]
    np.testing.assert_array_equal(_count_prefix_below(values, prefix, threshold), expected)


def _brute_force_surface_distances(a, b, spacing_xyz):
    """Every surface voxel's distance to the nearest surface voxel of the other mask, by a
    k-d tree on the surface coordinates (mm): independent of the distance transform."""
    from scipy import ndimage
    from scipy.spatial import cKDTree

    scale = np.asarray(spacing_xyz, float)[::-1]
    points = [np.argwhere(m & ~ndimage.binary_erosion(m, border_value=0)) * scale
              for m in (a, b)]
    return np.concatenate([cKDTree(points[1]).query(points[0])[0],
                           cKDTree(points[0]).query(points[1])[0]])


def test_surface_distances_against_a_brute_force_reference():
    rng = np.random.default_rng(0)
    zz, yy, xx = np.mgrid[:20, :18, :16]
    a = (zz - 9) ** 2 / 36 + (yy - 8) ** 2 / 25 + (xx - 7) ** 2 / 16 <= 1  # an ellipsoid
    b = ndimage_dilate(a, rng)  # a rough, larger blob around it
    spacing = (0.9, 1.2, 2.5)  # (x, y, z) mm, as SimpleITK
    found = surface_distances(a, b, spacing=spacing)
    reference = _brute_force_surface_distances(a, b, spacing)
    assert found["max_mm"] == pytest.approx(reference.max())
    assert found["mean_mm"] == pytest.approx(reference.mean())
    assert found["hd95_mm"] == pytest.approx(np.percentile(reference, 95))


def ndimage_dilate(mask, rng):
    from scipy import ndimage

    grown = ndimage.binary_dilation(mask, iterations=2)
    return grown & (rng.random(mask.shape) < 0.9) | mask


def test_surface_distances_closed_forms_and_bad_inputs():
    cube = np.zeros((10, 10, 10), bool)
    cube[3:7, 3:7, 3:7] = True
    assert surface_distances(cube, cube) == {"hd95_mm": 0.0, "mean_mm": 0.0, "max_mm": 0.0}
    # moved 2 voxels along x at 1.5 mm: the far faces are 3 mm apart, nothing is farther
    moved = surface_distances(cube, np.roll(cube, 2, axis=2), spacing=(1.5, 1.0, 1.0))
    assert moved["max_mm"] == pytest.approx(3.0) and moved["hd95_mm"] == pytest.approx(3.0)
    empty = np.zeros_like(cube)
    assert surface_distances(empty, empty)["hd95_mm"] == 0.0
    assert np.isnan(surface_distances(cube, empty)["hd95_mm"])
    with pytest.raises(InputError, match="3D masks"):
        surface_distances(cube[0], cube[0])
    with pytest.raises(InputError, match="three positive numbers"):
        surface_distances(cube, cube, spacing=(1.0, 0.0, 1.0))
    with pytest.raises(InputError, match="surface_distances takes binary masks"):
        surface_distances(cube * 0.5, cube)
