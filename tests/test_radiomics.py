"""Tests of the radiomics baseline: feature extraction, the Cox pipeline, CV and the CLI."""

from __future__ import annotations

import functools
import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from click.testing import CliRunner

from hnprog.cli import main
from hnprog.data.cohort import Patient
from hnprog.errors import InputError, PatientError
from hnprog.geometry import crop_to_box, physical_extent
from hnprog.io import write_image
from hnprog.radiomics import cohort as cohort_module
from hnprog.radiomics.baseline import RadiomicsCoxPipeline
from hnprog.radiomics.cohort import (
    extract_cohort_features,
    extract_patient,
    read_features,
)
from hnprog.radiomics.cv import run_radiomics_cv
from hnprog.radiomics.features import crop_and_resample, extract_features, read_case
from hnprog.radiomics.params import NATIVE_PET_FEATURES, feature_names, load_params
from hnprog.survival import make_survival_y
from hnprog.transforms import Case

# PyRadiomics 3.1 non-deprecated features, written out here as an independent reference.
FIRSTORDER = """10Percentile 90Percentile Energy Entropy InterquartileRange Kurtosis Maximum
MeanAbsoluteDeviation Mean Median Minimum Range RobustMeanAbsoluteDeviation RootMeanSquared
Skewness TotalEnergy Uniformity Variance""".split()
GLCM = """Autocorrelation ClusterProminence ClusterShade ClusterTendency Contrast Correlation
DifferenceAverage DifferenceEntropy DifferenceVariance Id Idm Idmn Idn Imc1 Imc2 InverseVariance
JointAverage JointEnergy JointEntropy MCC MaximumProbability SumAverage SumEntropy
SumSquares""".split()
GLRLM = """GrayLevelNonUniformity GrayLevelNonUniformityNormalized GrayLevelVariance
HighGrayLevelRunEmphasis LongRunEmphasis LongRunHighGrayLevelEmphasis LongRunLowGrayLevelEmphasis
LowGrayLevelRunEmphasis RunEntropy RunLengthNonUniformity RunLengthNonUniformityNormalized
RunPercentage RunVariance ShortRunEmphasis ShortRunHighGrayLevelEmphasis
ShortRunLowGrayLevelEmphasis""".split()
GLSZM = """GrayLevelNonUniformity GrayLevelNonUniformityNormalized GrayLevelVariance
HighGrayLevelZoneEmphasis LargeAreaEmphasis LargeAreaHighGrayLevelEmphasis
LargeAreaLowGrayLevelEmphasis LowGrayLevelZoneEmphasis SizeZoneNonUniformity
SizeZoneNonUniformityNormalized SmallAreaEmphasis SmallAreaHighGrayLevelEmphasis
SmallAreaLowGrayLevelEmphasis ZoneEntropy ZonePercentage ZoneVariance""".split()
SHAPE = """Elongation Flatness LeastAxisLength MajorAxisLength Maximum2DDiameterColumn
Maximum2DDiameterRow Maximum2DDiameterSlice Maximum3DDiameter MeshVolume MinorAxisLength
Sphericity SurfaceArea SurfaceVolumeRatio VoxelVolume""".split()


# ---------------------------------------------------------------------------------------------
# Small PET/CT cases: CT 1 x 1 x 3 mm, PET 4 x 4 x 3 mm on a different origin, GTVt on the CT grid.

CENTRE_MM = (24.0, 24.0, 21.0)
PET_SLOPE = 0.1  # SUV per mm along x: linear interpolation reproduces it exactly


