"""Cross-validation, cohort training and fine-tuning: checks before training, and tiny runs.

The runs use a generated cohort of 8 patients at a quarter of the real image size, 9 mm
voxels on a 16^3 crop (a 144 mm cube), filters (2, 4, 4, 8, 8), 2 folds, 1 epoch, batch 2,
with eager steps under TensorFlow (see tests/test_training.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from hnprog.data.cohort import Cohort, Patient
from hnprog.errors import InputError
from hnprog.training import TrainingConfig, cross_validate, train_on_cohort
from hnprog.training.runs import check_training_set
from hnprog.transforms import PreprocessConfig


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


CONFIG = TrainingConfig(epochs=1, batch_size=2, preprocessing=PreprocessConfig(crop_size=16),
                        filters=(2, 4, 4, 8, 8))
#: A run small enough for the default suite: 2 training, 2 validation, 4 test patients a fold.
TINY_RUN = CONFIG.replace(preprocessing=PreprocessConfig(spacing=9.0, crop_size=16), n_folds=2,
                          val_fraction=0.5, augment=False,
                          run_eagerly=keras.backend.backend() == "tensorflow")


@pytest.fixture(scope="module")
def tiny_cohort(tmp_path_factory) -> Path:
    from hnprog.data.synthetic import generate_cohort

    return generate_cohort(tmp_path_factory.mktemp("data"), n_patients=8, seed=0,
                           image_scale=0.25, censoring=0.5, n_centres=2)


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


def test_cv_refuses_unknown_task_and_a_different_run(tmp_path):
    with pytest.raises(InputError, match="tasks must be one of"):
        cross_validate(paper_cohort(20, 10), tmp_path, config=CONFIG, tasks=["deep"])
    with pytest.warns(DeprecationWarning, match="tasks="), \
            pytest.raises(InputError, match="tasks must be one of"):
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
    with pytest.raises(InputError, match="fold 1: the validation set is empty"):
        check_training_set(12, 3, 2, n_val=0, where="fold 1")
    check_training_set(12, 1, 12, n_val=3)


def test_cv_refuses_an_empty_validation_set(tmp_path):
    with pytest.raises(InputError, match="fold 0: the validation set is empty"):
        cross_validate(paper_cohort(8, 4), tmp_path, config=TINY_RUN.replace(val_fraction=0.1))
    assert not any(tmp_path.iterdir())


def test_cv_writes_tables_predictions_and_loadable_presets(tmp_path, tiny_cohort):
    from hnprog.presets import from_preset

    out = tmp_path / "cv"
    result = cross_validate(tiny_cohort, out, config=TINY_RUN, tasks=["multitask"],
                            verbose=0)
    assert result.per_fold["fold"].tolist() == [0, 1]
    assert result.per_fold["c_index"].between(0, 1).all()
    ids = set(pd.read_csv(tiny_cohort / "endpoints.csv")["PatientID"])
    assert set(result.predictions["patient_id"]) == ids and len(result.predictions) == len(ids)
    for name in ("results.md", "results.csv", "results.json", "results_per_fold.csv",
                 "predictions.csv", "kaplan_meier_multitask.png", "cv.json"):
        assert (out / name).is_file(), name
    assert "deep multi-task (1,1)" in (out / "results.md").read_text()
    written = pd.read_csv(out / "predictions.csv")
    assert list(written.columns) == ["model", "fold", "patient_id", "time", "event", "risk",
                                     "dice"]
    report = json.loads((out / "results.json").read_text())
    assert report["tasks"] == ["multitask"]
    assert report["log_rank_p"] == result.log_rank_p and "deep multi-task (1,1)" in result.log_rank_p
    x = np.zeros((3, 16, 16, 16, 2), dtype="float32")
    for fold in (1, 2):
        folder = out / "multitask" / f"fold-{fold}" / "preset"
        metadata = json.loads((folder / "hnprog.json").read_text())
        assert metadata["fold"] == fold - 1 and metadata["n_folds"] == 2
        assert metadata["preprocessing"]["spacing"] == 9.0
        assert metadata["preprocessing"]["crop_size"] == 16
        test_row = result.per_fold.iloc[fold - 1]
        assert metadata["metrics"]["test"]["c_index"] == pytest.approx(test_row["c_index"])
        assert metadata["dataset"]["synthetic"] is True
        assert not (folder.parent / "model.keras").exists()  # one model format: the preset
        # the risk threshold: the median of the kept epoch's validation risks from training
        state = json.loads((folder.parent / "checkpoint" / "state.json").read_text())
        assert metadata["outputs"]["risk"]["threshold"] == pytest.approx(
            float(np.median(state["best_val_risk"])), abs=1e-12)
        # the Breslow baseline of the fold's training patients, on the preset's risk scale
        baseline = metadata["outputs"]["risk"]["baseline"]
        train_ids = set(ids) - set(result.predictions.query("fold == @fold - 1")["patient_id"])
        assert baseline["estimator"] == "breslow"
        assert baseline["n_patients"] < len(train_ids)  # the training part, not validation
        assert baseline["cumulative_hazard"] == sorted(baseline["cumulative_hazard"])
        preset = from_preset(folder)
        out_arrays = preset.predict(x)
        assert out_arrays["risk"].shape == (3, 1)
        assert out_arrays["segmentation"].shape == (3, 16, 16, 16, 1)
    with pytest.raises(InputError, match="already holds a run"):
        cross_validate(tiny_cohort, out, config=TINY_RUN, tasks=["multitask"])


@pytest.mark.large
def test_finetune_a_cv_fold_keeps_its_preprocessing(tmp_path, tiny_cohort):
    from hnprog.training import finetune

    cross_validate(tiny_cohort, tmp_path / "cv", config=TINY_RUN, tasks=["multitask"],
                   verbose=0)
    config = TINY_RUN.replace(learning_rate=1e-4, preprocessing=PreprocessConfig(spacing=2.0))
    tuned = finetune(tiny_cohort, tmp_path / "ft", source=tmp_path / "cv/multitask/fold-1",
                     config=config, freeze=True, verbose=0)
    metadata = json.loads((tmp_path / "ft" / "preset" / "hnprog.json").read_text())
    recorded = metadata["preprocessing"]
    assert (recorded["spacing"], recorded["crop_size"]) == (9.0, 16)  # the source's, not 2.0
    encoder = [layer for layer in tuned.model.layers if layer.name.startswith("enc")]
    assert encoder and not any(layer.trainable for layer in encoder)
    assert (tmp_path / "ft" / "preset" / "hnprog.json").is_file()


def test_start_model_loads_a_preset_run_folder_and_warns_for_an_old_one(tmp_path):
    from hnprog.models import build_multitask_unet
    from hnprog.presets import save_to_preset
    from hnprog.training.finetuning import load_start_model

    model = build_multitask_unet((16, 16, 16, 2), filters=(2, 2, 4, 4, 8), dense_units=4)
    grid = PreprocessConfig(spacing=9.0, crop_size=16)
    save_to_preset(model, tmp_path / "new" / "preset", preprocessing=grid)
    loaded, preprocessing = load_start_model(tmp_path / "new")
    assert preprocessing == grid and loaded.count_params() == model.count_params()
    old = tmp_path / "old"
    old.mkdir()
    model.save(old / "model.keras")
    (old / "preprocessing.json").write_text(json.dumps(grid.to_dict()))
    with pytest.warns(DeprecationWarning, match="re-export it as a preset folder"):
        loaded, preprocessing = load_start_model(old)
    assert preprocessing == grid and loaded.count_params() == model.count_params()


def test_cv_with_clinical_adds_the_clinical_and_the_deep_plus_clinical_rows(tmp_path):
    from hnprog.data.synthetic import generate_cohort

    data = generate_cohort(tmp_path / "data", n_patients=12, seed=1, image_scale=0.25,
                           censoring=0.3, n_centres=2, clinical=True)
    out = tmp_path / "cv"
    result = cross_validate(data, out, config=TINY_RUN, tasks=["multitask"],
                            clinical=data / "clinical.csv", verbose=0)
    models = list(dict.fromkeys(result.per_fold["model"]))
    assert models == ["deep multi-task (1,1)", "clinical", "deep multi-task + clinical"]
    assert result.per_fold["fold"].tolist() == [0, 1] * 3
    assert "deep multi-task + clinical" in (out / "results.md").read_text()
    rows = result.predictions
    # every model is tested on the same patients of each fold
    deep = rows[rows["model"] == "deep multi-task (1,1)"].set_index("patient_id")["fold"]
    for model in models[1:]:
        other = rows[rows["model"] == model].set_index("patient_id")["fold"]
        assert other.sort_index().equals(deep.sort_index()), model
    for folder in ("deep_multi_task_1_1", "clinical", "deep_multi_task_clinical"):
        evaluation = json.loads((out / "evaluation" / folder / "metrics.json").read_text())
        assert evaluation["pooled"]["n"] == 12, folder
    assert json.loads((out / "results.json").read_text())["clinical_covariates"] == [
        "age", "t_stage", "n_stage", "hpv_positive", "hpv_unknown"]
    # each fold preset keeps its deep + clinical model, the one its row was scored with
    for fold in (1, 2):
        meta = json.loads((out / "multitask" / f"fold-{fold}" / "preset" / "hnprog.json")
                          .read_text())
        assert meta["outputs"]["risk"]["clinical"]["covariates"] == [
            "age", "t_stage", "n_stage", "hpv_positive", "hpv_unknown"]


def test_train_on_cohort_records_the_baseline_of_its_training_patients(tmp_path, tiny_cohort):
    from hnprog.survival import breslow_baseline

    result = train_on_cohort(tiny_cohort, tmp_path / "run", config=TINY_RUN, verbose=0)
    metadata = json.loads((result.preset / "hnprog.json").read_text())
    baseline = metadata["outputs"]["risk"]["baseline"]
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert baseline["n_patients"] == len(split["train"])
    # the same estimate from the kept model's own risks of those patients
    from hnprog.data.cohort import read_cohort
    from hnprog.training.runs import training_risks

    cohort = read_cohort(tiny_cohort)
    risk = training_risks(result.model, cohort, split["train"], TINY_RUN,
                          cache_dir=tmp_path / "run" / "cache")
    ends = cohort.endpoints.loc[split["train"]]
    expected = breslow_baseline(event=ends["event"], time=ends["time"], risk=risk)
    assert baseline["cumulative_hazard"] == pytest.approx(expected["cumulative_hazard"],
                                                          rel=1e-5)
    assert "survival probabilities | Breslow baseline" in (result.preset / "README.md").read_text()
