"""Preset folders: save/load round trip, checksums, the class allow-list, the registry."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from hnprog import presets
from hnprog.errors import InputError
from hnprog.presets import (
    FORMAT_VERSION,
    Preset,
    check_config_classes,
    from_preset,
    list_presets,
    load_registry,
    save_to_preset,
    verify_preset,
)
from hnprog.presets import registry as preset_registry
from hnprog.testing.presets import TINY_PREPROCESSING as PREPROCESSING
from hnprog.testing.presets import make_tiny_preset as make_preset
from hnprog.testing.presets import tiny_images as images
from hnprog.testing.presets import tiny_model
from hnprog.transforms import PreprocessConfig


def _rewrite_hashes(folder: Path) -> None:
    """Re-record the sha256 of the files, as an attacker who edits hnprog.json too would."""
    metadata = json.loads((folder / "hnprog.json").read_text())
    metadata["files"] = {f: hashlib.sha256((folder / f).read_bytes()).hexdigest()
                         for f in metadata["files"]}
    (folder / "hnprog.json").write_text(json.dumps(metadata))


@pytest.mark.backend_independent
@pytest.mark.parametrize("unet", [pytest.param("batch", marks=pytest.mark.large), "se"])
def test_round_trip_of_the_unet_predicts_the_same(tmp_path, unet):
    model = tiny_model(1, unet=unet)
    folder = make_preset(tmp_path / "p", seed=1, model=model)
    preset = from_preset(folder)
    assert isinstance(preset, Preset)
    x = images(2)
    expected = model.predict({"image": x}, verbose=0)
    got = preset.predict(x)
    assert got["risk"].shape == (2, 1)
    assert got["segmentation"].shape == (2, 16, 16, 16, 1)
    np.testing.assert_allclose(got["risk"], expected["risk"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["segmentation"], expected["segmentation"], rtol=1e-5,
                               atol=1e-6)


def test_metadata_records_everything_the_weights_need(tmp_path):
    folder = make_preset(tmp_path / "p")
    metadata = json.loads((folder / "hnprog.json").read_text())
    assert metadata["format_version"] == FORMAT_VERSION
    assert metadata["preprocessing"] == {**PREPROCESSING, "channel_order": ["CT", "PET"]}
    assert metadata["task"] == "multitask"
    assert (metadata["fold"], metadata["n_folds"], metadata["split_seed"]) == (0, 5, 0)
    assert "higher means worse" in metadata["outputs"]["risk"]["meaning"]
    assert metadata["outputs"]["risk"]["endpoint"] == "progression-free survival"
    assert metadata["input"]["shape"] == [16, 16, 16, 2]
    assert set(metadata["versions"]) == {"hnprog", "keras", "backend"}
    assert metadata["license"] == "apache-2.0"
    assert metadata["intended_use"].startswith("Research only")
    assert metadata["metrics"] == {"test": {"c_index": 0.6125, "dice": 0.25}}
    # every file's sha256, computed independently
    assert set(metadata["files"]) == {"config.json", "model.weights.h5", "README.md"}
    for name, digest in metadata["files"].items():
        assert digest == hashlib.sha256((folder / name).read_bytes()).hexdigest()
    assert not list(folder.glob(".*"))  # no temporary files left behind


def test_preprocessing_object_with_to_dict(tmp_path):
    class Config:
        def to_dict(self):
            return {"spacing": (2.0, 2.0, 2.0), "crop_size": np.int64(16)}

    folder = make_preset(tmp_path / "p", preprocessing=Config())
    # validated into a PreprocessConfig: 3 equal spacings are one isotropic spacing
    assert verify_preset(folder)["preprocessing"] == {
        **PreprocessConfig(spacing=2.0, crop_size=16).to_dict(), "channel_order": ["CT", "PET"]}


def test_tampered_weights_are_refused(tmp_path):
    folder = make_preset(tmp_path / "p")
    weights = folder / "model.weights.h5"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"sha256 mismatch for model\.weights\.h5"):
        from_preset(folder)


def test_missing_file_is_refused(tmp_path):
    folder = make_preset(tmp_path / "p")
    (folder / "config.json").unlink()
    with pytest.raises(InputError, match=r"config\.json is missing"):
        from_preset(folder)


def test_not_a_preset(tmp_path):
    with pytest.raises(InputError, match="registered name, an hf://"):
        from_preset(tmp_path / "nothing-here")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"hnprog\.json not found"):
        from_preset(tmp_path / "empty")


@pytest.mark.parametrize(
    "node, message",
    [
        ({"module": "os", "class_name": "system", "config": {}}, "module='os'"),
        ({"module": "keras.layers", "class_name": "Dense", "config": {},
          "registered_name": "evil>Dense"}, "registered_name='evil>Dense'"),
        ({"class_name": "__lambda__", "config": {"value": "..."}}, "lambdas"),
        ({"module": "builtins", "class_name": "function", "config": "eval",
          "registered_name": "other>eval"}, "registered_name"),
    ],
)
def test_class_allow_list_rejects_foreign_objects(node, message):
    config = {"module": "keras", "class_name": "Functional",
              "config": {"layers": [{"config": {"activation": node}}]}}
    with pytest.raises(InputError, match=message):
        check_config_classes(config)


def test_class_allow_list_accepts_keras_and_hnprog():
    check_config_classes({"module": "keras.layers", "class_name": "Dense", "config": {
        "kernel_initializer": {"module": "keras.initializers", "class_name": "Zeros",
                               "config": {}, "registered_name": None},
        "custom": {"module": "hnprog.layers", "class_name": "Block", "config": {},
                   "registered_name": "hnprog>Block"},
        "x": {"class_name": "__keras_tensor__", "config": {}}}})


def test_foreign_class_in_config_json_is_refused_before_building(tmp_path):
    folder = make_preset(tmp_path / "p")
    config = json.loads((folder / "config.json").read_text())
    config["config"]["layers"][1]["module"] = "subprocess"
    (folder / "config.json").write_text(json.dumps(config))
    _rewrite_hashes(folder)
    with pytest.raises(InputError, match="module='subprocess' is outside keras and hnprog"):
        from_preset(folder)


def test_lambda_model_cannot_be_saved(tmp_path):
    import keras

    image = keras.Input((4, 4, 4, 2), name="image")
    risk = keras.layers.Dense(1, name="risk")(
        keras.layers.Lambda(lambda t: keras.ops.mean(t, axis=(1, 2, 3)))(image))
    with pytest.raises(InputError, match="lambdas"):
        save_to_preset(keras.Model(image, {"risk": risk}), tmp_path / "p",
                       preprocessing=PREPROCESSING)


def test_save_validates_arguments(tmp_path):
    folder = make_preset(tmp_path / "p")
    with pytest.raises(InputError, match="already exists"):
        make_preset(folder)
    make_preset(folder, seed=2, overwrite=True)
    assert verify_preset(folder)["fold"] == 2
    with pytest.raises(InputError, match=r"finite numbers.*c_index"):
        make_preset(tmp_path / "q", metrics={"test": {"c_index": float("nan")}})
    with pytest.raises(InputError, match="split name"):
        make_preset(tmp_path / "q", metrics={"c_index": 0.7})
    with pytest.raises(InputError, match="preprocessing must be"):
        make_preset(tmp_path / "q", preprocessing={})
    with pytest.raises(InputError, match="task must be one of"):
        make_preset(tmp_path / "q", task="classification")
    with pytest.raises(InputError, match="fold must be a non-negative integer"):
        make_preset(tmp_path / "q", fold=-1)


def test_radiomics_only_model_is_task_radiomics(tmp_path):
    folder = make_preset(tmp_path / "p", model=tiny_model(0, outputs=("risk",)))
    metadata = verify_preset(folder)
    assert metadata["task"] == "radiomics"
    assert set(metadata["outputs"]) == {"risk"}
    assert set(from_preset(folder).predict(images(1))) == {"risk"}


def test_predict_checks_the_input_shape(tmp_path):
    preset = from_preset(make_preset(tmp_path / "p"))
    with pytest.raises(InputError, match=r"\(N, D, H, W, 2\).*x\.shape=\(2, 16, 16, 16, 1\)"):
        preset.predict(np.zeros((2, 16, 16, 16, 1), "float32"))
    with pytest.raises(InputError, match="expects images of shape"):
        preset.predict(np.zeros((1, 8, 16, 16, 2), "float32"))


# -- registry ---------------------------------------------------------------------------------


def test_shipped_registry_is_valid_and_lists_only_real_presets():
    registry = load_registry()
    assert list_presets() == registry
    for name, entry in registry.items():
        assert entry["description"]
        assert "uri" in entry or "path" in entry, name


def test_shipped_presets_give_survival_probabilities():
    """Each shipped fold records the Breslow baseline of its 64 training patients, so the
    demo and predict write survival_<days>d, not risks only."""
    from hnprog.presets.format import read_metadata

    for name, entry in load_registry().items():
        if "path" in entry:
            folder = Path(presets.__file__).parents[1] / entry["path"]
            baseline = read_metadata(folder)["outputs"]["risk"]["baseline"]
            assert baseline["n_patients"] == 64, name
            assert baseline["estimator"] == "breslow", name
            assert len(baseline["time_days"]) == len(baseline["cumulative_hazard"]) > 10, name


def _registry(tmp_path, monkeypatch, entries: dict) -> None:
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(entries))
    monkeypatch.setattr(preset_registry, "REGISTRY_PATH", path)


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"description": "x", "uri": "hf://org/repo", "sha256": {"hnprog.json": "0" * 64}},
         "must pin a commit"),
        ({"description": "x", "uri": "hf://org/repo@main", "sha256": {"hnprog.json": "0" * 64}},
         "full 40-character"),
        ({"description": "x", "uri": "hf://org/repo@" + "a" * 40, "sha256": {}},
         r"must pin hnprog\.json"),
        ({"description": "x", "path": "../../etc", "sha256": {"hnprog.json": "0" * 64}},
         "inside the hnprog package"),
        ({"description": "x", "sha256": {"hnprog.json": "0" * 64}}, "needs 'uri'"),
    ],
)
def test_registry_entries_are_validated(tmp_path, monkeypatch, entry, message):
    _registry(tmp_path, monkeypatch, {"bad": entry})
    with pytest.raises(InputError, match=message):
        list_presets()


def test_family_members_are_ordered_by_fold():
    registry = {f"fam_fold{k}": {} for k in (2, 0, 10, 1)} | {"other_fold0": {}, "fam": {}}
    assert presets.family_members("fam", registry) == [
        "fam_fold0", "fam_fold1", "fam_fold2", "fam_fold10"]
    assert presets.family_members("nothing", registry) == []


def test_list_families_names_each_family_with_its_folds():
    registry = {f"fam_fold{k}": {} for k in (2, 1)} | {"other_fold0": {}, "solo": {},
                                                       "taken_fold1": {}, "taken": {}}
    assert presets.list_families(registry) == {
        "fam": ["fam_fold1", "fam_fold2"], "other": ["other_fold0"]}
    shipped = presets.list_families()
    assert shipped["unet3d_multitask_synthetic_petct"] == [
        f"unet3d_multitask_synthetic_petct_fold{k}" for k in (1, 2, 3)]


# -- the preprocessing record: the save -> predict contract -----------------------------------


@pytest.mark.parametrize(
    "preprocessing",
    [
        pytest.param(PreprocessConfig(spacing=4.5, crop_size=16), id="PreprocessConfig"),
        pytest.param({"spacing": 4.5, "crop_size": 16}, id="dict-float-spacing"),
        pytest.param({"spacing": [4.5, 4.5, 4.5], "crop_size": 16}, id="dict-3-equal-spacings"),
        pytest.param({"spacing": (np.float32(4.5),) * 3, "crop_size": np.int64(16)},
                     id="dict-numpy-values"),
        pytest.param({"spacing": 4.5, "crop_size": 16, "channel_order": ["CT", "PET"]},
                     id="dict-channel-order"),
    ],
)
def test_every_accepted_preprocessing_form_saves_and_predicts(tmp_path, preprocessing):
    folder = make_preset(tmp_path / "p", preprocessing=preprocessing)
    preset = from_preset(folder)
    config = PreprocessConfig.from_recorded(preset.preprocessing)
    assert config == PreprocessConfig(spacing=4.5, crop_size=16)
    assert isinstance(preset.preprocessing["spacing"], float)
    assert preset.preprocessing["channel_order"] == ["CT", "PET"]
    out = preset.predict(images(1))
    assert out["risk"].shape == (1, 1)
    assert out["segmentation"].shape == (1, config.crop_size, config.crop_size,
                                         config.crop_size, 1)


def test_a_recorded_preprocessing_saves_again_unchanged(tmp_path):
    first = verify_preset(make_preset(tmp_path / "a"))["preprocessing"]
    again = verify_preset(make_preset(tmp_path / "b", preprocessing=first))["preprocessing"]
    assert again == first


@pytest.mark.parametrize(
    "preprocessing, message",
    [
        ({"spacing": [1.0, 1.0, 2.0], "crop_size": 16},
         r"spacing must be isotropic.*Received: preprocessing\['spacing'\]=\[1\.0, 1\.0, 2\.0\]"),
        ({"spacing": [1.0, 1.0], "crop_size": 16}, r"spacing must be one voxel size.*Received"),
        ({"spacing": "1.0", "crop_size": 16}, r"spacing must be a finite number.*Received"),
        ({"spacing": float("nan"), "crop_size": 16}, r"spacing must be a finite number"),
        ({"spacing": True, "crop_size": 16}, r"spacing must be a finite number"),
        ({"spacing": -1.0, "crop_size": 16}, r"spacing must be a positive.*Received: spacing=-1"),
        ({"spacing": 1.0, "crop_size": 16.5}, r"crop_size must be an integer.*Received"),
        ({"spacing": 1.0, "crop": 16}, r"no field 'crop'.*Received: preprocessing\['crop'\]=16"),
        ({"spacing": 1.0, "crop_size": 16, "ct_clip": 5}, r"ct_clip must be 2 numbers"),
        ({"spacing": 1.0, "crop_size": 16, "ct_clip": [100, -100]},
         r"ct_clip must be \(low, high\) with low < high"),
        ({"spacing": 1.0, "crop_size": 16, "mirror": "yes"}, r"mirror must be true or false"),
        ({"spacing": 1.0, "crop_size": 16, "max_shift": 1.5}, r"max_shift must be an integer"),
        ({"spacing": 1.0, "crop_size": 16, "channel_order": ["PET", "CT"]},
         r"channel_order must be \['CT', 'PET'\].*Received"),
        ({"spacing": 1.0, "crop_size": 32}, r"crop_size must match the model's input grid"),
        ("spacing=1", r"preprocessing must be a PreprocessConfig or a non-empty dict"),
    ],
)
def test_a_bad_preprocessing_record_is_refused_at_save_time(tmp_path, preprocessing, message):
    folder = tmp_path / "p"
    with pytest.raises(InputError, match=message):
        make_preset(folder, preprocessing=preprocessing)
    assert not folder.exists() or not any(folder.iterdir())  # nothing written


def test_the_docstring_example_of_save_to_preset_loads_for_prediction(tmp_path):
    """The issue-12 bug: this record saved, then failed to load with a raw TypeError."""
    import keras

    image = keras.Input((32, 32, 32, 2), name="image")
    risk = keras.layers.Dense(1, name="risk")(keras.layers.GlobalAveragePooling3D()(image))
    folder = save_to_preset(keras.Model(image, {"risk": risk}), tmp_path / "p",
                            preprocessing={"spacing": [4.5, 4.5, 4.5], "crop_size": 32})
    preset = from_preset(folder)
    assert PreprocessConfig.from_recorded(preset.preprocessing) == PreprocessConfig(
        spacing=4.5, crop_size=32)
    assert preset.predict(np.zeros((1, 32, 32, 32, 2), "float32"))["risk"].shape == (1, 1)
