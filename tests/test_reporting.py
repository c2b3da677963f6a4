"""Tests of hnprog.reporting: Table-1 style CV reports and Kaplan-Meier plots."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hnprog.errors import InputError
from hnprog.reporting import (
    mean_and_standard_error,
    median_risk_split,
    plot_kaplan_meier,
    summarise_folds,
    write_cv_report,
)


def test_mean_and_standard_error_matches_scipy_sem():
    values = [0.61, 0.74, 0.69, 0.80, 0.65]
    mean, se = mean_and_standard_error(values)
    assert mean == pytest.approx(np.mean(values), abs=1e-12)
    assert se == pytest.approx(stats.sem(values), abs=1e-12)


def test_mean_and_standard_error_edge_cases():
    mean, se = mean_and_standard_error([0.7])
    assert mean == 0.7 and math.isnan(se)
    mean, se = mean_and_standard_error([0.6, float("nan"), 0.8])
    assert mean == pytest.approx(0.7) and se == pytest.approx(stats.sem([0.6, 0.8]))
    assert all(math.isnan(v) for v in mean_and_standard_error([]))


@pytest.fixture
def per_fold() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": ["multi-task"] * 3 + ["segmentation"] * 3,
            "fold": [0, 1, 2] * 2,
            "c_index": [0.70, 0.75, 0.72, 0.40, 0.42, 0.43],
            "dice": [0.58, 0.60, 0.57, 0.68, 0.69, 0.67],
        }
    )


def test_summarise_folds_one_row_per_model(per_fold):
    summary = summarise_folds(per_fold)
    assert list(summary.index) == ["multi-task", "segmentation"]
    assert summary.loc["multi-task", "c_index_mean"] == pytest.approx(np.mean([0.70, 0.75, 0.72]))
    assert summary.loc["segmentation", "dice_se"] == pytest.approx(stats.sem([0.68, 0.69, 0.67]))
    assert (summary["n_folds"] == 3).all()


def test_write_cv_report_writes_the_paper_table_in_three_formats(per_fold, tmp_path):
    paths = write_cv_report(per_fold, tmp_path, title="Table 1", extra={"seed": 0})
    assert set(paths) == {"per_fold_csv", "csv", "markdown", "json"}
    markdown = paths["markdown"].read_text()
    mean, se = np.mean([0.70, 0.75, 0.72]), stats.sem([0.70, 0.75, 0.72])
    assert "# Table 1" in markdown
    assert "| model | C-index | Dice |" in markdown
    assert f"| multi-task | {mean:.3f} ± {se:.3f} |" in markdown
    report = json.loads(paths["json"].read_text())
    assert report["metrics"] == ["c_index", "dice"] and report["seed"] == 0
    assert report["models"]["segmentation"]["c_index"]["per_fold"] == [0.40, 0.42, 0.43]
    assert report["models"]["multi-task"]["c_index"]["se"] == pytest.approx(se)
    summary = pd.read_csv(paths["csv"], index_col="model")
    assert summary.loc["multi-task", "c_index_mean"] == pytest.approx(mean)
    pd.testing.assert_frame_equal(pd.read_csv(paths["per_fold_csv"]), per_fold)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary file


def test_write_cv_report_without_model_column(tmp_path):
    per_fold = pd.DataFrame({"fold": range(5), "c_index": [0.7, 0.6, 0.8, 0.7, 0.65]})
    paths = write_cv_report(per_fold, tmp_path)
    assert "| model | 0.690 ± 0.033 |" in paths["markdown"].read_text()


@pytest.mark.parametrize(
    ("table", "metrics", "match"),
    [
        pytest.param({"c_index": [0.7]}, None, "needs a 'fold' column", id="no_fold"),
        pytest.param({"fold": [0], "c_index": [0.7]}, ["dice"], "no column 'dice'", id="missing"),
        pytest.param({"fold": [0], "name": ["a"]}, None, "no metric column", id="no_metric"),
        pytest.param({"fold": [0], "c": ["x"]}, ["c"], "must be numeric", id="text_metric"),
    ],
)
def test_write_cv_report_bad_tables(tmp_path, table, metrics, match):
    with pytest.raises(InputError, match=match):
        write_cv_report(pd.DataFrame(table), tmp_path, metrics=metrics)


@pytest.fixture
def survival_data():
    rng = np.random.default_rng(0)
    risk = rng.normal(size=80)
    time = rng.exponential(np.exp(-risk)) * 500
    censor = rng.uniform(0, 800, size=80)
    return np.minimum(time, censor), time <= censor, risk


def test_median_split_log_rank_matches_lifelines(survival_data):
    pytest.importorskip("lifelines", reason="reference: pip install 'hnprog[reference]'")
    from lifelines.statistics import logrank_test

    time, event, risk = survival_data
    split = median_risk_split(event=event, time=time, risk=risk)
    high = risk > np.median(risk)
    np.testing.assert_array_equal(split["high_risk"], high)
    assert split["n_high"] == 40 and split["n_low"] == 40
    reference = logrank_test(time[high], time[~high], event[high], event[~high])
    assert split["p_value"] == pytest.approx(reference.p_value, rel=1e-6)
    assert split["chisq"] == pytest.approx(reference.test_statistic, rel=1e-6)


def test_plot_kaplan_meier_writes_png_and_returns_p_value(survival_data, tmp_path):
    time, event, risk = survival_data
    path = tmp_path / "km" / "curves.png"
    p_value = plot_kaplan_meier(event=event, time=time, risk=risk, path=path, title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert p_value == pytest.approx(
        median_risk_split(event=event, time=time, risk=risk)["p_value"]
    )


def test_report_functions_positional_form_is_deprecated(survival_data, tmp_path):
    time, event, risk = survival_data
    expected = median_risk_split(event=event, time=time, risk=risk)
    with pytest.warns(DeprecationWarning, match=r"median_risk_split\(event=\.\.\., time="):
        split = median_risk_split(time, event, risk)
    assert split["p_value"] == expected["p_value"]
    with pytest.warns(DeprecationWarning, match=r"plot_kaplan_meier\(event=.*path=\.\.\.\)"):
        p_value = plot_kaplan_meier(time, event, risk, tmp_path / "km.png")
    assert p_value == expected["p_value"]


def test_kaplan_meier_bad_inputs(tmp_path):
    with pytest.raises(InputError, match="every patient falls in one group"):
        median_risk_split(event=[1, 0, 1], time=[10.0, 20.0, 30.0], risk=[0.5, 0.5, 0.5])
    with pytest.raises(InputError, match="one value per patient"):
        median_risk_split(event=[1, 0], time=[10.0, 20.0], risk=[0.1, 0.2, 0.3])
    with pytest.raises(InputError, match="NaN"):
        plot_kaplan_meier(
            event=[1, 0], time=[10.0, 20.0], risk=[0.1, float("nan")], path=tmp_path / "x.png"
        )
    assert not (tmp_path / "x.png").exists()


def test_cv_result_has_one_schema_and_writes_predictions(per_fold, tmp_path):
    from hnprog.reporting import CV_FOLD_COLUMNS, CV_PREDICTION_COLUMNS, CVResult

    predictions = pd.DataFrame({"patient_id": ["a", "b"], "fold": [0, 1], "risk": [0.1, 0.2],
                                "time": [100.0, 200.0], "event": [True, False],
                                "model": "multi-task"})
    result = CVResult(per_fold.assign(n_selected=3), predictions, extra={"seed": 0})
    assert tuple(result.per_fold.columns[:4]) == CV_FOLD_COLUMNS
    assert list(result.per_fold.columns[4:]) == ["n_selected"]  # model-specific, after
    assert tuple(result.predictions.columns) == CV_PREDICTION_COLUMNS
    assert result.predictions["dice"].isna().all()  # no segmentation: NaN
    mean, se = result.mean_and_se("c_index", model="multi-task")
    assert (mean, se) == pytest.approx((np.mean([0.70, 0.75, 0.72]), stats.sem([0.70, 0.75, 0.72])))
    with pytest.raises(InputError, match="several models"):
        result.c_index_mean
    paths = write_cv_report(result, tmp_path, metrics=["c_index", "dice"])
    written = pd.read_csv(paths["predictions"])
    assert tuple(written.columns) == CV_PREDICTION_COLUMNS
    report = json.loads(paths["json"].read_text())
    assert report["seed"] == 0 and report["log_rank_p"] == {}
    with pytest.raises(InputError, match="needs the columns"):
        CVResult(per_fold.drop(columns="c_index"), predictions)
