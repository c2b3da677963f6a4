"""Preprocessing patients from NIfTI files, and cohort runs that report every broken patient."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from hnprog.testing.cohorts import BOX, CONFIG, make_ct, make_mask, make_pet, write_cohort

from hnprog.data.bbox import write_bboxes
from hnprog.geometry import BoundingBox
from hnprog.data.cohort import Patient, read_cohort
from hnprog.data.preprocess import (
    check_intensities,
    load_case,
    load_preprocessed,
    preprocess_cohort,
    preprocess_patient,
    read_mask,
)
from hnprog.errors import PatientError
from hnprog.io import write_image
from hnprog.transforms import Case, preprocess_case

GOOD = ["CHGJ001", "CHGJ002"]
BROKEN = {
    "CHGJ010": "PET file .*CHGJ010_pt.nii.gz: file not found",
    "CHGJ011": "CT file .*CHGJ011_ct.nii.gz: cannot be read",
    "CHGJ012": "PET and CT do not overlap",
    "CHGJ013": "bounding box .* lies outside the CT image",
    "CHGJ014": r"mask file .*CHGJ014_gtvt.nii.gz: unexpected labels \{3\}",
    "CHGJ015": "PET file .*CHGJ015_pt.nii.gz: contains 1 NaN or infinite voxels",
}


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture(scope="module")
def broken_cohort(tmp_path_factory) -> Path:
    root = write_cohort(tmp_path_factory.mktemp("cohort"), GOOD + list(BROKEN))
    (root / "CHGJ010_pt.nii.gz").unlink()
    truncate(root / "CHGJ011_ct.nii.gz")
    write_image(make_pet(shift_mm=800.0), root / "CHGJ012_pt.nii.gz")
    boxes = {pid: BOX for pid in GOOD + list(BROKEN)}
    boxes["CHGJ013"] = BoundingBox.from_center((0.0, 0.0, 500.0), 32.0)
    write_bboxes(boxes, root / "bboxes.csv")
    write_image(make_mask(make_ct(), label=3), root / "CHGJ014_gtvt.nii.gz")
    pet = make_pet()
    pet[3, 4, 5] = float("nan")
    write_image(pet, root / "CHGJ015_pt.nii.gz")
    return root


def test_cohort_run_reports_every_failure_and_keeps_going(broken_cohort, tmp_path):
    cohort = read_cohort(broken_cohort)
    failures = preprocess_cohort(cohort, tmp_path, CONFIG, write_nifti=True)
    written = pd.read_csv(tmp_path / "failures.csv")
    assert sorted(written["patient_id"]) == sorted(BROKEN) == sorted(failures["patient_id"])
    for pid, pattern in BROKEN.items():
        message = written.set_index("patient_id").loc[pid, "error"]
        assert pd.Series([message]).str.contains(pattern, regex=True).all(), (pid, message)
    cases = pd.read_csv(tmp_path / "cases.csv")
    assert cases["patient_id"].tolist() == GOOD
    assert cases["event"].tolist() == [0, 1] and cases["time"].tolist() == [100.0, 200.0]
    summary = json.loads((tmp_path / "preprocess.json").read_text())
    assert (summary["n_cases"], summary["n_failures"]) == (2, 6)
    assert summary["config"]["crop_size"] == 16
    case = load_preprocessed(tmp_path / "CHGJ001.npz")
    assert case.image.shape == (16, 16, 16, 2) and case.mask.shape == (16, 16, 16)
    direct = preprocess_patient(cohort["CHGJ001"], BOX, CONFIG)
    np.testing.assert_array_equal(case.image, direct.image)
    assert case.grid == direct.grid
    nifti = sitk.ReadImage(str(tmp_path / "CHGJ001_pt.nii.gz"))
    assert nifti.GetSize() == (16, 16, 16) and nifti.GetSpacing() == (2.0, 2.0, 2.0)
    assert (tmp_path / "CHGJ001_gtvt.nii.gz").is_file()
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes left nothing behind


@pytest.mark.parametrize("pid", sorted(BROKEN))
def test_each_bad_input_raises_patient_error_naming_patient(broken_cohort, pid):
    cohort = read_cohort(broken_cohort)
    with pytest.raises(PatientError, match=f"patient {pid}: .*{BROKEN[pid]}") as info:
        preprocess_patient(cohort[pid], cohort.bboxes[pid], CONFIG)
    assert info.value.patient_id == pid


def test_truncated_gzip_is_reported(tmp_path):
    path = tmp_path / "x_ct.nii.gz"
    write_image(make_ct(), path)
    with gzip.open(path) as f:
        header_only = f.read(400)
    path.write_bytes(gzip.compress(header_only))
    patient = Patient("X1", path, tmp_path / "x_pt.nii.gz")
    with pytest.raises(PatientError, match="patient X1: CT file .*x_ct.nii.gz: truncated"):
        load_case(patient, BOX)


def test_hecktor2022_mask_keeps_gtvp_only(tmp_path):
    ct = make_ct()
    labels = sitk.GetArrayFromImage(make_mask(ct))
    labels[0, 0, 0] = 2  # a GTVn voxel
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(ct)
    write_image(image, tmp_path / "m.nii.gz")
    mask = sitk.GetArrayFromImage(read_mask(tmp_path / "m.nii.gz", "P", labels=(0, 1, 2)))
    assert mask[0, 0, 0] == 0 and mask.sum() == (labels == 1).sum()
    with pytest.raises(PatientError, match=r"unexpected labels \{2\}; expected only \{0, 1\}"):
        read_mask(tmp_path / "m.nii.gz", "P")


def test_fractional_mask_values_are_unexpected_labels(tmp_path):
    ct = make_ct()
    values = sitk.GetArrayFromImage(make_mask(ct)).astype(np.float32) * 0.5
    image = sitk.GetImageFromArray(values)
    image.CopyInformation(ct)
    write_image(image, tmp_path / "m.nii.gz")
    with pytest.raises(PatientError, match=r"unexpected labels \{0.5\}"):
        read_mask(tmp_path / "m.nii.gz", "P")


def test_same_function_for_files_and_in_memory_cases(tmp_path):
    write_cohort(tmp_path, ["CHGJ001"])
    patient = read_cohort(tmp_path)["CHGJ001"]
    from_files = preprocess_patient(patient, BOX, CONFIG, rng=np.random.default_rng(1))
    ct = make_ct()
    in_memory = preprocess_case(
        Case({"ct": ct, "pet": make_pet(), "mask": make_mask(ct)}, box=BOX),
        CONFIG,
        rng=np.random.default_rng(1),
    )
    np.testing.assert_array_equal(from_files.image, in_memory.image)
    np.testing.assert_array_equal(from_files.mask, in_memory.mask)


def test_cli_preprocess_reports_failures_and_succeeds(broken_cohort, tmp_path):
    from click.testing import CliRunner

    from hnprog.cli import main

    out = tmp_path / "prep"
    args = [
        "preprocess",
        str(broken_cohort),
        "--out",
        str(out),
        "--spacing",
        "2",
        "--crop-size",
        "16",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "6 of 8 patients failed" in result.output
    assert "2 cases preprocessed" in result.output and "16^3 at 2.0 mm" in result.output
    assert (out / "CHGJ001.npz").is_file() and len(pd.read_csv(out / "failures.csv")) == 6


def test_cli_preprocess_with_bad_endpoints_is_one_line_error(broken_cohort, tmp_path):
    from click.testing import CliRunner

    from hnprog.cli import main

    bad = tmp_path / "e.csv"
    bad.write_text("PatientID,Progression,Progression free survival (days)\nCHGJ001,3,10\n")
    args = ["preprocess", str(broken_cohort), "--out", str(tmp_path / "o"), "--endpoints", str(bad)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "Error: endpoint file" in result.output and "event must be 0 or 1" in result.output


def _scaled(image: sitk.Image, factor: float, offset: float = 0.0) -> sitk.Image:
    out = sitk.Cast(image, sitk.sitkFloat32) * factor + offset
    out.CopyInformation(image)
    return out


@pytest.mark.parametrize(
    "ct, pet, match",
    [
        ("pet", "ct", "are the CT and PET swapped"),
        ("ct+1100", "pet", "no voxel below -500 HU"),  # CT without its rescale intercept
        ("ct", "ct", "a CT given as the PET"),
        ("ct", "pet*5000", "Bq/mL"),
    ],
)
def test_intensity_checks_name_the_likely_mistake(ct, pet, match):
    images = {"ct": make_ct(), "pet": make_pet(),
              "ct+1100": _scaled(make_ct(), 1.0, 1100.0), "pet*5000": _scaled(make_pet(), 5000.0)}
    check_intensities(images["ct"], images["pet"], "P1")  # a real pair passes
    with pytest.raises(PatientError, match=match) as info:
        check_intensities(images[ct], images[pet], "P1", "ct.nii.gz", "pet.nii.gz")
    assert "patient P1" in str(info.value)