def make_case(
    radius_mm: float = 9.0, centre_mm: tuple[float, float, float] = CENTRE_MM, seed: int = 0
) -> tuple[sitk.Image, sitk.Image, sitk.Image]:
    rng = np.random.default_rng(seed)
    ct_values = rng.normal(40.0, 20.0, size=(15, 48, 48)).astype(np.float32)
    ct_values[:, :3, :] = -1000.0  # air in front of the patient, as in every real CT (HU check)
    ct = sitk.GetImageFromArray(ct_values)
    ct.SetSpacing((1.0, 1.0, 3.0))
    z, y, x = np.mgrid[:15, :48, :48]
    inside = (
        (x - centre_mm[0]) ** 2 + (y - centre_mm[1]) ** 2 + (3.0 * z - centre_mm[2]) ** 2
        <= radius_mm**2
    )
    mask = sitk.GetImageFromArray(inside.astype(np.uint8))
    mask.CopyInformation(ct)
    pet_origin = (-2.0, -2.0, 0.0)
    pz, py, px = np.mgrid[:15, :14, :14]
    pet_x_mm = pet_origin[0] + 4.0 * px
    pet_values = 2.0 + PET_SLOPE * pet_x_mm + 0.0 * py + 0.0 * pz
    pet = sitk.GetImageFromArray(pet_values.astype(np.float32))
    pet.SetSpacing((4.0, 4.0, 3.0))
    pet.SetOrigin(pet_origin)
    return ct, pet, mask


def as_case(ct: sitk.Image, pet: sitk.Image, mask: sitk.Image, patient_id: str) -> Case:
    return Case({"ct": ct, "pet": pet, "mask": mask}, patient_id=patient_id)


def test_feature_names_are_the_papers_274_then_the_native_pet_measures():
    names = feature_names()
    assert len(names) == 280 and len(set(names)) == 280
    assert names[274:] == list(NATIVE_PET_FEATURES)
    names = names[:274]
    expected = [f"shape_{f}" for f in sorted(SHAPE)]
    texture = {"glcm": GLCM, "glrlm": GLRLM, "glszm": GLSZM}
    for modality, fixed_size, fixed_number in (("CT", "bw50", "bc64"), ("PET", "bw1", "bc8")):
        for prefix, classes in (
            (f"{modality}_{fixed_size}", {"firstorder": FIRSTORDER, **texture}),
            (f"{modality}_{fixed_number}", texture),
        ):
            for class_name, features in classes.items():
                expected += [f"{prefix}_{class_name}_{f}" for f in sorted(features)]
    assert names == expected
    assert (len(FIRSTORDER), len(GLCM), len(GLRLM), len(GLSZM), len(SHAPE)) == (18, 24, 16, 16, 14)


def test_params_file_holds_the_papers_discretisations():
    params = load_params()
    settings = {run["prefix"]: run["setting"] for run in params["runs"]}
    assert settings["CT_bw50"] == {"binWidth": 50}
    assert settings["CT_bc64"] == {"binCount": 64}
    assert settings["PET_bw1"] == {"binWidth": 1}
    assert settings["PET_bc8"] == {"binCount": 8}
    assert params["resampling"]["spacing"] == [2.0, 2.0, 2.0]


