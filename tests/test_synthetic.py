"""Tests of the synthetic PET/CT cohort generator (hnprog.data.synthetic)."""

from __future__ import annotations

import csv
import hashlib

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from sksurv.metrics import concordance_index_censored

from hnprog.data import synthetic
from hnprog.data.bbox import read_bboxes
from hnprog.geometry import voxel_centres
from hnprog.data.synthetic import (
    ENDPOINT_COLUMNS,
    TRUTH_COLUMNS,
    generate_cohort,
    oracle_cindex,
    read_truth,
)
from hnprog.errors import InputError

SMALL = 0.5  # image_scale used by the tests: 8 times fewer voxels than the default


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """A 12-patient small-scale cohort shared by the tests of this module."""
    return generate_cohort(tmp_path_factory.mktemp("synth"), n_patients=12, seed=3,
                           image_scale=SMALL)


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_layout_is_hecktor_2021_flat(cohort):
    truth = read_truth(cohort)
    assert len(truth) == 12
    expected = {"endpoints.csv", "bboxes.csv", "truth.csv"}
    for pid in truth.index:
        assert len(pid) == 7 and pid.startswith("SYN") and pid[4:].isdigit()
        expected |= {f"{pid}_ct.nii.gz", f"{pid}_pt.nii.gz", f"{pid}_gtvt.nii.gz"}
    assert {p.name for p in cohort.iterdir()} == expected


def test_csv_columns(cohort):
    with open(cohort / "endpoints.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == ENDPOINT_COLUMNS == (
        "PatientID", "Progression", "Progression free survival"
    )
    assert {r[1] for r in rows[1:]} <= {"0", "1"}
    assert all(int(r[2]) >= 1 for r in rows[1:])
    with open(cohort / "truth.csv", newline="") as f:
        assert tuple(next(csv.reader(f))) == TRUTH_COLUMNS
    truth = read_truth(cohort)
    endpoints = pd.read_csv(cohort / "endpoints.csv", dtype={"PatientID": str}).set_index(
        "PatientID"
    )
    np.testing.assert_array_equal(endpoints["Progression"], truth["event"])
    np.testing.assert_array_equal(endpoints["Progression free survival"], truth["time"])
    assert set(read_bboxes(cohort / "bboxes.csv")) == set(truth.index)


def test_same_seed_gives_identical_files(tmp_path):
    first = generate_cohort(tmp_path / "a", n_patients=2, seed=7, image_scale=0.3)
    second = generate_cohort(tmp_path / "b", n_patients=2, seed=7, image_scale=0.3)
    other = generate_cohort(tmp_path / "c", n_patients=2, seed=8, image_scale=0.3)
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    for name in names:
        assert _digest(first / name) == _digest(second / name), name
    assert _digest(first / "truth.csv") != _digest(other / "truth.csv")


def test_patient_does_not_depend_on_cohort_size(tmp_path):
    small = read_truth(generate_cohort(tmp_path / "a", n_patients=1, seed=5, image_scale=0.3))
    large = read_truth(generate_cohort(tmp_path / "b", n_patients=3, seed=5, image_scale=0.3))
    pd.testing.assert_series_equal(small.iloc[0], large.iloc[0])


def test_parallel_workers_write_the_same_cohort(tmp_path):
    serial = generate_cohort(tmp_path / "a", n_patients=2, seed=1, image_scale=0.3)
    parallel = generate_cohort(tmp_path / "b", n_patients=2, seed=1, image_scale=0.3, n_jobs=2)
    for name in sorted(p.name for p in serial.iterdir()):
        assert _digest(serial / name) == _digest(parallel / name), name


def test_ct_and_pet_grids_differ(cohort):
    for pid in read_truth(cohort).index:
        ct = sitk.ReadImage(str(cohort / f"{pid}_ct.nii.gz"))
        pet = sitk.ReadImage(str(cohort / f"{pid}_pt.nii.gz"))
        mask = sitk.ReadImage(str(cohort / f"{pid}_gtvt.nii.gz"))
        assert ct.GetPixelID() == sitk.sitkInt16
        assert pet.GetPixelID() == sitk.sitkFloat32
        assert mask.GetPixelID() == sitk.sitkUInt8
        assert set(np.unique(sitk.GetArrayViewFromImage(mask))) == {0, 1}
        # mask on the CT grid; PET coarser in-plane, with its own origin
        for attr in ("GetSize", "GetSpacing", "GetOrigin", "GetDirection"):
            assert getattr(mask, attr)() == pytest.approx(getattr(ct, attr)())
        assert pet.GetSpacing()[0] > 3 * ct.GetSpacing()[0]
        assert not np.allclose(pet.GetOrigin(), ct.GetOrigin())


