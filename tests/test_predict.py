"""Tests of prediction on NIfTI pairs and cohorts (tiny model, small synthetic cohort)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from click.testing import CliRunner

from hnprog.cli import main
from hnprog.data.cohort import read_cohort
from hnprog.errors import InputError
from hnprog.metrics import concordance_index
from hnprog.models import build_multitask_unet
from hnprog.predict import load_predictor, predict_cohort, predict_patient, preprocess_config_from_spec
from hnprog.presets import save_to_preset
from hnprog.transforms import PreprocessConfig


@pytest.fixture(scope="module")
def cohort_dir(synthetic_cohort):
    return synthetic_cohort


@pytest.fixture(scope="module")
def preset_dir(tmp_path_factory):
    model = build_multitask_unet(input_shape=(32, 32, 32, 2), filters=(2, 4, 4, 8, 8), dense_units=8)
    folder = tmp_path_factory.mktemp("preset") / "tiny"
    save_to_preset(model, folder, preprocessing=PreprocessConfig(spacing=4.5, crop_size=32),
                   dataset={"name": "none", "synthetic": True})
    return folder


def test_predict_patient_writes_outputs_on_the_original_ct_grid(cohort_dir, preset_dir, tmp_path):
    predictor = load_predictor(preset_dir)
    patient = read_cohort(cohort_dir).patients[0]
    ct = patient.ct
    result = predict_patient(ct, patient.pet, predictor, tmp_path,
                             patient_id=patient.patient_id, reference_mask=patient.mask)
    ct_image = sitk.ReadImage(str(ct))
    for name, pixel in (("gtvt_probability.nii.gz", "32-bit float"), ("gtvt_mask.nii.gz", "8-bit unsigned integer")):
        out = sitk.ReadImage(str(tmp_path / name))
        assert out.GetSize() == ct_image.GetSize()
        np.testing.assert_allclose(out.GetOrigin(), ct_image.GetOrigin(), atol=1e-4)
        np.testing.assert_allclose(out.GetDirection(), ct_image.GetDirection(), atol=1e-6)
        assert out.GetPixelIDTypeAsString() == pixel
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["box"]["source"] == "automatic" and result.box_source == "automatic"
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "gtvt_mask.nii.gz")))
    expected_ml = mask.sum() * np.prod(ct_image.GetSpacing()) / 1000
    assert report["tumour_volume_ml"] == pytest.approx(expected_ml)
    assert 0.0 <= report["dice_with_reference"] <= 1.0
    stages = report["stage_seconds"]
    assert list(stages) == ["read", "preprocess", "forward", "outputs"]
    assert 0 < sum(stages.values()) <= report["seconds"] + 1e-3
    risk = pd.read_csv(tmp_path / "risk.csv")
    assert risk.loc[0, "risk"] == pytest.approx(result.risk, abs=1e-6)
    assert (tmp_path / "overlay.png").read_bytes()[:4] == b"\x89PNG"


def _with_garbage_file(cohort_dir, name, tmp_path):
    """A copy of the cohort folder (as links) in which file ``name`` is corrupt gzip."""
    broken = tmp_path / "broken"
    broken.mkdir()
    for path in cohort_dir.iterdir():
        (broken / path.name).symlink_to(path)
    (broken / name).unlink()
    (broken / name).write_bytes(b"\x1f\x8b garbage")
    return broken


def test_predict_cohort_resumes_and_reports_failures(cohort_dir, preset_dir, tmp_path):
    predictor = load_predictor(preset_dir)
    first, second = read_cohort(cohort_dir).ids[:2]
    cohort = read_cohort(_with_garbage_file(cohort_dir, f"{second}_pt.nii.gz", tmp_path))
    out = tmp_path / "out"
    predictions, failures, metrics = predict_cohort(cohort, predictor, out, overlay=False,
                                                    progress=False)
    assert failures["patient_id"].tolist() == [second]
    assert "PET file" in failures.loc[0, "error"]
    assert len(predictions) == 2 and metrics["n_failed"] == 1
    third = cohort.ids[2]
    assert predictions["patient_id"].tolist() == [first, third]  # cohort order
    # the pipelined cohort run gives what a one-patient call gives
    alone = predict_patient(cohort[third].ct, cohort[third].pet, predictor, tmp_path / "alone",
                            patient_id=third, box=cohort.bboxes.get(third), overlay=False)
    assert predictions["risk"].iloc[1] == pytest.approx(alone.risk, abs=1e-6)
    ends = cohort.endpoints.loc[predictions["patient_id"]]
    if ends["event"].any():
        expected = concordance_index(event=ends["event"].to_numpy(), time=ends["time"].to_numpy(),
                                     risk=predictions["risk"].to_numpy())
        assert metrics["c_index"] == pytest.approx(expected)
    stamp = (out / first / "report.json").stat().st_mtime_ns
    predict_cohort(cohort, predictor, out, overlay=False, progress=False)
    assert (out / first / "report.json").stat().st_mtime_ns == stamp  # resumed, not redone


def test_a_failure_while_writing_outputs_is_recorded_and_the_others_finish(
        cohort_dir, preset_dir, tmp_path):
    # The reference mask is read in the output stage, which runs in a background thread.
    predictor = load_predictor(preset_dir)
    first = read_cohort(cohort_dir).ids[0]
    cohort = read_cohort(_with_garbage_file(cohort_dir, f"{first}_gtvt.nii.gz", tmp_path))
    predictions, failures, metrics = predict_cohort(cohort, predictor, tmp_path / "out",
                                                    overlay=False, progress=False)
    assert failures["patient_id"].tolist() == [first]
    assert "mask" in failures.loc[0, "error"]
    assert predictions["patient_id"].tolist() == cohort.ids[1:]
    assert not (tmp_path / "out" / first / "report.json").exists()


def test_preprocess_config_from_spec_checks_channels():
    assert preprocess_config_from_spec({"spacing": 2.0, "crop_size": 64,
                                        "channel_order": ["CT", "PET"]}).spacing == 2.0
    with pytest.raises(InputError, match="channels"):
        preprocess_config_from_spec({"channel_order": ["PET", "CT"]})
    with pytest.raises(InputError, match="records no preprocessing"):
        preprocess_config_from_spec(None)


def test_cli_predict_one_patient_and_bad_arguments(cohort_dir, preset_dir, tmp_path):
    runner = CliRunner()
    patient = read_cohort(cohort_dir).patients[-1]
    args = ["predict", "--ct", str(patient.ct), "--pet", str(patient.pet), "-m", str(preset_dir), "-o", str(tmp_path),
            "--no-overlay", "--bbox", "-72,72,-100,44,-60,84"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "risk (log-hazard)" in result.output
    assert json.loads((tmp_path / "report.json").read_text())["box"]["source"] == "given"
    result = runner.invoke(main, ["predict", "-m", str(preset_dir), "-o", str(tmp_path)])
    assert result.exit_code == 1 and "nothing to predict" in result.output
    result = runner.invoke(main, [*args[:-1], "1,2,3"])
    assert result.exit_code == 2 and "six numbers" in result.output
    assert result.output.strip().count("\n") == 0  # one line, not click's usage block
    assert "predict --help')" in result.output
    swapped = ["predict", "--ct", str(patient.pet), "--pet", str(patient.ct), *args[5:]]
    result = runner.invoke(main, [*args, "--auto-box"])
    assert result.exit_code == 1 and "do not combine it with --bbox" in result.output
    result = runner.invoke(main, ["predict", str(cohort_dir), "-m", str(preset_dir), "-o",
                                  str(tmp_path / "cohort"), "--no-overlay", "--auto-box"])
    assert result.exit_code == 0, result.output
    sources = pd.read_csv(tmp_path / "cohort" / "predictions.csv")["box_source"]
    assert set(sources) == {"automatic"}  # bboxes.csv in the folder is ignored
    result = runner.invoke(main, swapped)  # one line naming the likely mistake
    assert result.exit_code == 1 and "are the CT and PET swapped?" in result.output


def test_a_reference_mask_on_another_grid_is_mapped_by_physical_position(cohort_dir, preset_dir,
                                                                          tmp_path):
    """A mask of the CT's size but another origin covers other tissue: its Dice is that of
    the tissue it covers, not of its voxel indices (issue: 0.813 where the truth was 0.0)."""
    predictor = load_predictor(preset_dir)
    patient = read_cohort(cohort_dir).patients[0]
    kwargs = dict(patient_id=patient.patient_id, box=read_cohort(cohort_dir).bboxes.get(
        patient.patient_id), overlay=False)
    predicted = predict_patient(patient.ct, patient.pet, predictor, tmp_path / "p", **kwargs)
    predicted_mask = sitk.ReadImage(str(tmp_path / "p" / "gtvt_mask.nii.gz"))
    # the prediction itself, as a reference: Dice 1 when on the same grid...
    sitk.WriteImage(predicted_mask, str(tmp_path / "same.nii.gz"))
    same = predict_patient(patient.ct, patient.pet, predictor, tmp_path / "a",
                           reference_mask=tmp_path / "same.nii.gz", **kwargs)
    # ... and far from it when the same voxels are moved 150 mm up (still inside the CT, which
    # is checked, with a warning that the mask is on neither image's grid)
    moved = sitk.Image(predicted_mask)
    moved.SetOrigin([o + shift for o, shift in zip(predicted_mask.GetOrigin(), (0, 0, 150.0))])
    sitk.WriteImage(moved, str(tmp_path / "moved.nii.gz"))
    with pytest.warns(UserWarning, match="neither the CT's grid"):
        far = predict_patient(patient.ct, patient.pet, predictor, tmp_path / "b",
                              reference_mask=tmp_path / "moved.nii.gz", **kwargs)
    assert predicted.tumour_volume_ml, "the tiny model must predict some GTVt for this test"
    assert same.dice == pytest.approx(1.0)
    assert far.dice == pytest.approx(0.0)
    assert same.hd95_mm == 0.0 and far.hd95_mm > 50  # the surfaces, in mm
    assert json.loads((tmp_path / "b" / "report.json").read_text())[
        "hd95_mm_with_reference"] == pytest.approx(far.hd95_mm)


@pytest.fixture
def overlays(monkeypatch):
    """Each overlay's arguments and layout, as predict draws them (the real picture too)."""
    from hnprog import plotting

    import functools

    drawn = []
    real = plotting.plot_overlay

    @functools.wraps(real)  # the same signature, for the CLI's default
    def recording(*args, **kwargs):
        drawn.append((kwargs, real(*args, **kwargs)))
        return drawn[-1][1]

    monkeypatch.setattr(plotting, "plot_overlay", recording)
    return drawn