def test_crop_and_resample_gives_a_small_2mm_grid_around_the_mask():
    ct, pet, mask = make_case()
    ct2, pet2, mask2 = crop_and_resample(ct, pet, mask, margin=3)
    for image in (ct2, pet2, mask2):
        assert image.GetSpacing() == (2.0, 2.0, 2.0)
        assert image.GetSize() == mask2.GetSize()
        assert image.GetOrigin() == mask2.GetOrigin()
    # a 19 mm wide tumour (+ the partial voxel edges) at 2 mm plus 2 x 3 margin voxels
    assert all(size <= 19 // 2 + 2 + 6 for size in mask2.GetSize())
    values = sitk.GetArrayFromImage(mask2)
    assert set(np.unique(values)) == {0, 1}
    # the margin is empty: no mask voxel within 2 voxels of the border
    assert not values[:2].any() and not values[-2:].any()
    assert not values[:, :2].any() and not values[:, :, -2:].any()
    # the resampled region keeps the tumour's volume (a 9 mm sphere) within 15%
    volume = values.sum() * 8.0
    assert volume == pytest.approx(4 / 3 * np.pi * 9.0**3, rel=0.15)
    # PET: linear interpolation of a linear ramp is exact
    pet_values = sitk.GetArrayFromImage(pet2)
    zz, yy, xx = np.nonzero(values)
    x_mm = np.array([mask2.TransformIndexToPhysicalPoint((int(i), 0, 0))[0] for i in xx])
    np.testing.assert_allclose(pet_values[values == 1], 2.0 + PET_SLOPE * x_mm, atol=1e-4)


def test_extract_features_values():
    ct, pet, mask = make_case()
    features = extract_features(as_case(ct, pet, mask, "P1"))
    assert list(features) == feature_names()
    assert all(np.isfinite(v) for v in features.values())
    sphere = 4 / 3 * np.pi * 9.0**3
    assert features["shape_VoxelVolume"] == pytest.approx(sphere, rel=0.15)
    assert features["shape_Sphericity"] > 0.8
    # PET ramp: the mean SUV is the ramp at the tumour's centre, the range its diameter x slope
    assert features["PET_bw1_firstorder_Mean"] == pytest.approx(2.0 + PET_SLOPE * 24.0, abs=0.05)
    assert features["PET_bw1_firstorder_Range"] == pytest.approx(PET_SLOPE * 16.0, abs=0.25)
    assert features["CT_bw50_firstorder_Mean"] == pytest.approx(40.0, abs=5.0)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        pytest.param("empty", "mask is empty: no voxel has label 1", id="empty_mask"),
        pytest.param("single", "single voxel", id="single_voxel"),
        pytest.param("far_pet", "does not overlap the PET image", id="no_overlap"),
        pytest.param("partial_pet", "mask voxels lie outside the PET field of view", id="partial"),
    ],
)
def test_extract_features_bad_patients(edit, match):
    ct, pet, mask = make_case()
    if edit == "empty":
        mask = mask * 0
    elif edit == "single":
        values = np.zeros(mask.GetSize()[::-1], dtype=np.uint8)
        values[7, 24, 24] = 1
        single = sitk.GetImageFromArray(values)
        single.CopyInformation(mask)
        mask = single
    elif edit == "far_pet":
        pet.SetOrigin((500.0, 0.0, 0.0))
    else:
        pet.SetOrigin((24.0, -2.0, 0.0))  # PET starts at the tumour's centre in x
    with pytest.raises(PatientError, match=match):
        extract_features(as_case(ct, pet, mask, "P9"))


def test_read_case_missing_file(tmp_path):
    record = Record("P1", tmp_path / "no_ct.nii.gz", tmp_path / "b", tmp_path / "c")
    with pytest.raises(PatientError, match="patient P1: CT file .* file not found"):
        read_case(record)
    with pytest.raises(PatientError, match="patient P1: no GTVt mask"):
        read_case(Record("P1", tmp_path / "a", tmp_path / "b"))


def test_cropping_changes_no_resampled_value():
    # crop_and_resample crops each scan to the 2 mm grid's extent (geometry.crop_to_box)
    # before resampling: the values are those of resampling the whole scans.
    ct, pet, mask = make_case()
    ct2, pet2, mask2 = crop_and_resample(ct, pet, mask)
    for whole, cropped, interpolator in (
        (ct, ct2, sitk.sitkLinear), (pet, pet2, sitk.sitkLinear),
        (mask, mask2, sitk.sitkNearestNeighbor),
    ):
        assert crop_to_box(whole, physical_extent(mask2)).GetNumberOfPixels() < (
            whole.GetNumberOfPixels()
        )
        expected = sitk.Resample(whole, mask2, sitk.Transform(), interpolator, 0.0,
                                 cropped.GetPixelID())
        np.testing.assert_array_equal(
            sitk.GetArrayViewFromImage(cropped), sitk.GetArrayViewFromImage(expected)
        )


