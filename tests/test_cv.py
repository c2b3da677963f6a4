"""Cross-validation, cohort training and fine-tuning: checks before training, and tiny runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hnprog.data.cohort import Cohort, Patient
from hnprog.errors import InputError
from hnprog.training import TrainingConfig, cross_validate, train_on_cohort
from hnprog.training.trainer import check_training_set


def paper_cohort(n: int, n_events: int) -> Cohort:
    """A cohort whose image files do not exist: enough for every check made before training."""
    ids = [f"P{i:03d}" for i in range(n)]
    patients = [
        Patient(i, Path(f"{i}_ct.nii.gz"), Path(f"{i}_pt.nii.gz"), Path(f"{i}_gtvt.nii.gz"))
        for i in ids
    ]
    endpoints = pd.DataFrame(
        {"event": np.arange(n) < n_events, "time": np.linspace(100.0, 2000.0, n)},
        index=pd.Index(ids, name="patient_id"),
    )
    return Cohort(root=Path("."), patients=patients, endpoints=endpoints)


CONFIG = TrainingConfig(epochs=1, batch_size=2, crop_size=16, filters=(8, 4, 4, 8, 8))


def test_cv_refuses_fewer_patients_than_folds(tmp_path):
    with pytest.raises(InputError, match="cannot make 5 folds from 3 patients"):
        cross_validate(paper_cohort(3, 2), tmp_path, config=CONFIG)
    assert not any(tmp_path.iterdir())  # nothing written before the check


def test_cv_refuses_a_fold_without_training_events(tmp_path):
    with pytest.raises(InputError, match="holds no event|only 2 events"):
        cross_validate(paper_cohort(20, 2), tmp_path, config=CONFIG)


def test_cv_refuses_batch_larger_than_training_set(tmp_path):
    config = CONFIG.replace(batch_size=64)
    with pytest.raises(InputError, match="fold 0: batch_size is larger than the training set"):
        cross_validate(paper_cohort(20, 10), tmp_path, config=config)


def test_cv_refuses_unknown_setting_and_a_different_run(tmp_path):
    with pytest.raises(InputError, match="settings must be among"):
        cross_validate(paper_cohort(20, 10), tmp_path, config=CONFIG, settings=["deep"])
    (tmp_path / "cv.json").write_text('{"fingerprint": {"training": {}}}')
    with pytest.raises(InputError, match="already holds a run"):
        cross_validate(paper_cohort(20, 10), tmp_path, config=CONFIG)
    with pytest.raises(InputError, match="different run"):
        cross_validate(paper_cohort(20, 10), tmp_path, config=CONFIG, resume=True)


def test_train_on_cohort_checks_before_training(tmp_path):
    with pytest.raises(InputError, match="batch_size is larger than the training set"):
        train_on_cohort(paper_cohort(10, 5), tmp_path, config=CONFIG.replace(batch_size=9))
    cohort = paper_cohort(10, 5)
    cohort.endpoints = None
    with pytest.raises(InputError, match="has no endpoints"):
        train_on_cohort(cohort, tmp_path, config=CONFIG)


def test_check_training_set_messages():
    with pytest.raises(InputError, match="fold 3: the training set \\(12 patients\\) holds no"):
        check_training_set(12, 0, 2, where="fold 3")
    check_training_set(12, 1, 12)


@pytest.mark.large
def test_cv_end_to_end_on_a_tiny_synthetic_cohort(tmp_path):
    from hnprog.data.synthetic import generate_cohort
    from hnprog.training import finetune

    root = generate_cohort(tmp_path / "data", n_patients=12, seed=0, image_scale=0.5,
                           censoring=0.5)
    config = TrainingConfig(epochs=1, batch_size=2, spacing=8.0, crop_size=16,
                            filters=(8, 4, 4, 8, 8), n_folds=2, augment=False)
    result = cross_validate(root, tmp_path / "cv", config=config, settings=["multitask"])
    assert len(result.per_fold) == 2
    assert set(result.predictions["patient_id"]) == set(pd.read_csv(root / "endpoints.csv")
                                                        ["PatientID"])
    for name in ("results.md", "results.csv", "results.json", "predictions.csv",
                 "kaplan_meier_multitask.png", "multitask/fold-1/model.keras"):
        assert (tmp_path / "cv" / name).is_file(), name
    tuned = finetune(root, tmp_path / "ft", source=tmp_path / "cv/multitask/fold-1",
                     config=config.replace(learning_rate=1e-4), freeze=True)
    assert (tmp_path / "ft" / "preprocessing.json").is_file()
    encoder = [layer for layer in tuned.model.layers if layer.name.startswith("enc")]
    assert encoder and not any(layer.trainable for layer in encoder)
