"""hnprog.evaluation against scikit-survival on scikit-survival's own data sets (#15 item 2)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sksurv.compare import compare_survival
from sksurv.datasets import load_gbsg2, load_veterans_lung_cancer
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.metrics import (concordance_index_censored, concordance_index_ipcw,
                            cumulative_dynamic_auc, integrated_brier_score)
from sksurv.nonparametric import kaplan_meier_estimator

from hnprog.errors import InputError
from hnprog.evaluation import (calibration_table, evaluate_survival, predictions_table_metrics,
                               write_evaluation)
from hnprog.survival import breslow_baseline, survival_probability

TIMES = [365.0, 730.0, 1095.0, 1825.0]


@pytest.fixture(scope="module")
def gbsg2():
    X, y = load_gbsg2()
    X = X[["age", "pnodes", "progrec", "estrec", "tsize"]].to_numpy(float)
    risk = CoxPHSurvivalAnalysis().fit(X, y).predict(X)
    baseline = breslow_baseline(event=y["cens"], time=y["time"], risk=risk)
    return y, risk, survival_probability(baseline, risk, TIMES)


def test_metrics_equal_scikit_survival_on_gbsg2(gbsg2):
    y, risk, survival = gbsg2
    result = evaluate_survival(event=y["cens"], time=y["time"], risk=risk, times=TIMES,
                               survival=survival, n_bootstrap=50)
    pooled = result["pooled"]
    assert pooled["n"] == len(y) and pooled["n_events"] == int(y["cens"].sum())
    assert pooled["harrell_c"] == pytest.approx(
        concordance_index_censored(y["cens"], y["time"], risk)[0], abs=1e-12)
    assert pooled["uno_c"] == pytest.approx(concordance_index_ipcw(y, y, risk)[0], abs=1e-12)
    auc, mean_auc = cumulative_dynamic_auc(y, y, risk, TIMES)
    assert list(pooled["time_auc"].values()) == pytest.approx(auc.tolist(), abs=1e-12)
    assert pooled["mean_auc"] == pytest.approx(mean_auc, abs=1e-12)
    assert pooled["integrated_brier_score"] == pytest.approx(
        integrated_brier_score(y, y, survival, TIMES), abs=1e-12)
    low, high = pooled["harrell_c_ci95"]
    assert low < pooled["harrell_c"] < high
    median_split = (risk > np.median(risk)).astype(int)
    assert pooled["log_rank_p"] == pytest.approx(compare_survival(y, median_split)[1])


def test_calibration_by_quintile_against_kaplan_meier(gbsg2):
    y, risk, survival = gbsg2
    table = calibration_table(event=y["cens"], time=y["time"], risk=risk,
                              predicted=survival[:, 1])
    assert [g["n"] for g in table["groups"]] == [138, 137, 137, 137, 137]
    lowest = np.argsort(risk, kind="stable")[:138]
    km_t, km_s = kaplan_meier_estimator(y["cens"][lowest], y["time"][lowest])
    assert table["groups"][0]["observed"] == pytest.approx(km_s[km_t <= 730][-1])
    assert table["groups"][0]["predicted"] == pytest.approx(survival[lowest, 1].mean())
    # predicted survival falls from the lowest to the highest risk quintile
    predicted = [g["predicted"] for g in table["groups"]]
    assert predicted == sorted(predicted, reverse=True)
    assert table["slope"] > 0


def test_per_centre_blocks_equal_the_pooled_metric_on_their_patients():
    X, y = load_veterans_lung_cancer()
    risk = X["Karnofsky_score"].to_numpy(float) * -1.0
    centres = np.where(X["Treatment"] == "standard", "A", "B")
    result = evaluate_survival(event=y["Status"], time=y["Survival_in_days"], risk=risk,
                               times=[30, 90, 180], centres=centres, n_bootstrap=20)
    assert set(result["per_centre"]) == {"A", "B"}
    rows = centres == "A"
    assert result["per_centre"]["A"]["harrell_c"] == pytest.approx(concordance_index_censored(
        y["Status"][rows], y["Survival_in_days"][rows], risk[rows])[0])
    assert result["per_centre"]["A"]["n"] == int(rows.sum())


def test_times_outside_follow_up_are_left_out_with_a_note():
    result = evaluate_survival(event=[1, 0, 1, 1, 0, 1], time=[10, 20, 30, 40, 50, 60],
                               risk=[5, 1, 4, 3, 0, 2], times=[25, 1000], n_bootstrap=0)
    pooled = result["pooled"]
    assert list(pooled["time_auc"]) == ["25"] and pooled["harrell_c_ci95"] is None
    assert any("outside the follow-up" in note for note in pooled["notes"])


def test_table_metrics_refuse_patients_without_endpoint_and_write_files(gbsg2, tmp_path):
    y, risk, survival = gbsg2
    ids = [f"P{i:03d}" for i in range(len(y))]
    endpoints = pd.DataFrame({"event": y["cens"], "time": y["time"]}, index=ids)
    predictions = pd.DataFrame({"patient_id": ids, "risk": risk,
                                **{f"survival_{t:g}d": survival[:, i]
                                   for i, t in enumerate(TIMES)}})
    with pytest.raises(InputError, match="have no endpoint"):
        predictions_table_metrics(predictions, endpoints.iloc[1:])
    result, table = predictions_table_metrics(predictions, endpoints, n_bootstrap=20)
    assert result["times_days"] == TIMES and result["pooled"]["calibration"] is not None
    files = write_evaluation(result, tmp_path, event=table["event"], time=table["time"],
                             risk=table["risk"], title="GBSG2")
    assert set(files) == {"json", "markdown", "kaplan_meier", "calibration", "forest"}
    for name in ("kaplan_meier", "calibration", "forest"):
        assert files[name].read_bytes()[:4] == b"\x89PNG"
    assert json.loads(files["json"].read_text())["pooled"]["n"] == len(y)
    assert "Harrell's C (95% CI)" in files["markdown"].read_text()


def test_bad_survival_shape():
    with pytest.raises(InputError, match="survival must be of shape"):
        evaluate_survival(event=[1, 0], time=[1, 2], risk=[1, 0], times=[1.5],
                          survival=np.ones((2, 2)))


def test_hecktor_convention_equals_lifelines_and_counts_missing_patients_as_discordant():
    pytest.importorskip("lifelines", reason="reference: pip install 'hnprog[reference]'")
    from lifelines.utils import concordance_index as lifelines_cindex

    from hnprog.evaluation import hecktor_concordance

    X, y = load_veterans_lung_cancer()
    risk = -X["Karnofsky_score"].to_numpy(float) + 0.01 * X["Age_in_years"].to_numpy(float)
    event, time = y["Status"], y["Survival_in_days"]
    assert hecktor_concordance(event=event, time=time, prediction=risk) == pytest.approx(
        lifelines_cindex(time, -risk, event))
    # patient 0 missing: its comparable pairs become non-concordant
    missing = risk.copy()
    missing[0] = np.nan
    worse = hecktor_concordance(event=[1, 1, 0], time=[1.0, 2.0, 3.0],
                                prediction=[np.nan, 2.0, 1.0])
    assert worse == pytest.approx(1 / 3)  # pairs (0,1), (0,2) lost, (1,2) concordant
    assert hecktor_concordance(event=event, time=time, prediction=missing) < \
        hecktor_concordance(event=event, time=time, prediction=risk)


def test_cli_evaluate_an_hnprog_and_a_hecktor_file(gbsg2, tmp_path):
    from click.testing import CliRunner

    from hnprog.cli import main

    y, risk, survival = gbsg2
    ids = [f"CHGJ{i:03d}" if i % 2 else f"CHUM{i:03d}" for i in range(len(y))]
    pd.DataFrame({"PatientID": ids, "Progression": y["cens"].astype(int),
                  "Progression free survival": y["time"]}).to_csv(tmp_path / "e.csv", index=False)
    pd.DataFrame({"patient_id": ids, "risk": risk, "risk_group": np.where(
        risk > np.median(risk), "high", "low"), **{f"survival_{t:g}d": survival[:, i]
                                                  for i, t in enumerate(TIMES)}}).to_csv(
        tmp_path / "p.csv", index=False)
    pd.DataFrame({"PatientID": ids[1:], "Prediction": risk[1:]}).to_csv(tmp_path / "h.csv",
                                                                        index=False)
    runner = CliRunner()
    out = runner.invoke(main, ["evaluate", str(tmp_path / "p.csv"), "-e", str(tmp_path / "e.csv"),
                               "-o", str(tmp_path / "eval"), "--bootstrap", "20"])
    assert out.exit_code == 0, out.output
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(metrics["per_centre"]) == {"CHGJ", "CHUM"}
    assert metrics["pooled"]["integrated_brier_score"] is not None
    assert (tmp_path / "eval" / "forest_c_index.png").is_file()
    out = runner.invoke(main, ["evaluate", str(tmp_path / "h.csv"), "-e", str(tmp_path / "e.csv"),
                               "-o", str(tmp_path / "eval_h"), "--bootstrap", "0",
                               "--pooled-only"])
    assert out.exit_code == 0, out.output
    metrics = json.loads((tmp_path / "eval_h" / "metrics.json").read_text())
    assert metrics["hecktor_missing_patients"] == [ids[0]]
    assert metrics["hecktor_c_index"] < metrics["pooled"]["harrell_c"]
    bad = runner.invoke(main, ["evaluate", str(tmp_path / "e.csv"), "-e", str(tmp_path / "e.csv"),
                               "-o", str(tmp_path / "x")])
    assert bad.exit_code == 1 and "needs columns patient_id,risk" in bad.output


def test_calibration_has_no_slope_without_an_event_by_the_horizon():
    """Every observed survival is 1 then: a least-squares slope of 0 would only say so."""
    predicted = np.linspace(0.5, 0.9, 25)
    late = calibration_table(event=np.ones(25, bool), time=np.full(25, 1000.0),
                             risk=np.arange(25.0), predicted=predicted)
    assert [g["observed"] for g in late["groups"]] == [1.0] * 5
    assert late["slope"] is None and late["intercept"] is None
    early = calibration_table(event=np.arange(25) % 4 == 0, time=np.arange(25) * 80.0 + 50,
                              risk=np.arange(25.0), predicted=predicted)
    assert early["slope"] is not None


def test_calibration_needs_five_patients_per_risk_group():
    """Quintiles of 2-3 patients have Kaplan-Meier survivals of 0, 0.5 or 1: no table."""
    rng = np.random.default_rng(0)
    kwargs = dict(event=rng.random(24) < 0.5, time=rng.uniform(100, 2000, 24),
                  risk=rng.normal(size=24), predicted=rng.uniform(0.5, 0.9, 24))
    assert calibration_table(**kwargs) is None
    assert calibration_table(**kwargs, min_group_size=2)["groups"][0]["n"] == 5


def test_a_small_cohort_says_why_it_has_no_calibration():
    rng = np.random.default_rng(1)
    n = 20
    time = rng.uniform(100, 2500, n)
    survival = np.tile([0.9, 0.8, 0.7, 0.6], (n, 1))
    result = evaluate_survival(event=rng.random(n) < 0.5, time=time, risk=rng.normal(size=n),
                               survival=survival, n_bootstrap=0)
    assert result["pooled"]["calibration"] is None
    assert any(note.startswith("calibration: fewer than 25 patients")
               for note in result["pooled"]["notes"])