def test_an_overlay_without_a_predicted_gtvt_centres_on_the_reference_else_the_box(
        cohort_dir, preset_dir, tmp_path, overlays):
    """Issue #13 item 8: the empty prediction was taken for the centre, so the views showed
    the CT's middle (the brain) instead of the tumour."""
    predictor = load_predictor(preset_dir)
    patient = read_cohort(cohort_dir).patients[0]
    common = dict(patient_id=patient.patient_id, threshold=1.01)  # no voxel reaches it
    with_reference = predict_patient(patient.ct, patient.pet, predictor, tmp_path / "r",
                                     reference_mask=patient.mask, **common)
    alone = predict_patient(patient.ct, patient.pet, predictor, tmp_path / "b", **common)
    assert with_reference.tumour_volume_ml == 0 == alone.tumour_volume_ml
    (kwargs, layout), (box_kwargs, box_layout) = overlays
    assert layout.centred_on == "reference GTVt"
    reference = sitk.ReadImage(str(patient.mask)) > 0
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(reference)
    np.testing.assert_allclose(layout.centre, stats.GetCentroid(1), atol=1e-3)
    assert box_kwargs["box"] == alone.box and box_layout.centred_on == "model's box"
    np.testing.assert_allclose(box_layout.centre, alone.box.center)


