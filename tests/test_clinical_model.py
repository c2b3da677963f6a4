"""The deep + clinical Cox model: fitted on training risks, stored in presets, applied by
predict (issue #15 item 3)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from hnprog.cli import main
from hnprog.data.clinical import clinical_covariates, covariate_medians
from hnprog.data.cohort import read_cohort
from hnprog.errors import InputError
from hnprog.predict import load_predictor, predict_cohort, predict_patient
from hnprog.presets.format import checked_clinical_model
from hnprog.radiomics.baseline import RadiomicsCoxPipeline
from hnprog.radiomics.clinical import (clinical_model_params, deep_clinical_risk,
                                       fit_deep_clinical_model)
from hnprog.survival import make_survival_y
from hnprog.testing.presets import make_tiny_preset


def _clinical(ids, seed=0):
    rng = np.random.default_rng(seed)
    n = len(ids)
    return pd.DataFrame({
        "age": pd.array(rng.normal(60, 8, n).round(), dtype="Float64"),
        "t_stage": pd.array(rng.integers(1, 5, n), dtype="Int64"),
        "n_stage": pd.array(rng.integers(0, 4, n), dtype="Int64"),
        "hpv": pd.Categorical(rng.choice(["positive", "negative", "unknown"], n)),
    }, index=pd.Index(ids, name="PatientID"))


@pytest.fixture(scope="module")
def training():
    rng = np.random.default_rng(3)
    ids = [f"P{i:03d}" for i in range(60)]
    clinical = _clinical(ids)
    clinical.loc["P000", "age"] = pd.NA
    deep = pd.Series(rng.normal(size=60), index=ids)
    hazard = np.exp(deep.to_numpy() + 0.05 * (clinical["age"].fillna(60).to_numpy(float) - 60))
    time = rng.exponential(1000 / hazard)
    endpoints = pd.DataFrame({"event": time < 1500, "time": np.minimum(time, 1500)}, index=ids)
    return deep, clinical, endpoints


def test_the_record_reproduces_the_fitted_pipeline(training):
    deep, clinical, endpoints = training
    record = fit_deep_clinical_model(deep, clinical, endpoints)
    # the same model fitted directly: same design, same protocol
    fill = covariate_medians(clinical)
    X = clinical_covariates(clinical, fill=fill).assign(deep_risk=deep.to_numpy())
    y = make_survival_y(event=endpoints["event"].to_numpy(), time=endpoints["time"].to_numpy())
    pipeline = RadiomicsCoxPipeline(**clinical_model_params(X.shape[1]),
                                    validation_fraction=None, drop_constant=True).fit(X, y)
    np.testing.assert_allclose(deep_clinical_risk(record, deep.to_numpy(), clinical),
                               pipeline.predict(X), rtol=1e-10, atol=1e-10)
    assert record["fill"]["age"] == pytest.approx(float(clinical["age"].median()))
    assert record["n_patients"] == 60 and record["n_events"] == int(endpoints["event"].sum())
    coef = {t["name"]: t["coef"] for t in record["terms"]}
    assert coef["deep_risk"] > 0.5  # the image risk carries the signal it was built with
    json.dumps(record)  # JSON-ready


def test_a_missing_covariate_takes_the_training_median(training):
    deep, clinical, endpoints = training
    record = fit_deep_clinical_model(deep, clinical, endpoints)
    row = clinical.loc[["P001"]].copy()
    filled = row.copy()
    row.loc["P001", "age"] = pd.NA
    filled.loc["P001", "age"] = record["fill"]["age"]
    assert deep_clinical_risk(record, [0.3], row)[0] == pytest.approx(
        deep_clinical_risk(record, [0.3], filled)[0])


def test_bad_records_and_tables_are_refused(training):
    deep, clinical, endpoints = training
    record = fit_deep_clinical_model(deep, clinical, endpoints)
    with pytest.raises(InputError, match="scale must be > 0"):
        checked_clinical_model({**record, "terms": [{**record["terms"][0], "scale": 0}]})
    with pytest.raises(InputError, match="neither deep_risk nor a covariate"):
        checked_clinical_model({**record, "terms": [{**record["terms"][0], "name": "weight"}]})
    with pytest.raises(InputError, match="one value per covariate"):
        checked_clinical_model({**record, "fill": {}})
    with pytest.raises(InputError, match="lacks 1 of the training patients, first PX"):
        fit_deep_clinical_model(pd.concat([deep, pd.Series([0.0], index=["PX"])]), clinical,
                                endpoints)
    with pytest.raises(InputError, match="one image risk per clinical row"):
        deep_clinical_risk(record, [0.1, 0.2], clinical.iloc[:1])


@pytest.fixture(scope="module")
def clinical_presets(tmp_path_factory, training):
    deep, clinical, endpoints = training
    root = tmp_path_factory.mktemp("clinical_presets")
    records = [fit_deep_clinical_model(deep.iloc[i::2], clinical, endpoints) for i in (0, 1)]
    folds = [make_tiny_preset(root / f"fold{i}", seed=i, clinical_model=r)
             for i, r in enumerate(records)]
    return folds, records, make_tiny_preset(root / "plain", seed=5)


def test_predict_writes_the_deep_plus_clinical_risk(synthetic_cohort, clinical_presets,
                                                    tmp_path):
    folds, records, plain = clinical_presets
    cohort = read_cohort(synthetic_cohort)
    table = _clinical(cohort.ids, seed=4)
    patient = cohort.patients[0]
    result = predict_patient(patient.ct, patient.pet, load_predictor(folds[0]), tmp_path / "one",
                             patient_id=patient.patient_id, overlay=False, clinical=table)
    expected = deep_clinical_risk(records[0], [result.risk], table.loc[[patient.patient_id]])
    risk = pd.read_csv(tmp_path / "one" / "risk.csv")
    assert risk.loc[0, "risk_clinical"] == pytest.approx(expected[0], abs=1e-6)
    report = json.loads((tmp_path / "one" / "report.json").read_text())["risk"]["clinical"]
    assert report["fold_sd"] is None and set(report["covariates"]) == set(records[0]["fill"])

    # an ensemble averages each fold's own combination of its own image risk
    predictions, _, _ = predict_cohort(cohort, load_predictor(list(folds)), tmp_path / "cohort",
                                       overlay=False, progress=False, clinical=table)
    first = predictions.set_index("patient_id").loc[patient.patient_id]
    members = [pd.read_csv(predict_patient(
        patient.ct, patient.pet, load_predictor(f), tmp_path / f"alone{i}",
        patient_id=patient.patient_id, overlay=False,
        box=cohort.bboxes.get(patient.patient_id)).out_dir / "risk.csv").loc[0, "risk"]
        for i, f in enumerate(folds)]
    combined = [deep_clinical_risk(r, [m], table.loc[[patient.patient_id]])[0]
                for r, m in zip(records, members)]
    assert first["risk_clinical"] == pytest.approx(np.mean(combined), abs=1e-5)
    assert "risk_clinical" in pd.read_csv(tmp_path / "cohort" / "predictions.csv").columns

    # a changed covariate redoes that patient on resume; the others are kept
    changed = table.copy()
    changed.loc[patient.patient_id, "age"] = 99.0
    _, _, metrics = predict_cohort(cohort, load_predictor(list(folds)), tmp_path / "cohort",
                                   overlay=False, progress=False, clinical=changed)
    assert metrics["n_resumed"] == len(cohort) - 1


def test_predict_refuses_clinical_it_cannot_use(synthetic_cohort, clinical_presets, tmp_path):
    folds, _, plain = clinical_presets
    cohort = read_cohort(synthetic_cohort)
    table = _clinical(cohort.ids)
    with pytest.raises(InputError, match="records no clinical Cox model"):
        predict_cohort(cohort, load_predictor([folds[0], plain]), tmp_path / "a",
                       overlay=False, progress=False, clinical=table)
    with pytest.raises(InputError, match=f"lacks 1 of the patients to predict: {cohort.ids[0]}"):
        predict_cohort(cohort, load_predictor(folds[0]), tmp_path / "b", overlay=False,
                       progress=False, clinical=table.drop(index=cohort.ids[0]))
    assert not (tmp_path / "b" / cohort.ids[1]).exists()  # refused before any patient ran


def test_the_card_lists_the_covariates(clinical_presets):
    folds, _, plain = clinical_presets
    card = (folds[0] / "README.md").read_text()
    assert "needs age, t_stage, n_stage, hpv_positive, hpv_unknown" in card
    assert "none: the risk uses the CT and PET only" in (plain / "README.md").read_text()


def test_cli_predict_clinical(synthetic_cohort, clinical_presets, tmp_path):
    from hnprog.data.clinical import HECKTOR2021_CLINICAL_HEADER

    folds, _, _ = clinical_presets
    cohort = read_cohort(synthetic_cohort)
    path = tmp_path / "clinical.csv"
    rows = [dict.fromkeys(HECKTOR2021_CLINICAL_HEADER, "") for _ in cohort.ids]
    for row, pid in zip(rows, cohort.ids):
        row.update({"PatientID": pid, "Age": "61", "T-stage": "T2", "N-stage": "N1",
                    "HPV status (0=-, 1=+)": "1"})
    pd.DataFrame(rows).to_csv(path, index=False)
    result = CliRunner().invoke(main, ["predict", str(synthetic_cohort), "-m", str(folds[0]),
                                       "-o", str(tmp_path / "out"), "--no-overlay",
                                       "--clinical", str(path)])
    assert result.exit_code == 0, result.output
    assert pd.read_csv(tmp_path / "out" / "predictions.csv")["risk_clinical"].notna().all()
