"""hnprog: prognosis of head-and-neck cancer from FDG-PET/CT.

A Keras 3 model zoo for Andrearczyk et al., "Multi-task Deep Segmentation and Radiomics for
Automatic Prognosis in Head and Neck Cancer" (PRIME/MICCAI 2021): the multi-task 3D UNet, Cox
and Dice losses, preprocessing transforms, the handcrafted radiomics baseline, presets and a
command-line tool.

The public names are imported lazily, so ``import hnprog`` (and the CLI's ``--help``) does not
pay for importing Keras and TensorFlow until a model, loss or metric is used.

Importing hnprog turns on TensorFlow's oneDNN kernels (``TF_ENABLE_ONEDNN_OPTS=1``) unless
the variable is already set: TensorFlow leaves them off on CPUs without AVX-512, where they
make the UNet 6-9 times faster (see :mod:`hnprog.cpu`).
"""

from __future__ import annotations

import importlib
from typing import Any

from hnprog.cpu import enable_onednn

__version__ = "0.1.0"

enable_onednn()

# public name -> module that defines it
_PUBLIC_API: dict[str, str] = {
    # errors, survival outcomes, I/O
    "HnprogError": "hnprog.errors",
    "InputError": "hnprog.errors",
    "PatientError": "hnprog.errors",
    "make_survival_y": "hnprog.survival",
    "check_survival_y": "hnprog.survival",
    "read_image": "hnprog.io",
    "write_image": "hnprog.io",
    # == core: models, losses, metrics ==
    "build_multitask_unet": "hnprog.models",
    "Task": "hnprog.models.task",
    "CoxLoss": "hnprog.losses",
    "DiceLoss": "hnprog.losses",
    "UncertaintyWeighting": "hnprog.models.layers",
    "GradientReversal": "hnprog.models.layers",
    "risk_activation_map": "hnprog.models.risk_map",
    "concordance_index": "hnprog.metrics",
    "dice_score": "hnprog.metrics",
    "surface_distances": "hnprog.metrics",
    # == geometry ==
    "BoundingBox": "hnprog.geometry",
    "Grid": "hnprog.geometry",
    # == data ==
    "auto_bbox": "hnprog.data.bbox",
    "load_case": "hnprog.data.loading",
    "run_cohort": "hnprog.data.runner",
    "generate_cohort": "hnprog.data.synthetic",
    "oracle_cindex": "hnprog.data.synthetic",
    "Patient": "hnprog.data.cohort",
    "Cohort": "hnprog.data.cohort",
    "read_cohort": "hnprog.data.cohort",
    "read_endpoints": "hnprog.data.cohort",
    "convert_dicom": "hnprog.data.dicom.convert",
    "write_synthetic_dicom": "hnprog.data.dicom.write",
    "read_clinical": "hnprog.data.clinical",
    "PreprocessConfig": "hnprog.transforms",
    "preprocess_case": "hnprog.transforms",
    "invert_to_reference": "hnprog.transforms",
    "preprocess_patient": "hnprog.data.preprocess",
    "preprocess_cohort": "hnprog.data.preprocess",
    "load_preprocessed": "hnprog.data.preprocess",
    "CohortDataset": "hnprog.data.dataset",
    "CaseCache": "hnprog.data.dataset",
    "censoring_balanced_indices": "hnprog.data.dataset",
    # == radiomics ==
    "RadiomicsCoxPipeline": "hnprog.radiomics.baseline",
    "extract_features": "hnprog.radiomics.features",
    "extract_cohort_features": "hnprog.radiomics.cohort",
    "read_features": "hnprog.radiomics.cohort",
    "run_radiomics_cv": "hnprog.radiomics.cv",
    "FoldSplit": "hnprog.splits",
    "cross_validation_splits": "hnprog.splits",
    "leave_one_centre_out_splits": "hnprog.splits",
    "write_cv_report": "hnprog.reporting",
    "plot_kaplan_meier": "hnprog.reporting",
    "evaluate_survival": "hnprog.evaluation",
    "breslow_baseline": "hnprog.survival",
    "survival_probability": "hnprog.survival",
    # == training ==
    "TrainingConfig": "hnprog.training",
    "train_model": "hnprog.training",
    "train_on_cohort": "hnprog.training",
    "cross_validate": "hnprog.training",
    "finetune": "hnprog.training",
    # == hub ==
    "from_preset": "hnprog.presets",
    "save_to_preset": "hnprog.presets",
    "list_presets": "hnprog.presets",
    "download_preset": "hnprog.presets",
    "Preset": "hnprog.presets",
    "upload_preset": "hnprog.presets",
    "FoldEnsemble": "hnprog.presets",
    "export_runtime": "hnprog.presets",
    "ExportedPreset": "hnprog.presets",
    # == prediction ==
    "predict_patient": "hnprog.predict",
    "predict_cohort": "hnprog.predict",
}

__all__ = ["__version__", *_PUBLIC_API]


def __getattr__(name: str) -> Any:
    module_name = _PUBLIC_API.get(name)
    if module_name is None:
        raise AttributeError(f"module 'hnprog' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
