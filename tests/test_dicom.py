"""DICOM in and out, checked against the NIfTI truth of the synthetic generator.

The synthetic cohort is written as DICOM (hnprog.data.dicom.write), converted back
(hnprog.data.dicom.convert), and compared with the NIfTI files the generator wrote: HU equal,
SUV equal to the PET's 16-bit quantisation, the GTVt mask equal, geometry equal. Tags are
checked by reading the files back with pydicom.
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk

from hnprog.data.dicom.convert import convert_dicom, convert_dicom_patient, find_dicom_patients
from hnprog.data.dicom.rtstruct import _outlines, choose_roi, read_rtstruct_mask, write_rtstruct
from hnprog.data.dicom.series import read_series, scan_folder
from hnprog.data.dicom.suv import suv_factor
from hnprog.data.dicom.write import PETTags, write_image_series, write_synthetic_dicom
from hnprog.errors import InputError, PatientError
from hnprog.io import read_image

SCALE = 0.25  # CT 64x64x~22, PET 32x32x~23
# seed 5, 3 centres: SYNB001 (CT stored with x and y flipped) and SYNC001 (PET flipped)


@pytest.fixture(scope="module")
def dicom_cohort(tmp_path_factory):
    return write_synthetic_dicom(tmp_path_factory.mktemp("dicom"), n_patients=2, seed=5,
                                 n_centres=3, image_scale=SCALE)


@pytest.fixture(scope="module")
def converted(dicom_cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("converted")
    run = convert_dicom(dicom_cohort, out, progress=False)
    assert not run.failures
    return out


def _array(path, pixel_type=sitk.sitkFloat32):
    return sitk.GetArrayFromImage(read_image(path, pixel_type=pixel_type))


def assert_same_grid(a: sitk.Image, b: sitk.Image) -> None:
    assert a.GetSize() == b.GetSize()
    np.testing.assert_allclose(a.GetSpacing(), b.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), atol=1e-6)


def test_round_trip_equals_generator_truth(dicom_cohort, converted):
    nifti = dicom_cohort / "nifti"
    manifest = pd.read_csv(converted / "manifest.csv", dtype={"patient_id": str})
    truth = pd.read_csv(dicom_cohort / "dicom.csv", dtype={"PatientID": str}).set_index(
        "PatientID")
    assert sorted(manifest.patient_id) == sorted(truth.index)
    for row in manifest.itertuples():
        pid = row.patient_id
        for suffix in ("ct", "pt", "gtvt"):
            assert_same_grid(read_image(nifti / f"{pid}_{suffix}.nii.gz"),
                             read_image(converted / f"{pid}_{suffix}.nii.gz"))
        np.testing.assert_array_equal(_array(converted / row.ct),
                                      _array(nifti / f"{pid}_ct.nii.gz"))
        suv, expected = _array(converted / row.pet), _array(nifti / f"{pid}_pt.nii.gz")
        # 16-bit storage with one slope per slice: error at most half a step of that slice
        step = expected.max(axis=(1, 2), keepdims=True) / 65535
        assert np.all(np.abs(suv - expected) <= step / 2 + 1e-5)
        assert np.abs(suv - expected).max() < 2e-4
        assert _array(converted / row.mask, sitk.sitkUInt8).sum() > 0
        np.testing.assert_array_equal(_array(converted / row.mask, sitk.sitkUInt8),
                                      _array(nifti / f"{pid}_gtvt.nii.gz", sitk.sitkUInt8))
        assert row.suv_factor == pytest.approx(truth.loc[pid, "suv_factor"], rel=1e-9)
        assert row.suv_weight_kg == truth.loc[pid, "weight_kg"]
        assert row.roi == "GTVt" and row.mask_series == "CT"


def test_written_tags_read_back_with_pydicom(dicom_cohort):
    pid = sorted(p.name for p in dicom_cohort.iterdir() if p.name.startswith("SYN"))[0]
    ct = pydicom.dcmread(sorted((dicom_cohort / pid / "CT").iterdir())[0])
    assert (ct.Modality, ct.RescaleIntercept, ct.RescaleSlope, ct.RescaleType) == (
        "CT", -1024, 1, "HU")
    pt = pydicom.dcmread(sorted((dicom_cohort / pid / "PT").iterdir())[0])
    drug = pt.RadiopharmaceuticalInformationSequence[0]
    assert (pt.Units, pt.DecayCorrection, drug.RadionuclideHalfLife) == ("BQML", "START", 6586.2)
    rs = pydicom.dcmread(dicom_cohort / pid / "RTSTRUCT.dcm")
    ref = rs.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
    assert ref.RTReferencedSeriesSequence[0].SeriesInstanceUID == ct.SeriesInstanceUID
    assert [r.ROIName for r in rs.StructureSetROISequence] == ["GTVt"]


def test_same_arguments_write_identical_dicom(dicom_cohort, tmp_path):
    again = write_synthetic_dicom(tmp_path, n_patients=2, seed=5, n_centres=3,
                                  image_scale=SCALE)
    for path in sorted(dicom_cohort.rglob("*.dcm"))[:5]:
        assert (again / path.relative_to(dicom_cohort)).read_bytes() == path.read_bytes()


def test_suv_factor_bqml_start_closed_form():
    ds = pydicom.Dataset()
    ds.Units, ds.DecayCorrection, ds.SeriesTime, ds.PatientWeight = "BQML", "START", "110000", 80
    drug = pydicom.Dataset()
    drug.RadiopharmaceuticalStartTime = "100000"
    drug.RadionuclideTotalDose = 370e6
    drug.RadionuclideHalfLife = 6586.2
    ds.RadiopharmaceuticalInformationSequence = [drug]
    # one hour of decay: 370 MBq * 2^(-3600/6586.2)
    expected = 80_000 / (370e6 * 2 ** (-3600 / 6586.2))
    assert suv_factor(ds).factor == pytest.approx(expected, rel=1e-12)
    ds.DecayCorrection = "ADMIN"
    assert suv_factor(ds).factor == pytest.approx(80_000 / 370e6, rel=1e-12)
    ds.DecayCorrection = "START"
    # overrides: half the weight and half the dose give the same factor; 30 min later, less decay
    assert suv_factor(ds, weight_kg=40, dose_mbq=185).factor == pytest.approx(expected, rel=1e-12)
    assert suv_factor(ds, injection_time="10:30").factor == pytest.approx(
        80_000 / (370e6 * 2 ** (-1800 / 6586.2)), rel=1e-12)
    del ds.PatientWeight
    with pytest.raises(InputError, match=r"no PatientWeight \(0010,1030\); give --weight KG"):
        suv_factor(ds, path="x.dcm")
    ds.DecayCorrection = "NONE"
    with pytest.raises(InputError, match="DecayCorrection 'NONE'"):
        suv_factor(ds, weight_kg=70)
    ds.Units = "CNTS"
    with pytest.raises(InputError, match=r"CNTS without a vendor scale factor"):
        suv_factor(ds, weight_kg=70)


def _one_patient(dicom_cohort, tmp_path, name="P1"):
    pid = sorted(p.name for p in dicom_cohort.iterdir() if p.name.startswith("SYN"))[0]
    target = tmp_path / name
    shutil.copytree(dicom_cohort / pid, target)
    return pid, target


@pytest.mark.parametrize("units", ["GML", "CNTS"])
def test_gml_and_cnts_pet_give_the_same_suv(dicom_cohort, tmp_path, units):
    pid, folder = _one_patient(dicom_cohort, tmp_path)
    shutil.rmtree(folder / "PT")
    pet = read_image(dicom_cohort / "nifti" / f"{pid}_pt.nii.gz")
    slices = pydicom.dcmread(sorted((dicom_cohort / pid / "CT").iterdir())[0])
    tags = PETTags(units)
    write_image_series(pet, folder / "PT", modality="PT", patient_id=pid,
                       study_uid=slices.StudyInstanceUID, frame_uid=slices.FrameOfReferenceUID,
                       pet=tags, series_number=3)
    row = convert_dicom_patient(folder, tmp_path / "out")
    assert row["suv_units"] == units
    assert row["suv_factor"] == pytest.approx(tags.suv_factor, rel=1e-9)
    suv = _array(tmp_path / "out" / row["pet"])
    assert np.abs(suv - sitk.GetArrayFromImage(pet)).max() < 2e-4


def test_rtstruct_on_the_pet(tmp_path):
    root = write_synthetic_dicom(tmp_path / "d", n_patients=1, seed=2, image_scale=SCALE,
                                 rtstruct_on="PT")
    pid = next(p.name for p in root.iterdir() if p.name.startswith("SYN"))
    row = convert_dicom_patient(root / pid, tmp_path / "out")
    assert row["mask_series"] == "PT"
    pet = read_image(root / "nifti" / f"{pid}_pt.nii.gz")
    truth = sitk.Resample(read_image(root / "nifti" / f"{pid}_gtvt.nii.gz",
                                     pixel_type=sitk.sitkUInt8), pet, sitk.Transform(),
                          sitk.sitkNearestNeighbor, 0)
    mask = read_image(tmp_path / "out" / row["mask"], pixel_type=sitk.sitkUInt8)
    assert_same_grid(mask, pet)
    assert sitk.GetArrayFromImage(truth).sum() > 0
    np.testing.assert_array_equal(sitk.GetArrayFromImage(mask), sitk.GetArrayFromImage(truth))


def test_two_ct_series_the_one_with_most_slices_wins(dicom_cohort, tmp_path, caplog):
    pid, folder = _one_patient(dicom_cohort, tmp_path)
    ct = read_image(dicom_cohort / "nifti" / f"{pid}_ct.nii.gz")
    first = pydicom.dcmread(sorted((folder / "CT").iterdir())[0])
    write_image_series(ct[:, :, :5], folder / "scout", modality="CT", patient_id=pid,
                       study_uid=first.StudyInstanceUID, frame_uid=first.FrameOfReferenceUID,
                       series_number=7, uid_entropy=["scout"])
    with caplog.at_level("INFO", logger="hnprog.data.dicom.series"):
        row = convert_dicom_patient(folder, tmp_path / "out")
    assert row["ct_series"] == first.SeriesInstanceUID
    assert "the one with the most slices" in caplog.text
    np.testing.assert_array_equal(_array(tmp_path / "out" / row["ct"]),
                                  _array(dicom_cohort / "nifti" / f"{pid}_ct.nii.gz"))


def test_missing_weight_is_one_line_and_the_override_works(dicom_cohort, tmp_path):
    pid, folder = _one_patient(dicom_cohort, tmp_path)
    for path in (folder / "PT").iterdir():
        ds = pydicom.dcmread(path)
        del ds.PatientWeight
        ds.save_as(path)
    with pytest.raises(PatientError, match=r"P1: PET file .*PT_0000.dcm: no PatientWeight "
                                           r"\(0010,1030\); give --weight KG"):
        convert_dicom_patient(folder, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    truth = pd.read_csv(dicom_cohort / "dicom.csv", dtype={"PatientID": str}).set_index(
        "PatientID").loc[pid]
    row = convert_dicom_patient(folder, tmp_path / "out", weight_kg=float(truth.weight_kg))
    assert row["suv_factor"] == pytest.approx(truth.suv_factor, rel=1e-9)


def test_uneven_spacing_is_refused_naming_the_gap(dicom_cohort, tmp_path):
    _, folder = _one_patient(dicom_cohort, tmp_path)
    (folder / "CT" / "CT_0005.dcm").unlink()
    ct = next(s for s in scan_folder(folder) if s.modality == "CT")
    with pytest.raises(InputError, match=r"uneven slice spacing, a gap of \d+\.\d+ mm between"):
        read_series(ct)


def test_cohort_run_records_failures_and_resumes(dicom_cohort, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    pid, _ = _one_patient(dicom_cohort, src, "GOOD")
    _, bad = _one_patient(dicom_cohort, src, "BAD")
    shutil.rmtree(bad / "PT")
    assert [p.patient_id for p in find_dicom_patients(src)] == ["BAD", "GOOD"]
    out = tmp_path / "out"
    run = convert_dicom(src, out, progress=False)
    assert list(run.results) == ["GOOD"]
    failures = pd.read_csv(out / "failures.csv")
    assert failures.patient_id.tolist() == ["BAD"]
    assert "no PT series found (found: CT, RTSTRUCT)" in failures.error[0]
    again = convert_dicom(src, out, progress=False)
    assert again.resumed == ["GOOD"]
    # a single patient folder with modality subfolders is one patient
    assert [p.patient_id for p in find_dicom_patients(src / "GOOD")] == ["GOOD"]


def test_roi_choice_and_listing():
    assert choose_roi(["Body", "GTV_T", "GTVn"]) == "GTV_T"
    assert choose_roi(["Body", "GTVp", "GTV"]) == "GTVp"
    assert choose_roi(["GTVn", "GTVt_hnprog"]) == "GTVt_hnprog"
    assert choose_roi(["Body", "PTV70", "GTVn1"], "gtvn*") == "GTVn1"
    with pytest.raises(InputError, match=r"no ROI named GTVt, GTVp or GTV; its ROIs are: "
                                         r"'Body', 'GTVn' \(choose one with --roi\)"):
        choose_roi(["Body", "GTVn"], where="rs.dcm")


def test_holes_and_islands_read_back_exactly(tmp_path):
    """A ring (a hole by XOR) and two islands touching at a corner, on a flipped grid."""
    mask = np.zeros((3, 12, 12), np.uint8)
    mask[1, 2:9, 2:9] = 1
    mask[1, 4:7, 4:7] = 0  # hole
    mask[1, 5, 5] = 1  # island in the hole
    mask[2, 1, 1] = mask[2, 2, 2] = 1  # corner-touching
    image = sitk.GetImageFromArray(mask)
    image.SetSpacing((1.5, 1.5, 3.0))
    image.SetOrigin((10.0, -5.0, 2.0))
    image.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    slices = write_image_series(sitk.Cast(image, sitk.sitkFloat32), tmp_path / "CT",
                                modality="CT", patient_id="X", study_uid="1.2.3",
                                frame_uid="1.2.4")
    write_rtstruct(image, slices, tmp_path / "rs.dcm")
    ds = pydicom.dcmread(tmp_path / "rs.dcm")
    assert len(ds.ROIContourSequence[0].ContourSequence) >= 4
    back, name = read_rtstruct_mask(ds, image)
    assert name == "GTVt"
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), mask)
    # a square's outline is its 4 corners
    square = np.zeros((5, 5), bool)
    square[1:4, 1:4] = True
    (outline,) = _outlines(square)
    assert sorted(map(tuple, outline)) == [(0.5, 0.5), (0.5, 3.5), (3.5, 0.5), (3.5, 3.5)]


def test_cli_synth_dicom_then_convert(tmp_path):
    from click.testing import CliRunner

    from hnprog.cli import main

    runner = CliRunner()
    result = runner.invoke(main, ["synth", str(tmp_path / "d"), "-n", "2", "--scale", "0.25",
                                  "--format", "dicom"])
    assert result.exit_code == 0, result.output
    assert "(DICOM; NIfTI truth in" in result.output
    result = runner.invoke(main, ["convert", str(tmp_path / "d"), "-o", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "2 patients converted" in result.output
    # another ROI is not resumed from the first run: it is converted again, and fails clearly
    result = runner.invoke(main, ["convert", str(tmp_path / "d"), "-o", str(tmp_path / "o"),
                                  "--roi", "Body"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("Error: no patient could be")
    error = pd.read_csv(tmp_path / "o" / "failures.csv").error[0]
    assert "no ROI matches --roi 'Body'; its ROIs are: 'GTVt'" in error


def test_read_cohort_accepts_dicom_folders_through_a_cache(dicom_cohort, tmp_path,
                                                          monkeypatch):
    from hnprog.data.cohort import read_cohort
    from hnprog.data.loading import load_case

    monkeypatch.setenv("HNPROG_DICOM_CACHE", str(tmp_path / "cache"))
    cohort = read_cohort(dicom_cohort)
    assert cohort.layout == "dicom"
    assert cohort.ids == sorted(p.name for p in dicom_cohort.iterdir() if p.name.startswith("SYN"))
    assert cohort.survival_y().shape == (2,) and set(cohort.bboxes) == set(cohort.ids)
    pid = cohort.ids[0]
    np.testing.assert_array_equal(
        _array(cohort[pid].ct), _array(dicom_cohort / "nifti" / f"{pid}_ct.nii.gz"))
    assert load_case(cohort[pid], box=cohort.bboxes[pid]) is not None
    cached = {p.name for p in (tmp_path / "cache").iterdir()}
    assert read_cohort(dicom_cohort).ids == cohort.ids  # the second read uses the same cache
    assert {p.name for p in (tmp_path / "cache").iterdir()} == cached


def test_a_failed_dicom_patient_says_why_when_loaded(dicom_cohort, tmp_path, monkeypatch):
    from hnprog.data.cohort import read_cohort
    from hnprog.data.loading import load_case

    monkeypatch.setenv("HNPROG_DICOM_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "src"
    src.mkdir()
    _one_patient(dicom_cohort, src, "GOOD")
    _, bad = _one_patient(dicom_cohort, src, "BAD")
    shutil.rmtree(bad / "PT")
    cohort = read_cohort(src)
    assert cohort.ids == ["BAD", "GOOD"]
    with pytest.raises(PatientError, match=r"DICOM conversion failed: .*no PT series found"):
        load_case(cohort["BAD"])


def _rtstruct_back_on_ct(rtstruct_path, ct_folder):
    ds = pydicom.dcmread(rtstruct_path)
    ct, slices = read_series(next(s for s in scan_folder(ct_folder) if s.modality == "CT"))
    ref = ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
    assert ref.RTReferencedSeriesSequence[0].SeriesInstanceUID == slices[0].SeriesInstanceUID
    assert ds.StudyInstanceUID == slices[0].StudyInstanceUID
    assert ds.FrameOfReferenceUID == slices[0].FrameOfReferenceUID
    return ds, ct


def test_a_mask_written_as_rtstruct_reads_back_equal(dicom_cohort, tmp_path):
    from hnprog.data.dicom.export import PREDICTED_ROI, write_mask_rtstruct

    pid = sorted(p.name for p in dicom_cohort.iterdir() if p.name.startswith("SYN"))[0]
    nifti_mask = dicom_cohort / "nifti" / f"{pid}_gtvt.nii.gz"
    path = write_mask_rtstruct(nifti_mask, dicom_cohort / pid, tmp_path / "rs.dcm")
    ds, ct = _rtstruct_back_on_ct(path, dicom_cohort / pid / "CT")
    back, name = read_rtstruct_mask(ds, ct)
    assert name == PREDICTED_ROI
    expected = _array(nifti_mask, sitk.sitkUInt8)
    assert expected.sum() > 0
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), expected)
    # every contour names the CT slice it lies on
    uids = {s.SOPInstanceUID for s in read_series(
        next(s for s in scan_folder(dicom_cohort / pid) if s.modality == "CT"))[1]}
    refs = {c.ContourImageSequence[0].ReferencedSOPInstanceUID
            for c in ds.ROIContourSequence[0].ContourSequence}
    assert refs <= uids


def test_cli_predict_dicom_out(dicom_cohort, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from hnprog.cli import main
    from hnprog.testing.presets import make_tiny_preset

    monkeypatch.setenv("HNPROG_DICOM_CACHE", str(tmp_path / "cache"))
    preset = make_tiny_preset(tmp_path / "preset")
    out = tmp_path / "pred"
    result = CliRunner().invoke(main, ["predict", str(dicom_cohort), "-m", str(preset), "-o",
                                       str(out), "--no-overlay", "--dicom-out"])
    assert result.exit_code == 0, result.output
    assert "2 RTSTRUCTs" in result.output
    for pid in (p.name for p in dicom_cohort.iterdir() if p.name.startswith("SYN")):
        ds, ct = _rtstruct_back_on_ct(out / pid / "gtvt_rtstruct.dcm", dicom_cohort / pid)
        predicted = _array(out / pid / "gtvt_mask.nii.gz", sitk.sitkUInt8)
        if predicted.any():
            np.testing.assert_array_equal(sitk.GetArrayFromImage(read_rtstruct_mask(ds, ct)[0]),
                                          predicted)
        else:  # an untrained tiny model may predict nothing: the ROI is there, no contour
            assert "ContourSequence" not in ds.ROIContourSequence[0]
    # on a NIfTI cohort, or with --ct/--pet, --dicom-out is refused in one line
    result = CliRunner().invoke(main, ["predict", str(dicom_cohort / "nifti"), "-m", str(preset),
                                       "-o", str(tmp_path / "p2"), "--dicom-out"])
    assert result.exit_code == 1
    assert "--dicom-out needs DATA to be DICOM patient folders" in result.output


def test_suv_decay_across_midnight_from_the_start_datetime():
    ds = pydicom.Dataset()
    ds.Units, ds.DecayCorrection, ds.PatientWeight = "BQML", "START", 70
    ds.SeriesDate, ds.SeriesTime = "20210928", "003000"
    drug = pydicom.Dataset()
    drug.RadiopharmaceuticalStartTime = "233000"
    drug.RadiopharmaceuticalStartDateTime = "20210927233000"
    drug.RadionuclideTotalDose, drug.RadionuclideHalfLife = 300e6, 6586.2
    ds.RadiopharmaceuticalInformationSequence = [drug]
    result = suv_factor(ds)
    assert result.decay_s == 3600
    assert result.factor == pytest.approx(70_000 / (300e6 * 2 ** (-3600 / 6586.2)), rel=1e-12)


def test_a_malformed_injection_time_fails_once_before_any_patient(dicom_cohort, tmp_path):
    with pytest.raises(InputError, match=r"--injection-time '25:99' is not a time"):
        convert_dicom(dicom_cohort, tmp_path / "out", injection_time="25:99")
    assert not (tmp_path / "out").exists()


def test_a_tilted_series_is_refused(dicom_cohort, tmp_path):
    _, folder = _one_patient(dicom_cohort, tmp_path)
    for k, path in enumerate(sorted((folder / "CT").iterdir())):
        ds = pydicom.dcmread(path)
        row = np.array(ds.ImageOrientationPatient[:3], float)
        ds.ImagePositionPatient = list(np.array(ds.ImagePositionPatient, float) + 0.5 * k * row)
        ds.save_as(path)
    ct = next(s for s in scan_folder(folder) if s.modality == "CT")
    with pytest.raises(InputError, match=r"shifted in-plane by up to \d+\.\d+ mm .*gantry tilt"):
        read_series(ct)


def test_contour_points_lie_on_voxel_edges_by_simpleitk(dicom_cohort):
    """An independent check of the written geometry: SimpleITK maps every contour point back
    to a voxel corner (half-integer x, y) on a slice (integer z) of the NIfTI CT, flipped
    directions included, and the corners bound the mask's voxels."""
    for pid in (p.name for p in dicom_cohort.iterdir() if p.name.startswith("SYN")):
        ct = read_image(dicom_cohort / "nifti" / f"{pid}_ct.nii.gz")
        mask = _array(dicom_cohort / "nifti" / f"{pid}_gtvt.nii.gz", sitk.sitkUInt8)
        ds = pydicom.dcmread(dicom_cohort / pid / "RTSTRUCT.dcm")
        slices = set()
        for contour in ds.ROIContourSequence[0].ContourSequence:
            points = np.array(contour.ContourData, float).reshape(-1, 3)
            index = np.array([ct.TransformPhysicalPointToContinuousIndex(p) for p in points])
            np.testing.assert_allclose(index[:, :2] % 1, 0.5, atol=1e-3)
            np.testing.assert_allclose(index[:, 2], np.round(index[:, 2]), atol=1e-3)
            k = int(round(index[0, 2]))
            slices.add(k)
            ys, xs = np.nonzero(mask[k])
            assert index[:, 0].min() >= xs.min() - 0.5 - 1e-3
            assert index[:, 0].max() <= xs.max() + 0.5 + 1e-3
        assert slices == set(np.flatnonzero(mask.any(axis=(1, 2))))
