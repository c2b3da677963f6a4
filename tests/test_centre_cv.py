"""Leave-one-centre-out splits and cross-validation, with the adversarial branch and the
uncertainty weighting wired through a tiny run (quarter-size synthetic cohort, 16^3 crop)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pandas as pd
import pytest

from hnprog.errors import InputError
from hnprog.splits import leave_one_centre_out_splits, make_splits
from hnprog.training import TrainingConfig, cross_validate, train_on_cohort
from hnprog.training.runs import centre_labels
from hnprog.transforms import PreprocessConfig

TINY = TrainingConfig(epochs=1, batch_size=2, filters=(2, 4, 4, 8, 8), val_fraction=0.3,
                      preprocessing=PreprocessConfig(spacing=9.0, crop_size=16), augment=False,
                      run_eagerly=keras.backend.backend() == "tensorflow")


@pytest.fixture(scope="module")
def three_centres(tmp_path_factory):
    from hnprog.data.synthetic import generate_cohort

    return generate_cohort(tmp_path_factory.mktemp("data"), n_patients=12, seed=4,
                           image_scale=0.25, censoring=0.3, n_centres=3)


def test_each_centre_is_one_test_fold_and_never_trained_on():
    centres = np.array(list("ABCABCABCABC"))
    event = np.array([1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 1, 0], bool)
    splits = leave_one_centre_out_splits(event, centres, val_fraction=0.25, seed=0)
    assert [sorted(set(centres[s.test])) for s in splits] == [["A"], ["B"], ["C"]]
    for s in splits:
        held_out = centres[s.test[0]]
        assert held_out not in set(centres[s.train]) | set(centres[s.val])
        assert sorted(np.concatenate([s.train, s.val, s.test]).tolist()) == list(range(12))
        assert len(s.val) == 2  # 25% of the 8 other patients
    assert [s.test.tolist() for s in make_splits(event, split="centre", groups=centres,
                                                 val_fraction=0.25)] == \
        [s.test.tolist() for s in splits]


def test_centre_split_bad_inputs_say_what_to_do():
    event = [1, 0, 1, 0]
    with pytest.raises(InputError, match="at least 2 centres"):
        leave_one_centre_out_splits(event, ["A"] * 4)
    with pytest.raises(InputError, match="1 patients have none"):
        leave_one_centre_out_splits(event, ["A", "A", None, "B"])
    with pytest.raises(InputError, match="needs each patient's centre"):
        make_splits(event, split="centre")
    with pytest.raises(InputError, match="split must be one of"):
        make_splits(event, split="random")
    with pytest.warns(UserWarning, match="centre C .* has no event"):
        leave_one_centre_out_splits([1, 1, 1, 1, 0, 0], list("AABBCC"), val_fraction=0.0)


def test_centre_labels_refuse_unknown_and_single_centres():
    assert centre_labels({"a": "X", "b": "Y", "c": "X"}, ["a", "b", "c"]) == \
        {"a": 0, "b": 1, "c": 0}
    with pytest.raises(InputError, match="at least 2 centres"):
        centre_labels({"a": "X", "b": "X"}, ["a", "b"])
    with pytest.raises(InputError, match="1 have none"):
        centre_labels({"a": "X", "b": None}, ["a", "b"])


@pytest.mark.filterwarnings("ignore:concordance_index. no comparable pair:RuntimeWarning")
def test_leave_one_centre_out_cv_with_adversarial_branch_and_uncertainty(three_centres,
                                                                         tmp_path):
    from hnprog.presets import from_preset

    config = TINY.replace(adversarial_centres=0.5, loss_weighting="uncertainty")
    result = cross_validate(three_centres, tmp_path, config=config, tasks=["multitask"],
                            split="centre", verbose=0)
    truth = pd.read_csv(three_centres / "truth.csv")
    assert sorted(result.per_fold["test_centre"]) == sorted(truth["centre"].unique())
    assert json.loads((tmp_path / "cv.json").read_text())["fingerprint"]["split"] == "centre"
    history = pd.read_csv(tmp_path / "multitask" / "fold-1" / "history.csv")
    assert {"loss_weight_risk", "loss_weight_segmentation", "centre_loss"} <= set(history)
    preset = from_preset(tmp_path / "multitask" / "fold-1" / "preset")
    assert sorted(preset.outputs) == ["risk", "segmentation"]  # the centre head stays behind
    weighting = preset.model.get_layer("loss_weighting")  # the learnt weights come with it
    assert not np.allclose(keras.ops.convert_to_numpy(weighting.log_variances), 0.0)


def test_adversarial_branch_refuses_a_single_training_centre(three_centres, tmp_path):
    one = {pid: "ONE" for pid in pd.read_csv(three_centres / "truth.csv")["PatientID"]}
    with pytest.raises(InputError, match="at least 2 centres"):
        train_on_cohort(three_centres, tmp_path, config=TINY.replace(adversarial_centres=1.0),
                        centres=one, verbose=0)


def test_centre_effect_shifts_case_mix_ct_and_pet_by_centre(three_centres, tmp_path):
    from hnprog.data.synthetic import generate_cohort

    confounded = generate_cohort(tmp_path, n_patients=12, seed=4, image_scale=0.25,
                                 censoring=0.3, n_centres=3, centre_effect=1.0)
    plain = pd.read_csv(three_centres / "truth.csv").set_index("PatientID")
    truth = pd.read_csv(confounded / "truth.csv").set_index("PatientID")
    assert list(truth.index) == list(plain.index)  # same patients, same centres
    mix = truth["centre"].map({"SYNA": -1.0, "SYNB": 0.0, "SYNC": 1.0})
    change = truth["log_hazard"] - plain["log_hazard"]
    # case mix: larger tumours, hence higher true log-hazards, at SYNC, smaller at SYNA
    assert (change[mix > 0] > 0).all() and (change[mix < 0] < 0).all()
    assert (change[mix == 0].abs() < 1e-5).all()
    from hnprog.data.synthetic import _CentreEffect

    low, middle, high = (_CentreEffect.of(k, 3, 1.0) for k in range(3))
    assert (low.ct_shift_hu, middle.ct_shift_hu, high.ct_shift_hu) == (-40.0, 0.0, 40.0)
    assert (low.pet_scale, high.pet_scale) == pytest.approx((0.7, 1.3))
    assert (low.extra_fwhm_mm, high.extra_fwhm_mm) == (0.0, 6.0)
    assert _CentreEffect.of(0, 3, 0.0) is None
    with pytest.raises(InputError, match="centre_effect"):
        generate_cohort(tmp_path / "bad", n_patients=2, centre_effect=2.0)


def test_uncertainty_run_exports_its_weights_and_finetunes_with_a_new_centre_branch(
        three_centres, tmp_path):
    from hnprog.presets import from_preset
    from hnprog.training import finetune

    run = train_on_cohort(three_centres, tmp_path / "run", verbose=0,
                          config=TINY.replace(loss_weighting="uncertainty"))
    layer = from_preset(run.preset).model.get_layer("loss_weighting")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.log_variances),
                               keras.ops.convert_to_numpy(
                                   run.model.get_layer("loss_weighting").log_variances))
    tuned = finetune(three_centres, tmp_path / "ft", source=tmp_path / "run", verbose=0,
                     config=TINY.replace(loss_weighting="uncertainty", adversarial_centres=0.2,
                                         learning_rate=1e-4))
    assert "centre" in tuned.model.output and "centre" not in from_preset(tuned.preset).outputs


def test_cli_takes_the_new_options_and_refuses_a_negative_adversarial_weight(tmp_path):
    from click.testing import CliRunner

    from hnprog.cli import main

    runner = CliRunner()
    for command in (["cv"], ["train"], ["finetune"]):
        text = runner.invoke(main, [*command, "--help"]).output
        assert "--loss-weighting [fixed|uncertainty]" in text and "--adversarial-centres" in text
    assert "--split [stratified|centre]" in runner.invoke(main, ["cv", "--help"]).output
    assert "--split" in runner.invoke(main, ["radiomics", "cv", "--help"]).output
    assert "--risk-map" in runner.invoke(main, ["predict", "--help"]).output
    result = runner.invoke(main, ["train", str(tmp_path), "--out", str(tmp_path / "o"),
                                  "--adversarial-centres", "-1"])
    assert result.exit_code == 2 and "adversarial-centres" in result.output


def test_radiomics_cv_leaves_one_centre_out():
    from hnprog.radiomics.cv import run_radiomics_cv

    rng = np.random.default_rng(0)
    ids = [f"{c}{i:03d}" for c in ("AAA", "BBB", "CCC") for i in range(20)]
    size = rng.uniform(0, 1, len(ids))
    features = pd.DataFrame({"size": size, "noise": rng.normal(size=len(ids)),
                             "other": rng.normal(size=len(ids))}, index=ids)
    time = rng.exponential(1000 * np.exp(-2 * size))
    endpoints = pd.DataFrame({"event": rng.uniform(size=len(ids)) < 0.6, "time": time},
                             index=ids)
    result = run_radiomics_cv(features, endpoints, split="centre",
                              groups={i: i[:3] for i in ids})
    assert list(result.per_fold["test_centre"]) == ["AAA", "BBB", "CCC"]
    assert (result.per_fold["n_test"] == 20).all()