def test_extract_features_deprecated_forms_warn_and_agree(tmp_path):
    ct, pet, mask = make_case()
    expected = extract_features(as_case(ct, pet, mask, "P1"))
    with pytest.warns(DeprecationWarning, match=r"extract_features\(read_case\(patient\)\)"):
        assert extract_features(ct, pet, mask, patient_id="P1") == expected
    record = write_case(tmp_path, "P1")
    with pytest.warns(DeprecationWarning):
        from_paths = extract_features(record.ct, record.pet, record.mask, patient_id="P1")
    assert list(from_paths.values()) == pytest.approx(list(expected.values()), rel=1e-9)
    with pytest.warns(DeprecationWarning), pytest.raises(PatientError, match="CT file .* not found"):
        extract_features(tmp_path / "no_ct.nii.gz", record.pet, record.mask, patient_id="P1")
    with pytest.raises(TypeError, match="patient id from the case"):
        extract_features(as_case(ct, pet, mask, "P1"), patient_id="P1")


def test_extract_module_is_a_deprecated_shim():
    import importlib
    import sys

    sys.modules.pop("hnprog.radiomics.extract", None)
    with pytest.warns(DeprecationWarning, match="hnprog.radiomics.params"):
        shim = importlib.import_module("hnprog.radiomics.extract")
    assert shim.extract_cohort_features is extract_cohort_features
    assert shim.extract_features is extract_features and shim.load_params is load_params


def test_bad_params_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("resampling: {spacing: [2, 2]}\nruns: []\n")
    with pytest.raises(InputError, match="resampling.spacing must be three positive numbers"):
        load_params(path)
    with pytest.raises(InputError, match="file not found"):
        load_params(tmp_path / "missing.yaml")


@dataclass(frozen=True)
class Record:
    patient_id: str
    ct: Path
    pet: Path
    mask: Path | None = None


def write_case(folder: Path, patient_id: str, **kwargs) -> Record:
    ct, pet, mask = make_case(**kwargs)
    paths = [folder / f"{patient_id}_{suffix}.nii.gz" for suffix in ("ct", "pt", "gtvt")]
    for image, path in zip((ct, pet, mask), paths):
        write_image(image, path)
    return Record(patient_id, *paths)


def test_extract_cohort_features_failures_cache_and_resume(tmp_path, monkeypatch):
    good = [write_case(tmp_path, "P1"), write_case(tmp_path, "P2", radius_mm=7.0, seed=1)]
    empty = write_case(tmp_path, "P3")
    write_image(sitk.ReadImage(str(empty.mask)) * 0, empty.mask)
    no_mask = Record("P4", good[0].ct, good[0].pet, None)
    out = tmp_path / "out" / "features.csv"
    table = extract_cohort_features([*good, empty, no_mask], out, progress=False)

    assert list(table.index) == ["P1", "P2"] and list(table.columns) == feature_names()
    written = read_features(out)
    pd.testing.assert_frame_equal(written, table, check_exact=False, rtol=1e-9)
    failures = pd.read_csv(tmp_path / "out" / "features_failures.csv")
    assert failures["patient_id"].tolist() == ["P3", "P4"]
    assert "is empty: no voxel is labelled 1" in failures["error"][0]
    assert "no GTVt mask" in failures["error"][1]
    assert len(list((tmp_path / "out" / ".radiomics_cache").glob("P*.json"))) == 2
    direct = extract_features(read_case(good[0]))
    assert table.loc["P1"].to_numpy() == pytest.approx(list(direct.values()), rel=1e-9)

    def must_not_run(*args, **kwargs):
        raise AssertionError("cached patient recomputed")

    monkeypatch.setattr(cohort_module, "extract_features", must_not_run)
    again = extract_cohort_features(good, tmp_path / "out" / "again.csv", progress=False,
                                    cache_dir=tmp_path / "out" / ".radiomics_cache")
    pd.testing.assert_frame_equal(again, table)
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_extract_cohort_features_in_parallel_matches_serial(tmp_path):
    records = [write_case(tmp_path, f"P{i}", radius_mm=7.0 + i, seed=i) for i in range(3)]
    serial = extract_cohort_features(
        records, tmp_path / "a.csv", cache_dir=tmp_path / "c1", progress=False
    )
    parallel = extract_cohort_features(
        records, tmp_path / "b.csv", n_jobs=2, cache_dir=tmp_path / "c2", progress=False
    )
    pd.testing.assert_frame_equal(serial, parallel)
    with pytest.warns(DeprecationWarning, match=r"jobs=\.\.\.\) is deprecated.*n_jobs"):
        alias = extract_cohort_features(
            records, tmp_path / "c.csv", jobs=1, cache_dir=tmp_path / "c1", progress=False
        )
    pd.testing.assert_frame_equal(serial, alias)


