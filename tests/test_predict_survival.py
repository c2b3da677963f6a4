"""Survival probabilities in predict's outputs, from the presets' Breslow baselines (#15 item 1)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from hnprog.cli import main
from hnprog.data.cohort import read_cohort
from hnprog.predict import load_predictor, predict_cohort, predict_patient
from hnprog.survival import breslow_baseline, survival_probability
from hnprog.testing.presets import make_tiny_preset

BASELINES = [
    breslow_baseline(event=[1, 0, 1, 1, 0], time=[200.0, 400.0, 700.0, 900.0, 2000.0],
                     risk=[0.5, 0.1, 0.0, -0.2, -0.4]),
    breslow_baseline(event=[1, 1, 0, 1], time=[100.0, 500.0, 800.0, 1500.0],
                     risk=[0.2, 0.0, 0.3, -0.1]),
]


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    root = tmp_path_factory.mktemp("survival_presets")
    with_baseline = [make_tiny_preset(root / f"fold{i}", seed=i, baseline=b)
                     for i, b in enumerate(BASELINES)]
    old = make_tiny_preset(root / "old", seed=2)
    return with_baseline, old


def test_one_preset_writes_the_survival_of_its_baseline(synthetic_cohort, presets, tmp_path):
    predictor = load_predictor(presets[0][0])
    patient = read_cohort(synthetic_cohort).patients[0]
    result = predict_patient(patient.ct, patient.pet, predictor, tmp_path,
                             patient_id=patient.patient_id, overlay=False,
                             times=[365, 730, 1825])
    expected = survival_probability(BASELINES[0], result.risk, [365.0, 730.0, 1825.0])
    risk = pd.read_csv(tmp_path / "risk.csv")
    assert [c for c in risk.columns if c.startswith("survival")] == [
        "survival_365d", "survival_730d", "survival_1825d"]
    np.testing.assert_allclose(risk.loc[0, ["survival_365d", "survival_730d",
                                            "survival_1825d"]].to_numpy(float),
                               expected, atol=1e-6)
    report = json.loads((tmp_path / "report.json").read_text())["survival"]
    assert report["times_days"] == [365.0, 730.0, 1825.0] and report["fold_sd"] is None
    curve = report["curve"]
    assert curve["time_days"][0] == 0.0 and curve["time_days"][-1] == 2000.0
    assert curve["probability"][0] == 1.0
    assert all(a >= b for a, b in zip(curve["probability"], curve["probability"][1:]))


def test_an_ensemble_averages_the_folds_curves_and_reports_their_spread(
        synthetic_cohort, presets, tmp_path):
    folds = presets[0]
    cohort = read_cohort(synthetic_cohort)
    ids = cohort.ids[:2]
    with pytest.warns(RuntimeWarning, match="beyond the longest follow-up"):
        predictions, _, _ = predict_cohort(cohort, load_predictor(list(folds)), tmp_path,
                                           overlay=False, progress=False, ids=ids,
                                           times=[365, 1825])
    member_risks = [pd.read_csv(
        predict_patient(cohort[ids[0]].ct, cohort[ids[0]].pet, load_predictor(f),
                        tmp_path / f"alone{i}", patient_id=ids[0], overlay=False,
                        box=cohort.bboxes.get(ids[0])).out_dir / "risk.csv").loc[0, "risk"]
        for i, f in enumerate(folds)]
    at_365 = [survival_probability(b, r, [365.0])[0] for b, r in zip(BASELINES, member_risks)]
    row = predictions.iloc[0]
    assert row["survival_365d"] == pytest.approx(np.mean(at_365), abs=1e-5)
    assert row["survival_365d_sd"] == pytest.approx(np.std(at_365), abs=1e-5)
    # fold 2 followed its patients for 1500 days only: no 5-year probability
    assert np.isnan(row["survival_1825d"])
    assert (tmp_path / "evaluation" / "metrics.json").is_file()  # the run had endpoints
    written = pd.read_csv(tmp_path / "predictions.csv")
    assert {"survival_365d", "survival_365d_sd", "survival_1825d"} <= set(written.columns)


def test_a_preset_without_baseline_still_predicts_risk_and_says_so(
        synthetic_cohort, presets, tmp_path):
    patient = read_cohort(synthetic_cohort).patients[0]
    with pytest.warns(UserWarning, match="no survival baseline"):
        result = predict_patient(patient.ct, patient.pet, load_predictor(presets[1]), tmp_path,
                                 patient_id=patient.patient_id, overlay=False)
    assert np.isfinite(result.risk) and result.survival is None
    assert "survival_365d" not in pd.read_csv(tmp_path / "risk.csv").columns
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["survival"]["available"] is False
    assert "no survival baseline" in report["survival"]["reason"]


def test_cli_times_option(synthetic_cohort, presets, tmp_path):
    patient = read_cohort(synthetic_cohort).patients[0]
    runner = CliRunner()
    args = ["predict", "--ct", str(patient.ct), "--pet", str(patient.pet), "-m",
            str(presets[0][0]), "-o", str(tmp_path), "--no-overlay"]
    bad = runner.invoke(main, [*args, "--times", "365,soon"])
    assert bad.exit_code == 2 and "positive numbers of days" in bad.output
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        good = runner.invoke(main, [*args, "--times", "730, 365"])
    assert good.exit_code == 0, good.output
    assert list(pd.read_csv(tmp_path / "risk.csv").columns)[-2:] == ["survival_365d",
                                                                     "survival_730d"]


def test_cli_hecktor_format_and_resume_with_other_times(synthetic_cohort, presets, tmp_path):
    runner = CliRunner()
    args = ["predict", str(synthetic_cohort), "-m", str(presets[0][0]), "-o", str(tmp_path),
            "--no-overlay", "--format", "hecktor"]
    first = runner.invoke(main, [*args, "--times", "365"])
    assert first.exit_code == 0, first.output
    hecktor = pd.read_csv(tmp_path / "hecktor_predictions.csv")
    predictions = pd.read_csv(tmp_path / "predictions.csv")
    assert list(hecktor.columns) == ["PatientID", "Prediction"]
    assert hecktor["Prediction"].tolist() == pytest.approx(predictions["risk"].tolist(), abs=1e-6)
    # other days: the patients are predicted again, not resumed with the old columns
    second = runner.invoke(main, [*args, "--times", "730"])
    assert second.exit_code == 0, second.output
    assert "survival_730d" in pd.read_csv(tmp_path / "predictions.csv").columns
