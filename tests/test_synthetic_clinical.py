"""Clinical variables of the synthetic cohort: the HECKTOR 2021 file, known effects (#15 item 4)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hnprog.data import read_clinical
from hnprog.data.clinical import clinical_covariates
from hnprog.data.cohort import read_endpoints
from hnprog.data.synthetic import (CLINICAL_EFFECTS, draw_clinical, generate_cohort,
                                   oracle_cindex, read_truth)
from hnprog.radiomics.clinical import run_clinical_cv


@pytest.fixture(scope="module")
def clinical_cohort(tmp_path_factory):
    return generate_cohort(tmp_path_factory.mktemp("clinical_cohort"), n_patients=100, seed=2,
                           image_scale=0.25, censoring=0.3, clinical=True)


def test_the_clinical_part_adds_to_the_true_log_hazard_and_images_do_not_change(
        clinical_cohort, tmp_path):
    truth = read_truth(clinical_cohort)
    table = read_clinical(clinical_cohort / "clinical.csv", ids=list(truth.index))
    plain = generate_cohort(tmp_path, n_patients=3, seed=2, image_scale=0.25, censoring=0.3)
    first = truth.index[0]
    for suffix in ("_ct.nii.gz", "_pt.nii.gz", "_gtvt.nii.gz"):
        assert (plain / f"{first}{suffix}").read_bytes() == (
            clinical_cohort / f"{first}{suffix}").read_bytes()
    expected = (CLINICAL_EFFECTS["age_per_year"] * (table["age"].astype(float) - 60)
                + CLINICAL_EFFECTS["t_stage"] * (table["t_stage"].astype(float) - 2.5)
                + CLINICAL_EFFECTS["n_stage"] * (table["n_stage"].astype(float) - 1.5)
                + CLINICAL_EFFECTS["hpv_positive"] * (truth["hpv_true"] - 0.45))
    known = table["age"].notna()
    np.testing.assert_allclose(expected[known], truth.loc[known, "clinical_log_hazard"],
                               atol=1e-6)
    # the image-only truth of the plain cohort plus the clinical part
    plain_truth = read_truth(plain)
    assert (table["hpv"] == "unknown").any() and (table["hpv"] == "positive").any()
    assert oracle_cindex(truth) > 0.65
    assert set(plain_truth.columns) < set(truth.columns)


def test_the_clinical_model_recovers_the_signs(clinical_cohort):
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    from hnprog.survival import make_survival_y

    X = clinical_covariates(read_clinical(clinical_cohort / "clinical.csv"))
    ends = read_endpoints(clinical_cohort / "endpoints.csv").loc[X.index]
    cox = CoxPHSurvivalAnalysis().fit(X.to_numpy(), make_survival_y(
        event=ends["event"].to_numpy(), time=ends["time"].to_numpy()))
    coef = dict(zip(X.columns, cox.coef_))
    assert coef["age"] > 0 and coef["t_stage"] > 0 and coef["n_stage"] > 0
    assert coef["hpv_positive"] < 0  # protective
    result = run_clinical_cv(read_clinical(clinical_cohort / "clinical.csv"),
                             read_endpoints(clinical_cohort / "endpoints.csv"), n_folds=3)
    assert result.c_index_mean > 0.55
    assert set(result.per_fold["model"]) == {"clinical"}
    assert result.extra["covariates"] == list(X.columns)


def test_draw_clinical_design():
    table, log_hazard = draw_clinical(4000, seed=1)
    assert abs(log_hazard.mean()) < 0.1  # centred on the design's mean patient
    assert 0.5 < table["hpv_true"].mean() < 0.6 and 0.27 < 1 - table["hpv_known"].mean() < 0.33
    assert set(np.unique(table["t_stage"])) == {1, 2, 3, 4}
    assert pd.Series(table["n_stage"]).value_counts(normalize=True)[2] == pytest.approx(0.5,
                                                                                       abs=0.03)