def test_cli_suv_window_reaches_the_overlay_and_is_checked(cohort_dir, preset_dir, tmp_path,
                                                           overlays):
    patient = read_cohort(cohort_dir).patients[0]
    args = ["predict", "--ct", str(patient.ct), "--pet", str(patient.pet), "-m",
            str(preset_dir), "-o", str(tmp_path)]
    result = CliRunner().invoke(main, [*args, "--suv-window", "2,8"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert [kwargs["suv_window"] for kwargs, _ in overlays] == [(2.0, 8.0), (0.0, 10.0)]
    assert [text for text, _ in overlays[0][1].colour_bar_labels] == ["8", "5", "2"]
    for bad in ("8,2", "0", "a,b"):
        result = CliRunner().invoke(main, [*args, "--suv-window", bad])
        assert result.exit_code == 2 and "Received: suv_window=" in result.output, bad
    assert len(overlays) == 2  # refused before any prediction


def test_a_cohort_redoes_its_overlays_for_another_suv_window(cohort_dir, preset_dir, tmp_path):
    predictor = load_predictor(preset_dir)
    cohort = read_cohort(cohort_dir)
    first = cohort.ids[0]
    out = tmp_path / "out"
    options = dict(progress=False, ids=[first])
    predict_cohort(cohort, predictor, out, **options)
    stamp = (out / first / "overlay.png").stat().st_mtime_ns
    _, _, metrics = predict_cohort(cohort, predictor, out, suv_window=(0, 10), **options)
    assert metrics["n_resumed"] == 1  # the default window, given: the same overlay
    _, _, metrics = predict_cohort(cohort, predictor, out, suv_window=(0, 5), **options)
    assert metrics["n_resumed"] == 0
    assert (out / first / "overlay.png").stat().st_mtime_ns != stamp
    with pytest.raises(InputError, match="suv_window"):
        predict_cohort(cohort, predictor, out, suv_window=(5, 0), **options)


def test_synthetic_data_weights_are_named_on_every_run_and_in_the_report(
        synthetic_cohort, tmp_path):
    from click.testing import CliRunner

    from hnprog.cli import main
    from hnprog.data.cohort import read_cohort
    from hnprog.testing.presets import make_tiny_preset

    synthetic = make_tiny_preset(tmp_path / "synthetic")  # labelled synthetic, as shipped
    real = make_tiny_preset(tmp_path / "real", dataset={"name": "my cohort", "synthetic": False})
    patient = read_cohort(synthetic_cohort).patients[0]
    args = ["predict", "--ct", str(patient.ct), "--pet", str(patient.pet), "--no-overlay"]
    for run in ("first", "second"):  # every run says it, not only the first
        result = CliRunner().invoke(main, [*args, "-m", str(synthetic), "-o",
                                           str(tmp_path / run)])
        assert result.exit_code == 0, result.output
        assert "Warning: the weights of synthetic was trained on hnprog's synthetic" in \
            result.output
        report = json.loads((tmp_path / run / "report.json").read_text())
        assert len(report["warnings"]) == 1 and "mean nothing for real patients" in \
            report["warnings"][0]
    result = CliRunner().invoke(main, [*args, "-m", str(real), "-o", str(tmp_path / "real_out")])
    assert result.exit_code == 0 and "Warning:" not in result.output
    assert json.loads((tmp_path / "real_out" / "report.json").read_text())["warnings"] == []


_NO_KERAS = """
import sys

class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("keras", "tensorflow", "jax", "torch"):
            raise ImportError(f"{name} imported before the inputs were checked")

sys.meta_path.insert(0, _Blocked())
from hnprog.cli import main
main(sys.argv[1:], prog_name="hnprog")
"""


@pytest.mark.parametrize(("extra", "status", "words"), [
    (["--bbox", "-30,30,-30,30,-30,30"], 2, "60 x 60 x 60 mm but the model sees a 144 mm cube"),
    (["--bbox", "1,2,3"], 2, "six numbers"),
    (["--center", "0,0"], 2, "three numbers x,y,z"),
    (["--bbox", "-72,72,-72,72,-72,72", "--auto-box"], 1, "--auto-box ignores every box"),
])
def test_input_mistakes_are_reported_before_keras_starts(cohort_dir, preset_dir, tmp_path,
                                                         extra, status, words):
    import subprocess
    import sys

    patient = read_cohort(cohort_dir).patients[0]
    args = ["predict", "--ct", str(patient.ct), "--pet", str(patient.pet), "-m",
            str(preset_dir), "-o", str(tmp_path / "out"), *extra]
    done = subprocess.run([sys.executable, "-c", _NO_KERAS, *args], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == status, done.stderr
    assert words in " ".join(done.stderr.split()) and "imported before" not in done.stderr
    assert not (tmp_path / "out").exists()