def test_extract_patient_row_is_picklable_work_for_a_process_pool(tmp_path):
    record = write_case(tmp_path, "P1")
    row = extract_patient(record, cache_dir=tmp_path / "cache")
    assert list(row) == ["patient_id", *feature_names()] and row["patient_id"] == "P1"
    assert extract_patient(Patient("P1", record.ct, record.pet, record.mask)) == row
    # what a process pool sends and gets back
    params = load_params()
    work = pickle.loads(pickle.dumps(functools.partial(extract_patient, params=params)))
    assert work(Patient("P1", record.ct, record.pet, record.mask)) == row
    error = pickle.loads(pickle.dumps(PatientError("P1", "mask is empty")))
    assert (error.patient_id, error.reason) == ("P1", "mask is empty")


def test_cohort_extraction_goes_through_the_patient_loader(tmp_path):
    # the loader's HU/SUV and label checks apply to radiomics as to prediction and training
    good = write_case(tmp_path, "P1")
    no_air = write_case(tmp_path, "P2")
    write_image(sitk.ReadImage(str(no_air.ct)) * 0 + 40.0, no_air.ct)
    labels = write_case(tmp_path, "P3")
    write_image(sitk.ReadImage(str(labels.mask)) * 2, labels.mask)
    table = extract_cohort_features(
        [good, no_air, labels], tmp_path / "out" / "f.csv", progress=False
    )
    assert list(table.index) == ["P1"]
    failures = pd.read_csv(tmp_path / "out" / "f_failures.csv").set_index("patient_id")["error"]
    assert "not a head-and-neck CT in HU" in failures["P2"]
    assert "unexpected labels {2}" in failures["P3"]
    params = load_params()
    params["label"] = 2
    with pytest.raises(InputError, match="keeps only the GTVt .* Received: label=2"):
        extract_cohort_features([good], tmp_path / "g.csv", params=params, progress=False)


def test_extract_cohort_features_all_failed(tmp_path):
    record = Record("P1", tmp_path / "a.nii.gz", tmp_path / "b.nii.gz", tmp_path / "c.nii.gz")
    with pytest.raises(InputError, match="failed for all 1 patients"):
        extract_cohort_features([record], tmp_path / "f.csv", progress=False)
    assert "file not found: CT, PET, mask" in (tmp_path / "f_failures.csv").read_text()
    with pytest.raises(InputError, match="jobs must be a positive integer"):
        extract_cohort_features([record], tmp_path / "f.csv", n_jobs=0)
    with pytest.raises(InputError, match="repeated ids"):
        extract_cohort_features([record, record], tmp_path / "f.csv", progress=False)


def test_read_features_bad_tables(tmp_path):
    path = tmp_path / "features.csv"
    path.write_text("patient_id,a,b\nP1,1.0,\nP2,2.0,3.0\n")
    expected = r"missing or infinite values in 1 features \(e.g. \['b'\]\) .*\['P1'\]"
    with pytest.raises(InputError, match=expected):
        read_features(path)
    path.write_text("patient_id,a\nP1,1.0\nP2,high\n")
    with pytest.raises(InputError, match="must be numbers.*'a' for patient P2"):
        read_features(path)
    path.write_text("patient_id,a\nP1,1.0\nP1,2.0\n")
    with pytest.raises(InputError, match="repeated"):
        read_features(path)
    with pytest.raises(InputError, match="file not found"):
        read_features(tmp_path / "none.csv")


