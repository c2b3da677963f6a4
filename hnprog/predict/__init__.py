"""Prediction on NIfTI PET/CT pairs: a risk score, a GTVt contour on the patient's own CT grid,
an overlay picture and a report, for one patient or a whole cohort.

- :mod:`hnprog.predict.patient`: one patient, in three steps (load, forward, outputs);
- :mod:`hnprog.predict.outputs`: the per-patient file set and the ``report.json`` schema;
- :mod:`hnprog.predict.cohort`: a cohort, through the cohort runner, resumable.
"""

from hnprog.predict.cohort import predict_cohort
from hnprog.predict.outputs import PatientPrediction
from hnprog.predict.patient import load_predictor, predict_patient, preprocess_config_from_spec

__all__ = [
    "PatientPrediction",
    "load_predictor",
    "predict_cohort",
    "predict_patient",
    "preprocess_config_from_spec",
]
