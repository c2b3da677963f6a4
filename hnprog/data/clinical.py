"""The HECKTOR 2021 clinical file: reading it into a typed table, and Cox covariates from it.

The file (``hecktor2021_patient_info_training.csv``) has the columns::

    PatientID,CenterID,"Gender (1=M,0=F)",Age,Tobacco,Alcohol,Performance status,TNM edition,
    T-stage,N-stage,M-stage,TNM group,"HPV status (0=-, 1=+)",Chemotherapy,
    Estimated weight (kg) for SUV

and many empty cells. :func:`read_clinical` returns one row per patient with typed columns
(:data:`CLINICAL_COLUMNS`), missing values as ``<NA>``; :func:`clinical_covariates` turns it
into the numeric design matrix of a Cox model, with an unknown HPV status as its own level.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hnprog.errors import InputError

__all__ = [
    "CLINICAL_COLUMNS",
    "DEFAULT_COVARIATES",
    "HECKTOR2021_CLINICAL_HEADER",
    "clinical_covariates",
    "covariate_medians",
    "read_clinical",
]

#: The header of the HECKTOR 2021 clinical file, in its order.
HECKTOR2021_CLINICAL_HEADER = (
    "PatientID", "CenterID", "Gender (1=M,0=F)", "Age", "Tobacco", "Alcohol",
    "Performance status", "TNM edition", "T-stage", "N-stage", "M-stage", "TNM group",
    "HPV status (0=-, 1=+)", "Chemotherapy", "Estimated weight (kg) for SUV",
)

# file column -> (table column, kind)
_COLUMNS = {
    "CenterID": ("centre_id", "integer"),
    "Gender (1=M,0=F)": ("male", "flag"),
    "Age": ("age", "number"),
    "Tobacco": ("tobacco", "flag"),
    "Alcohol": ("alcohol", "flag"),
    "Performance status": ("performance_status", "integer"),
    "TNM edition": ("tnm_edition", "integer"),
    "T-stage": ("t_stage", "T"),
    "N-stage": ("n_stage", "N"),
    "M-stage": ("m_stage", "M"),
    "TNM group": ("tnm_group", "text"),
    "HPV status (0=-, 1=+)": ("hpv", "hpv"),
    "Chemotherapy": ("chemotherapy", "flag"),
    "Estimated weight (kg) for SUV": ("weight_kg", "number"),
}

#: The typed table's columns (index: ``patient_id``). ``t_stage``/``n_stage``/``m_stage`` are
#: the stage numbers (T4a -> 4, Tx -> <NA>); ``hpv`` is ``"positive"``, ``"negative"`` or
#: ``"unknown"``; flags are nullable booleans; ``age`` in years, ``weight_kg`` in kg.
CLINICAL_COLUMNS = tuple(name for name, _ in _COLUMNS.values())

#: The covariates of the clinical Cox model (:func:`clinical_covariates`).
DEFAULT_COVARIATES = ("age", "t_stage", "n_stage", "hpv_positive", "hpv_unknown")

_STAGE = {"T": re.compile(r"^T?([0-4])[A-Da-d]?$", re.I), "N": re.compile(r"^N?([0-3])[A-Ca-c]?$", re.I),
          "M": re.compile(r"^M?([01])$", re.I)}
_UNKNOWN_STAGE = {"x", "tx", "nx", "mx", "tis", "t0is"}


def _parse(kind: str, text: str, where: str, column: str) -> object:
    """One cell as a typed value (None when empty or unknown)."""
    text = text.strip()
    if not text or text.lower() in ("nan", "na", "n/a"):
        return "unknown" if kind == "hpv" else None
    if kind == "text":
        return text
    if kind in _STAGE:
        match = _STAGE[kind].match(text.replace(" ", ""))
        if match:
            return int(match.group(1))
        if text.lower() in _UNKNOWN_STAGE:
            return None
        raise InputError(f"{where}: {column} must be a stage such as {kind}1, {kind}2b or "
                         f"{kind}x. Received: {text!r}")
    try:
        number = float(text)
    except ValueError:
        number = float("nan")
    if not np.isfinite(number):
        raise InputError(f"{where}: {column} must be a number. Received: {text!r}")
    if kind == "hpv" or kind == "flag":
        if number not in (0.0, 1.0):
            raise InputError(f"{where}: {column} must be 0 or 1 (or empty). Received: {text!r}")
        if kind == "hpv":
            return "positive" if number == 1.0 else "negative"
        return bool(number)
    if kind == "integer":
        if number != int(number):
            raise InputError(f"{where}: {column} must be a whole number. Received: {text!r}")
        return int(number)
    if number < 0:
        raise InputError(f"{where}: {column} must not be negative. Received: {text!r}")
    return number


def read_clinical(path: str | os.PathLike, *, ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a HECKTOR 2021 clinical file into a typed table.

    Columns may come in any order and some may be absent (their values are then missing);
    an unknown column is refused. Empty cells are missing values; ``Tx``/``Nx``/``Mx`` stages
    are missing too; an empty HPV status is the level ``"unknown"``.

    Args:
        path: str or PathLike. The CSV file.
        ids: sequence of str, optional. The patients that must be in the file (e.g. the
            cohort's); a missing one is an error naming it. Defaults to None.

    Returns:
        pandas.DataFrame indexed by ``patient_id`` (str) with :data:`CLINICAL_COLUMNS`:
        ``centre_id``, ``performance_status``, ``tnm_edition``, ``t_stage``, ``n_stage``,
        ``m_stage`` (``Int64``), ``male``, ``tobacco``, ``alcohol``, ``chemotherapy``
        (``boolean``), ``age`` (years), ``weight_kg`` (``Float64``), ``tnm_group`` (str) and
        ``hpv`` (category ``negative``/``positive``/``unknown``).

    Raises:
        InputError: one line naming the file and the line (and patient), on a file that is
            not found or not CSV, a missing ``PatientID`` column, an unknown column, an empty
            or repeated patient id, a value that is not of its column's type (a non-numeric
            age, a stage such as ``T9``, a gender of 2), or a patient of ``ids`` not in the
            file.

    Example:
        >>> clinical = read_clinical("hecktor2021_patient_info_training.csv")  # doctest: +SKIP
        >>> clinical.loc["CHGJ007", ["age", "t_stage", "hpv"]].tolist()  # doctest: +SKIP
        [62.0, 3, 'positive']
    """
    from hnprog.data.cohort import read_text_table

    path = Path(path)
    table = read_text_table(path, "clinical file")
    if "PatientID" not in table.columns:
        raise InputError(f"clinical file {path}: no PatientID column (the HECKTOR 2021 "
                         f"header starts PatientID,CenterID,...). Received columns: "
                         f"{list(table.columns)}")
    unknown = [c for c in table.columns if c != "PatientID" and c not in _COLUMNS]
    if unknown:
        raise InputError(f"clinical file {path}: unknown column {unknown[0]!r}; the HECKTOR "
                         f"2021 clinical columns are {', '.join(HECKTOR2021_CLINICAL_HEADER)}")
    records: dict[str, dict[str, object]] = {}
    for line, row in enumerate(table.to_dict("records"), start=2):
        pid = row["PatientID"].strip()
        where = f"clinical file {path}, line {line} (patient {pid or '?'})"
        if not pid:
            raise InputError(f"{where}: empty PatientID")
        if pid in records:
            raise InputError(f"{where}: patient listed twice")
        record: dict[str, object] = {name: None for name in CLINICAL_COLUMNS}
        record["hpv"] = "unknown"
        for column, (name, kind) in _COLUMNS.items():
            if column in row:
                record[name] = _parse(kind, row[column], where, column)
        records[pid] = record
    if ids is not None:
        missing = [p for p in ids if p not in records]
        if missing:
            raise InputError(f"clinical file {path}: {len(missing)} patients are missing from "
                             f"it, first {missing[0]}; add their rows (empty cells are allowed)")
    frame = pd.DataFrame.from_dict(records, orient="index", columns=list(CLINICAL_COLUMNS))
    frame.index = pd.Index(list(records), name="patient_id", dtype=object)
    types = {"number": "Float64", "integer": "Int64", "flag": "boolean", "T": "Int64",
             "N": "Int64", "M": "Int64", "text": "string"}
    for name, kind in _COLUMNS.values():
        if kind == "hpv":
            frame[name] = pd.Categorical(frame[name], categories=["negative", "positive",
                                                                  "unknown"])
        else:
            frame[name] = frame[name].astype(types[kind])
    return frame