# ---------------------------------------------------------------------------------------------
# The Cox pipeline


def survival_table(n: int = 150, n_features: int = 30, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        rng.normal(size=(n, n_features)) * 3.0 + 10.0,
        columns=[f"f{i}" for i in range(n_features)],
        index=[f"P{i:03d}" for i in range(n)],
    )
    X["f0_copy"] = X["f0"] + 0.05 * rng.normal(size=n)  # correlated 0.99 with f0
    risk = (X["f0"] - 10.0) / 3.0 - 0.6 * (X["f3"] - 10.0) / 3.0
    time = rng.exponential(np.exp(-risk.to_numpy())) * 800.0
    censor = rng.uniform(0, 2000, size=n)
    y = make_survival_y(event=time <= censor, time=np.round(np.minimum(time, censor)))  # ties
    return X, y


def test_cox_coefficients_match_lifelines():
    pytest.importorskip("lifelines", reason="reference: pip install 'hnprog[reference]'")
    from lifelines import CoxPHFitter

    X, y = survival_table()
    model = RadiomicsCoxPipeline(alpha=0.0).fit(X[:100], y[:100], X_val=X[100:], y_val=y[100:])
    assert model.alpha_ == 0.0
    train = X[:100]
    z = (train - train.mean()) / train.std(ddof=0)
    frame = z[model.selected_features_].assign(time=y["time"][:100], event=y["event"][:100])
    reference = CoxPHFitter(penalizer=0.0).fit(frame, "time", "event")  # Efron ties
    np.testing.assert_allclose(
        model.coef_, reference.params_[model.selected_features_].to_numpy(), atol=1e-4
    )
    np.testing.assert_allclose(
        model.predict(X[100:]) - model.predict(X[100:]).mean(),
        (z_val := ((X[100:] - train.mean()) / train.std(ddof=0))[model.selected_features_])
        @ reference.params_[model.selected_features_].to_numpy()
        - (z_val @ reference.params_[model.selected_features_].to_numpy()).mean(),
        atol=1e-4,
    )


def test_selection_ranks_on_validation_and_drops_correlated_features():
    from sksurv.metrics import concordance_index_censored

    X, y = survival_table()
    model = RadiomicsCoxPipeline().fit(X[:100], y[:100], X_val=X[100:], y_val=y[100:])
    assert len(model.univariate_cindex_) == X.shape[1]
    reference = concordance_index_censored(y["event"][100:], y["time"][100:], X["f3"][100:])[0]
    assert model.univariate_cindex_["f3"] == pytest.approx(reference, abs=1e-12)
    top = (model.univariate_cindex_ - 0.5).abs()
    assert top.is_monotonic_decreasing
    assert model.univariate_cindex_.index[0] in ("f0", "f0_copy", "f3")
    assert "f3" in model.selected_features_
    assert not {"f0", "f0_copy"} <= set(model.selected_features_)  # never both: r = 0.99
    assert len(model.selected_features_) <= 20
    assert model.threshold_ in (0.6, 0.65, 0.7, 0.75, 0.8)
    assert set(model.validation_scores_) == {0.6, 0.65, 0.7, 0.75, 0.8}
    assert model.validation_cindex_ == max(model.validation_scores_.values())
    assert model.score(X[100:], y[100:]) == pytest.approx(model.validation_cindex_)
    assert model.score(X, y) > 0.65


def test_internal_validation_split_and_sklearn_conventions():
    from sklearn.base import clone

    X, y = survival_table()
    model = RadiomicsCoxPipeline(n_features=5, random_state=1).fit(X, y)
    assert len(model.selected_features_) <= 5 and model.n_features_in_ == X.shape[1]
    assert clone(model).get_params()["n_features"] == 5
    np.testing.assert_allclose(model.predict(X.to_numpy()), model.predict(X))
    shuffled = X[list(reversed(X.columns))]
    np.testing.assert_allclose(model.predict(shuffled), model.predict(X))