def test_some_images_have_flipped_directions(tmp_path):
    root = generate_cohort(tmp_path, n_patients=10, seed=0, image_scale=0.3)
    directions = set()
    for path in root.glob("*.nii.gz"):
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        directions.add(tuple(np.round(reader.GetDirection(), 6)))
    assert (1, 0, 0, 0, 1, 0, 0, 0, 1) in directions
    assert (-1, 0, 0, 0, -1, 0, 0, 0, 1) in directions


def test_ct_intensities_are_anatomical(cohort):
    pid = read_truth(cohort).index[0]
    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(cohort / f"{pid}_ct.nii.gz")))
    assert ct.min() <= -1000 + 0  # air (noise is clipped at -1024)
    assert abs(np.median(ct[(ct > -200) & (ct < 200)]) - 40) < 30  # soft tissue
    assert np.percentile(ct, 99.9) > 700  # bone
    assert (ct > 1300).mean() < 1e-3


def test_pet_suv_ranges(cohort):
    truth = read_truth(cohort)
    for pid, row in truth.iterrows():
        pet = sitk.ReadImage(str(cohort / f"{pid}_pt.nii.gz"))
        values = sitk.GetArrayFromImage(pet)
        assert values.min() >= 0.0
        # brain in the top of the scan, hot
        top = values[int(values.shape[0] * 0.8):]
        assert 6.0 < np.percentile(top[top > 1], 90) < 14.0
        assert 2.0 < row["suv_max"] <= row["suv_peak"] * 1.3
        assert 5.0 <= row["suv_peak"] <= 25.0


def test_tumour_volume_and_mask_match(cohort):
    truth = read_truth(cohort)
    assert truth["tumour_volume_ml"].between(1.0, 50.0).all()
    for pid, row in truth.iterrows():
        mask = sitk.ReadImage(str(cohort / f"{pid}_gtvt.nii.gz"))
        voxel_ml = np.prod(mask.GetSpacing()) / 1000.0
        volume = sitk.GetArrayViewFromImage(mask).sum() * voxel_ml
        assert volume == pytest.approx(row["tumour_volume_ml"], rel=1e-3)
        # centred where the generator put it (mm)
        centre = voxel_centres(mask, np.nonzero(sitk.GetArrayFromImage(mask))).mean(axis=0)
        expected = row[["tumour_x", "tumour_y", "tumour_z"]].to_numpy(float)
        np.testing.assert_allclose(centre, expected, atol=12)


def test_mask_lies_in_the_hot_region(cohort):
    for pid in read_truth(cohort).index:
        mask = sitk.ReadImage(str(cohort / f"{pid}_gtvt.nii.gz"))
        pet = sitk.ReadImage(str(cohort / f"{pid}_pt.nii.gz"))
        pet_on_ct = sitk.GetArrayFromImage(
            sitk.Resample(pet, mask, sitk.Transform(), sitk.sitkLinear, 0.0)
        )
        inside = sitk.GetArrayFromImage(mask).astype(bool)
        body = (pet_on_ct > 0.5) & (pet_on_ct < 3.0)
        assert np.median(pet_on_ct[inside]) > 3.0 * np.median(pet_on_ct[body]), pid
        assert pet_on_ct[inside].max() > 5.0


def test_log_hazard_follows_the_documented_cox_model(cohort):
    truth = read_truth(cohort)
    # recompute the log-hazard without its noise term: residuals have sd about 0.5
    def z(values, lo, hi):
        return (values - (lo + hi) / 2) / ((hi - lo) / np.sqrt(12))

    volume = np.log(truth["tumour_volume_ml"])
    linear = (
        0.9 * z(volume, np.log(1.5), np.log(45))
        + 0.5 * z(truth["suv_peak"], 6, 25)
        + 0.4 * z(truth["heterogeneity"], 0.1, 0.6)
    )
    residual = truth["log_hazard"] - linear
    assert np.corrcoef(linear, truth["log_hazard"])[0, 1] > 0.7
    assert residual.std() < 0.9


