"""The HECKTOR 2021 clinical file reader (#13 item 6) and the clinical covariates."""

from __future__ import annotations

import pandas as pd
import pytest

from hnprog.data import read_clinical
from hnprog.data.clinical import HECKTOR2021_CLINICAL_HEADER, clinical_covariates
from hnprog.errors import InputError

HEADER = ('PatientID,CenterID,"Gender (1=M,0=F)",Age,Tobacco,Alcohol,Performance status,'
          'TNM edition,T-stage,N-stage,M-stage,TNM group,"HPV status (0=-, 1=+)",Chemotherapy,'
          'Estimated weight (kg) for SUV')
ROWS = [
    "CHGJ007,1,1,62,1,,0,7,T3,N2b,M0,IVA,1,1,80",
    "CHMR004,2,0,55.5,,,,,T4a,N0,Mx,,,0,",
    "CHUM010,3,1,,0,1,1,8,Tx,N3,M1,IVB,0,,72.5",
]


def write(tmp_path, header=HEADER, rows=ROWS):
    path = tmp_path / "clinical.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_reads_the_hecktor_2021_file_into_typed_columns(tmp_path):
    table = read_clinical(write(tmp_path))
    assert HEADER.split(",")[0] == HECKTOR2021_CLINICAL_HEADER[0]
    assert table.index.tolist() == ["CHGJ007", "CHMR004", "CHUM010"]
    assert table.loc["CHGJ007", ["age", "t_stage", "n_stage", "m_stage"]].tolist() == [
        62.0, 3, 2, 0]
    assert table.loc["CHGJ007", "hpv"] == "positive" and table.loc["CHUM010", "hpv"] == "negative"
    assert table.loc["CHMR004", "hpv"] == "unknown"  # empty: its own level
    assert table.loc["CHMR004", "t_stage"] == 4 and pd.isna(table.loc["CHMR004", "m_stage"])
    assert pd.isna(table.loc["CHUM010", "t_stage"]) and pd.isna(table.loc["CHUM010", "age"])
    assert bool(table.loc["CHGJ007", "male"]) and not bool(table.loc["CHMR004", "male"])
    assert pd.isna(table.loc["CHGJ007", "alcohol"])
    assert table.loc["CHUM010", "weight_kg"] == 72.5 and table.loc["CHGJ007", "tnm_group"] == "IVA"
    assert str(table["age"].dtype) == "Float64" and str(table["t_stage"].dtype) == "Int64"
    assert str(table["male"].dtype) == "boolean"


def test_columns_may_be_absent_and_reordered(tmp_path):
    table = read_clinical(write(tmp_path, "Age,PatientID", ["70,P1", ",P2"]))
    assert table.loc["P1", "age"] == 70.0 and pd.isna(table.loc["P1", "t_stage"])
    assert (table["hpv"] == "unknown").all()


@pytest.mark.parametrize("header, rows, match", [
    (HEADER + ",Smoker", [ROWS[0] + ",1"], "unknown column 'Smoker'"),
    ("Age,CenterID", ["1,2"], "no PatientID column"),
    (HEADER, [ROWS[0].replace(",62,", ",sixty,")], r"line 2 \(patient CHGJ007\): Age must be a number"),
    (HEADER, [ROWS[0], ROWS[0]], r"line 3 \(patient CHGJ007\): patient listed twice"),
    (HEADER, [ROWS[0].replace("T3", "T9")], "T-stage must be a stage"),
    (HEADER, [ROWS[0].replace("CHGJ007,1,1,", "CHGJ007,1,2,")], r"Gender \(1=M,0=F\) must be 0 or 1"),
    (HEADER, [ROWS[0].replace(",62,", ",-3,")], "must not be negative"),
])
def test_bad_files_name_the_line(tmp_path, header, rows, match):
    with pytest.raises(InputError, match=match):
        read_clinical(write(tmp_path, header, rows))


def test_patients_missing_from_the_file(tmp_path):
    with pytest.raises(InputError, match="1 patients are missing from it, first CHUS001"):
        read_clinical(write(tmp_path), ids=["CHGJ007", "CHUS001"])
    with pytest.raises(InputError, match="file not found"):
        read_clinical(tmp_path / "nothing.csv")


def test_covariates_code_hpv_levels_and_fill_missing_values(tmp_path):
    X = clinical_covariates(read_clinical(write(tmp_path)))
    assert list(X.columns) == ["age", "t_stage", "n_stage", "hpv_positive", "hpv_unknown"]
    assert X["hpv_positive"].tolist() == [1.0, 0.0, 0.0]
    assert X["hpv_unknown"].tolist() == [0.0, 1.0, 0.0]
    assert X.loc["CHUM010", "age"] == pytest.approx((62 + 55.5) / 2)  # the median
    assert X.loc["CHUM010", "t_stage"] == 3.5
    with pytest.raises(InputError, match="unknown clinical covariate 'bmi'"):
        clinical_covariates(read_clinical(write(tmp_path)), ["bmi"])