def test_diverging_fit_falls_back_to_a_ridge_penalty():
    # one feature that orders the event times perfectly: the partial likelihood has no maximum
    x = np.linspace(-2.0, 2.0, 30)
    X = pd.DataFrame({"x": x})
    y = make_survival_y(event=np.ones(30, bool), time=1000.0 - 400.0 * x)
    model = RadiomicsCoxPipeline(n_features=1, validation_fraction=None).fit(X, y)
    assert model.alpha_ > 0.0
    assert np.isfinite(model.coef_).all() and abs(model.coef_[0]) <= 10.0


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        pytest.param("nan", "missing or infinite values .*'f1'", id="nan"),
        pytest.param("constant", "constant in the training data .*'f2'", id="constant"),
        pytest.param("no_event", "training data holds no event", id="no_event"),
        pytest.param("short_y", "one row per patient", id="lengths"),
    ],
)
def test_pipeline_bad_inputs(edit, match):
    X, y = survival_table(n=60)
    X_val, y_val = X[40:], y[40:]
    X, y = X[:40].copy(), y[:40].copy()
    if edit == "nan":
        X.iloc[3, 1] = np.nan
    elif edit == "constant":
        X["f2"] = 1.0
    elif edit == "no_event":
        y["event"] = False
    else:
        y = y[:-1]
    with pytest.raises(InputError, match=match):
        RadiomicsCoxPipeline().fit(X, y, X_val=X_val, y_val=y_val)


def test_pipeline_drop_constant_and_predict_errors():
    X, y = survival_table(n=80)
    X["flat"] = 1.0
    model = RadiomicsCoxPipeline(drop_constant=True).fit(X, y)
    assert model.constant_features_ == ["flat"] and "flat" not in model.selected_features_
    with pytest.raises(InputError, match="misses 1 features seen in fit"):
        model.predict(X.drop(columns="f5"))
    with pytest.raises(InputError, match="not fitted"):
        RadiomicsCoxPipeline().predict(X)
    with pytest.raises(InputError, match="ties must be"):
        RadiomicsCoxPipeline(ties="exact").fit(X, y)


# ---------------------------------------------------------------------------------------------
# Cross-validation and CLI


def endpoints_of(y: np.ndarray, ids) -> pd.DataFrame:
    return pd.DataFrame({"event": y["event"], "time": y["time"]}, index=pd.Index(ids))


def test_run_radiomics_cv_writes_table_1(tmp_path):
    from sksurv.metrics import concordance_index_censored

    X, y = survival_table()
    result = run_radiomics_cv(X, endpoints_of(y, X.index), tmp_path)
    assert list(result.per_fold["fold"]) == [0, 1, 2, 3, 4]
    assert result.per_fold["n_test"].sum() == len(X)
    assert result.c_index_mean == pytest.approx(result.per_fold["c_index"].mean())
    assert result.c_index_se == pytest.approx(result.per_fold["c_index"].std(ddof=1) / np.sqrt(5))
    assert result.c_index_mean > 0.65
    fold0 = result.predictions[result.predictions["fold"] == 0]
    reference = concordance_index_censored(
        fold0["event"].to_numpy(), fold0["time"].to_numpy(), fold0["risk"].to_numpy()
    )[0]
    assert result.per_fold.loc[0, "c_index"] == pytest.approx(reference)
    markdown = (tmp_path / "results.md").read_text()
    row = f"| standard radiomics | {result.c_index_mean:.3f} ± {result.c_index_se:.3f} |"
    assert row in markdown
    report = json.loads((tmp_path / "results.json").read_text())
    assert len(report["selected_features"]) == 5 and report["n_patients"] == len(X)
    predictions = pd.read_csv(tmp_path / "predictions.csv", index_col="patient_id")
    assert list(predictions.index) == list(X.index)
    assert (tmp_path / "kaplan_meier.png").read_bytes()[:4] == b"\x89PNG"