def test_censoring_and_follow_up_as_documented():
    # The outcome model alone, on many patients drawn as generate_cohort draws them.
    rng = np.random.default_rng(0)
    n = 20_000
    draws = synthetic._SurvivalDraws.draw(rng, n)
    log_hazard = synthetic._log_hazard(
        rng.uniform(np.log(1.5), np.log(45), n),
        rng.uniform(6, 25, n),
        rng.uniform(0.1, 0.6, n),
        draws.noise,
    )
    event_time, censoring_time = draws.outcome(log_hazard, synthetic._baseline_rate(0.8))
    event = event_time <= censoring_time
    time = np.minimum(event_time, censoring_time)
    assert 1 - event.mean() == pytest.approx(0.8, abs=0.015)
    assert time.mean() == pytest.approx(1200, abs=60)
    c = concordance_index_censored(event[:4000], time[:4000], log_hazard[:4000])[0]
    assert 0.75 < c < 0.82
    # a lower censored share is honoured too
    event_time, censoring_time = draws.outcome(log_hazard, synthetic._baseline_rate(0.5))
    assert (event_time > censoring_time).mean() == pytest.approx(0.5, abs=0.015)


def test_cohort_censoring_and_oracle(tmp_path):
    # 40 tiny patients: the censored share is about 80% and the true risk ranks well
    root = generate_cohort(tmp_path, n_patients=40, seed=0, image_scale=0.25)
    truth = read_truth(root)
    assert 0.6 <= 1 - truth["event"].mean() <= 0.95
    assert 700 < truth["time"].mean() < 1700
    oracle = oracle_cindex(root)
    assert oracle > 0.6
    reference = concordance_index_censored(
        truth["event"].astype(bool), truth["time"].astype(float), truth["log_hazard"]
    )[0]
    assert oracle == reference
    assert oracle_cindex(truth) == oracle == oracle_cindex(root / "truth.csv")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_patients": 0}, "n_patients must be an int >= 1. Received: n_patients=0"),
        ({"seed": -1}, "seed must be an int >= 0"),
        ({"n_centres": 27}, "n_centres must be in 1-26"),
        ({"censoring": 1.0}, r"censoring must be in \(0, 1\)"),
        ({"image_scale": 0.1}, r"image_scale must be in \[0.25, 2\]"),
        ({"n_jobs": 0}, "n_jobs must be an int >= 1"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(InputError, match=match):
        generate_cohort(tmp_path, **kwargs)


def test_missing_or_incomplete_truth(tmp_path):
    with pytest.raises(InputError, match="truth.csv: file not found"):
        read_truth(tmp_path)
    (tmp_path / "truth.csv").write_text("PatientID,log_hazard\nSYNA001,0.3\n")
    with pytest.raises(InputError, match="missing columns"):
        oracle_cindex(tmp_path)
    censored = pd.DataFrame({"event": [0, 0], "time": [10, 20], "log_hazard": [0.1, 0.2]})
    with pytest.raises(InputError, match="no event"):
        oracle_cindex(censored)


def test_outcomes_do_not_depend_on_image_scale(tmp_path):
    coarse = read_truth(generate_cohort(tmp_path / "a", n_patients=3, seed=2, image_scale=0.25))
    fine = read_truth(generate_cohort(tmp_path / "b", n_patients=3, seed=2, image_scale=0.3))
    columns = ["centre", "log_hazard", "event", "time", "suv_peak", "heterogeneity", "necrosis"]
    pd.testing.assert_frame_equal(coarse[columns], fine[columns])


def test_cli_synth(tmp_path):
    from click.testing import CliRunner

    from hnprog.cli import main

    result = CliRunner().invoke(main, ["synth", str(tmp_path), "-n", "2", "--seed", "4",
                                       "--scale", "0.3"])
    assert result.exit_code == 0, result.output
    assert f"2 synthetic patients in {tmp_path}" in result.output
    assert len(read_truth(tmp_path)) == 2
    result = CliRunner().invoke(main, ["synth", str(tmp_path), "--patients", "0"])
    assert result.exit_code == 2
    assert "0 is not in the range x>=1" in result.output


def test_cli_synth_of_one_patient_has_no_oracle(tmp_path):
    from click.testing import CliRunner

    from hnprog.cli import main

    result = CliRunner().invoke(main, ["synth", str(tmp_path), "-n", "1", "--scale", "0.3"])
    assert result.exit_code == 0, result.output
    assert "oracle C-index undefined (one patient)" in result.output
    with pytest.raises(InputError, match="at least 2"):
        oracle_cindex(read_truth(tmp_path))