def clinical_covariates(clinical: pd.DataFrame,
                        covariates: Sequence[str] = DEFAULT_COVARIATES, *,
                        fill: Mapping[str, float] | None = None) -> pd.DataFrame:
    """The numeric design matrix of a clinical Cox model.

    ``hpv_positive`` and ``hpv_unknown`` are indicators (HPV-negative is the reference, an
    unknown status its own level); every other covariate is a column of the typed table
    (flags as 0/1). A missing numeric value (age, a stage) is replaced by the median of the
    table (:func:`covariate_medians`), or by ``fill`` when given (a saved model's training
    medians), so that no patient is dropped.

    Args:
        clinical: DataFrame. From :func:`read_clinical`.
        covariates: sequence of str. Columns of the typed table, ``hpv_positive`` or
            ``hpv_unknown``. Defaults to :data:`DEFAULT_COVARIATES` (age, T stage, N stage,
            HPV).
        fill: mapping covariate -> float, optional. The value of a missing entry. Defaults to
            the table's own medians.

    Returns:
        pandas.DataFrame of float64, one column per covariate, same index.

    Raises:
        InputError: on an unknown covariate, one missing for every patient (without
            ``fill``), or a covariate that ``fill`` lacks.
    """
    columns = {}
    for name in covariates:
        values = _covariate(clinical, name)
        if fill is None:
            if values.isna().all():
                raise InputError(f"clinical covariate {name!r} is missing for every patient")
            value = values.median()
        elif name not in fill:
            raise InputError(f"no fill value for clinical covariate {name!r}. "
                             f"Received: fill for {sorted(fill)}")
        else:
            value = fill[name]
        columns[name] = values.fillna(value).astype(float)
    return pd.DataFrame(columns, index=clinical.index)


def covariate_medians(clinical: pd.DataFrame,
                      covariates: Sequence[str] = DEFAULT_COVARIATES) -> dict[str, float]:
    """The median of each covariate over the patients that have it: the values
    :func:`clinical_covariates` puts in for a missing entry, and that a saved model keeps.

    Raises:
        InputError: as :func:`clinical_covariates`.
    """
    design = clinical_covariates(clinical, covariates)  # checks names and all-missing
    return {name: float(_covariate(clinical, name).median()) for name in design.columns}


def _covariate(clinical: pd.DataFrame, name: str) -> pd.Series:
    """One covariate as a nullable float column."""
    if name in ("hpv_positive", "hpv_unknown"):
        values = (clinical["hpv"].astype(str) == name.split("_")[1]).astype(float)
    elif name in clinical.columns and name not in ("hpv", "tnm_group"):
        values = clinical[name].astype("Float64")
    else:
        raise InputError(f"unknown clinical covariate {name!r}; use columns of the typed "
                         f"table ({', '.join(CLINICAL_COLUMNS)}) or hpv_positive, "
                         "hpv_unknown")
    return pd.Series(values, index=clinical.index, dtype="Float64")