def test_run_radiomics_cv_bad_inputs(tmp_path):
    X, y = survival_table(n=40)
    endpoints = endpoints_of(y, X.index)
    flat = X.assign(flat=2.0)
    with pytest.raises(InputError, match="same value for every patient .*'flat'.*--drop-constant"):
        run_radiomics_cv(flat, endpoints)
    assert run_radiomics_cv(flat, endpoints, drop_constant=True).per_fold.shape[0] == 5
    with pytest.raises(InputError, match="cannot make 5 folds from 4 patients"):
        run_radiomics_cv(X[:4], endpoints)
    few = endpoints.assign(event=False)
    few.iloc[:3, 0] = True
    with pytest.raises(InputError, match="only 3 events"):
        run_radiomics_cv(X, few)
    with pytest.raises(InputError, match="share no patient id"):
        run_radiomics_cv(X.set_index(X.index + "x"), endpoints)


def test_cli_radiomics_cv_and_its_errors(tmp_path):
    X, y = survival_table(n=100)
    X.index.name = "patient_id"
    X.to_csv(tmp_path / "features.csv")
    endpoints = {"patient_id": X.index, "event": y["event"].astype(int), "time": y["time"]}
    pd.DataFrame(endpoints).to_csv(tmp_path / "endpoints.csv", index=False)
    runner = CliRunner()
    args = ["radiomics", "cv", str(tmp_path / "features.csv")]
    args += ["--endpoints", str(tmp_path / "endpoints.csv")]
    result = runner.invoke(main, [*args, "--out", str(tmp_path / "cv")])
    assert result.exit_code == 0, result.output
    assert "test C-index" in result.output and (tmp_path / "cv" / "results.md").is_file()

    X.iloc[2, 4] = np.nan
    X.to_csv(tmp_path / "features.csv")
    result = runner.invoke(main, [*args, "--out", str(tmp_path / "cv2")])
    assert result.exit_code == 1
    assert "missing or infinite values" in result.output and "Traceback" not in result.output
    X.iloc[2, 4] = 0.0
    X["flat"] = 3.0
    X.to_csv(tmp_path / "features.csv")
    result = runner.invoke(main, [*args, "--out", str(tmp_path / "cv3")])
    assert result.exit_code == 1 and "--drop-constant" in result.output
    result = runner.invoke(
        main, [*args, "--out", str(tmp_path / "cv3"), "--folds", "200", "--drop-constant"]
    )
    assert result.exit_code == 1 and "cannot make 200 folds from 100 patients" in result.output


def test_cli_radiomics_extract(tmp_path):
    pytest.importorskip("hnprog.data.cohort")
    data = tmp_path / "data"
    write_case(data, "CHGJ001")
    write_case(data, "CHGJ002", radius_mm=7.0, seed=2)
    empty = write_case(data, "CHGJ003")
    write_image(sitk.ReadImage(str(empty.mask)) * 0, empty.mask)
    out = tmp_path / "features.csv"
    result = CliRunner().invoke(main, ["radiomics", "extract", str(data), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert "2 patients x 280 features" in result.output and "1 failed" in result.output
    assert read_features(out).index.tolist() == ["CHGJ001", "CHGJ002"]
    assert "CHGJ003" in (tmp_path / "features_failures.csv").read_text()
    # a second extraction into the same folder keeps its own failures
    other = tmp_path / "other.csv"
    result = CliRunner().invoke(main, ["radiomics", "extract", str(data), "--out", str(other),
                                       "-q"])
    assert result.exit_code == 0, result.output
    assert "reasons in " + str(tmp_path / "other_failures.csv") in result.output
    assert "CHGJ003" in (tmp_path / "features_failures.csv").read_text()
