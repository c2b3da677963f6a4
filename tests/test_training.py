"""Training loop: loss weights, whole-set validation metrics, best epoch, resume, run folders.

Tiny 16^3 two-channel volumes, filters (2, 4, 4, 8, 8), 8 training and 6 validation patients
in memory, batch 4, 1-4 epochs. Under TensorFlow the steps run eagerly
(``TrainingConfig(run_eagerly=True)``): building the train graph of even this tiny UNet takes
about 20 s on 2 CPU cores, against about 3 s for a whole eager run; one test
(``test_graph_mode_mixed_bfloat16_fit``) keeps the compiled path. Under JAX, where compiling
costs less than eager dispatch, the steps are jit-compiled; only the cheap tests are marked
``backend_independent``.
"""

from __future__ import annotations

import json
import math

import h5py
import keras
import numpy as np
import pytest
from sksurv.metrics import concordance_index_censored

from hnprog.errors import InputError
from hnprog.presets import from_preset
from hnprog.training import TrainingConfig, train_model
from hnprog.training.callbacks import DatasetEpoch, ValidationMetrics
from hnprog.training.fit import build_model, compile_model
from hnprog.transforms import PreprocessConfig

SIZE = 16
FILTERS = (2, 4, 4, 8, 8)
EAGER = keras.backend.backend() == "tensorflow"


class TinyDataset(keras.utils.PyDataset):
    """In-memory patients: a bright sphere on PET whose radius drives the hazard."""

    def __init__(self, n: int, batch_size: int, seed: int, shuffle: bool = True):
        super().__init__()
        rng = np.random.default_rng(seed)
        grid = np.stack(np.meshgrid(*[np.arange(SIZE)] * 3, indexing="ij"), -1)
        radius = rng.uniform(2, 5, n)
        centre = rng.uniform(6, 10, (n, 3))
        dist = np.linalg.norm(grid[None] - centre[:, None, None, None], axis=-1)
        self.mask = (dist <= radius[:, None, None, None]).astype("float32")[..., None]
        noise = rng.normal(0, 0.1, (n, SIZE, SIZE, SIZE, 2))
        self.image = (np.concatenate([self.mask * 0.5, self.mask * 2.0], -1) + noise)
        self.image = self.image.astype("float32")
        time = rng.exponential(1000 / np.exp(radius - 3.5))
        event = np.arange(n) % 2 == 0
        self.y = np.stack([time, event], 1).astype("float32")
        self.n, self.batch_size, self.seed, self.shuffle = n, batch_size, seed, shuffle
        self.order = np.arange(n)

    def set_epoch(self, epoch: int) -> None:
        if self.shuffle:
            self.order = np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __getitem__(self, index: int):
        idx = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        return {"image": self.image[idx]}, {"segmentation": self.mask[idx], "risk": self.y[idx]}


def tiny_config(**overrides) -> TrainingConfig:
    values = dict(epochs=2, batch_size=4, preprocessing=PreprocessConfig(crop_size=SIZE),
                  filters=FILTERS, learning_rate=1e-2, run_eagerly=EAGER)
    return TrainingConfig(**{**values, **overrides})


@pytest.fixture
def data():
    return TinyDataset(8, 4, seed=1), TinyDataset(6, 4, seed=2, shuffle=False)


class KillAfterEpoch(keras.callbacks.Callback):
    def __init__(self, epoch: int):
        super().__init__()
        self.kill_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.kill_epoch:
            raise KeyboardInterrupt(f"killed after epoch {epoch + 1}")


def h5_arrays(path) -> dict[str, np.ndarray]:
    """Every array of a ``.weights.h5`` file (model weights and optimizer state), by name."""
    arrays: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: arrays.__setitem__(name, obj[()])
            if isinstance(obj, h5py.Dataset) else None
        )
    return arrays


def small_model(seed: int = 0) -> keras.Model:
    """The UNet's inputs and outputs (with a dropout) from five layers: cheap to compile under
    JAX, where building and compiling the UNet itself takes about a minute on 2 CPU cores."""
    keras.utils.set_random_seed(seed)
    image = keras.Input((SIZE, SIZE, SIZE, 2), name="image")
    features = keras.layers.Conv3D(2, 3, padding="same", activation="relu")(image)
    segmentation = keras.layers.Conv3D(1, 1, activation="sigmoid", name="segmentation")(features)
    # A seeded Dropout draws its masks from a SeedGenerator variable, which the checkpoint
    # stores, on every backend (unseeded, PyTorch uses torch's global generator).
    pooled = keras.layers.Dropout(0.5, seed=seed)(keras.layers.GlobalAveragePooling3D()(features))
    risk = keras.layers.Dense(1, name="risk")(pooled)
    return keras.Model({"image": image}, {"segmentation": segmentation, "risk": risk})


def small_run(folder, **kwargs):
    """Two epochs of :func:`small_model` on the tiny datasets, in ``folder``."""
    return train_model(TinyDataset(8, 4, 1), TinyDataset(6, 4, 2, False), folder,
                       config=tiny_config(epochs=2), model=small_model(), verbose=0, **kwargs)


def test_train_logs_whole_set_metrics_and_keeps_best_epoch(tmp_path, data):
    train, val = data
    result = train_model(train, val, tmp_path / "run", config=tiny_config(), verbose=0)
    history = result.history
    assert [row["epoch"] for row in history] == [1, 2]
    for key in ("loss", "risk_loss", "segmentation_loss", "val_loss", "val_cindex", "val_dice"):
        assert key in history[0], key
    best = min(history, key=lambda row: row["val_loss"])
    assert result.best_epoch == best["epoch"]
    # The kept model's whole-validation-set C-index equals scikit-survival's on its predictions.
    risk = result.model.predict({"image": val.image}, verbose=0)["risk"].ravel()
    expected = concordance_index_censored(val.y[:, 1] > 0, val.y[:, 0], risk)[0]
    assert best["val_cindex"] == pytest.approx(expected, abs=1e-9)
    for name in ("config.json", "preset/hnprog.json", "history.csv", "checkpoint/state.json"):
        assert (tmp_path / "run" / name).is_file(), name
    # One model format: the preset folder, and no second copy of the model or preprocessing.
    assert not (tmp_path / "run" / "model.keras").exists()
    assert not (tmp_path / "run" / "preprocessing.json").exists()
    assert result.preset == tmp_path / "run" / "preset"
    reloaded = from_preset(tmp_path / "run")
    np.testing.assert_allclose(
        reloaded.predict({"image": val.image})["risk"].ravel(), risk, rtol=1e-5, atol=1e-6
    )
    # The risk threshold is the median of the kept epoch's validation risks, as computed
    # during training (not predicted again).
    np.testing.assert_allclose(result.val_risk, risk, rtol=1e-5, atol=1e-6)
    threshold = reloaded.metadata["outputs"]["risk"]["threshold"]
    assert threshold == pytest.approx(float(np.median(result.val_risk)), abs=1e-12)
    assert reloaded.metadata["preprocessing"]["crop_size"] == SIZE


@pytest.mark.backend_independent
def test_validation_metrics_use_whole_set_not_batch_mean(data):
    _, val = data
    model = small_model()
    compile_model(model, tiny_config(), steps_per_epoch=1)
    callback = ValidationMetrics(val, cox_loss=None, dice_loss=None)
    callback.set_model(model)
    logs = callback.evaluate()
    out = model.predict({"image": val.image}, verbose=0)
    expected = concordance_index_censored(val.y[:, 1] > 0, val.y[:, 0], out["risk"].ravel())[0]
    assert logs["val_cindex"] == pytest.approx(expected, abs=1e-9)
    pred, truth = out["segmentation"] > 0.5, val.mask > 0.5
    dices = [
        2 * (p & t).sum() / (p.sum() + t.sum()) if p.sum() + t.sum() else 0.0
        for p, t in zip(pred, truth)
    ]
    assert logs["val_dice"] == pytest.approx(np.mean(dices), abs=1e-9)


def test_loss_is_weighted_sum_of_cox_and_dice(tmp_path, data):
    train, val = data
    config = tiny_config(epochs=1, w_rad=1.0, w_seg=0.0)
    result = train_model(train, val, tmp_path / "run", config=config, verbose=0)
    row = result.history[0]
    # Keras logs the unweighted per-output losses; a zero weight removes Dice from the total.
    assert row["loss"] == pytest.approx(row["risk_loss"], rel=1e-4, abs=1e-5)
    assert row["val_loss"] == pytest.approx(row["val_risk_loss"], rel=1e-6)


def test_same_seed_gives_same_initial_weights():
    first = build_model(tiny_config(seed=3)).get_weights()
    second = build_model(tiny_config(seed=3)).get_weights()
    other = build_model(tiny_config(seed=4)).get_weights()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, c) for a, c in zip(first, other))


class EpochLoggingDataset(TinyDataset):
    """Records the epoch each batch is read for; advances itself in on_epoch_end unless set,
    like hnprog.data.dataset.CohortDataset."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.epoch, self.reads, self.is_set = 0, [], False

    def set_epoch(self, epoch: int) -> None:
        self.is_set = True
        super().set_epoch(epoch)
        self.epoch = epoch

    def on_epoch_end(self) -> None:
        if not self.is_set:
            self.epoch += 1
            super().set_epoch(self.epoch)

    def __getitem__(self, index: int):
        self.reads.append((self.epoch, index))
        x, y = super().__getitem__(index)
        return x, {"risk": y["risk"]}


def test_dataset_epoch_is_set_before_keras_reads_the_next_epoch():
    data = EpochLoggingDataset(8, 4, seed=1)
    image = keras.Input((SIZE, SIZE, SIZE, 2), name="image")
    risk = keras.layers.Dense(1, name="risk")(keras.layers.GlobalAveragePooling3D()(image))
    model = keras.Model({"image": image}, {"risk": risk})
    model.compile(optimizer="sgd", loss={"risk": "mse"}, run_eagerly=EAGER)
    model.fit(data, epochs=3, callbacks=[DatasetEpoch(data)], shuffle=False, verbose=0)
    # Keras (TensorFlow: with tf.data prefetching) reads every batch once, in order, each
    # with its own epoch: the next epoch is set before its first batch is read. (Before
    # training, the TensorFlow adapter also reads a few batches for their shapes.)
    assert data.reads[-6:] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]


def test_killed_run_resumes_and_ends_like_uninterrupted_run(tmp_path):
    config = tiny_config(epochs=2)

    def run(folder, **kwargs):
        return train_model(TinyDataset(8, 4, 1), TinyDataset(6, 4, 2, False), tmp_path / folder,
                           config=config, verbose=0, **kwargs)

    straight = run("a")
    with pytest.raises(KeyboardInterrupt):
        run("b", callbacks=[KillAfterEpoch(1)])
    state = json.loads((tmp_path / "b" / "checkpoint" / "state.json").read_text())
    assert state["epochs_completed"] == 1
    with pytest.raises(InputError, match="already holds a run"):
        run("b")
    resumed = run("b", resume=True)
    assert [row["epoch"] for row in resumed.history] == [1, 2]
    assert resumed.best_epoch == straight.best_epoch
    for a, b in zip(straight.history, resumed.history):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6, abs=1e-7)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-6, abs=1e-7)
    # The last epoch's weights and optimizer state, and the kept model, end where the
    # uninterrupted run ends (bit-identical on TensorFlow CPU; a float tolerance is allowed).
    last_a = h5_arrays(tmp_path / "a" / "checkpoint" / "epoch-0002.weights.h5")
    last_b = h5_arrays(tmp_path / "b" / "checkpoint" / "epoch-0002.weights.h5")
    assert last_a.keys() == last_b.keys() and any("optimizer" in k for k in last_a)
    for name, value in last_a.items():
        np.testing.assert_allclose(last_b[name], value, rtol=1e-6, atol=1e-7, err_msg=name)
    for a, b in zip(straight.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)


@pytest.mark.backend_independent
def test_training_loop_resumes_exactly_on_every_backend(tmp_path):
    # The loop (whole-set validation, checkpoints, dropout seed states, optimizer state,
    # epoch-seeded data) on a small model, so that it is cheap under JAX too.
    def run(folder, **kwargs):
        return small_run(tmp_path / folder, **kwargs)

    straight = run("a")
    assert [row["epoch"] for row in straight.history] == [1, 2]
    assert all(math.isfinite(row["val_cindex"]) for row in straight.history)
    with pytest.raises(KeyboardInterrupt):
        run("b", callbacks=[KillAfterEpoch(1)])
    resumed = run("b", resume=True)
    assert resumed.best_epoch == straight.best_epoch
    for a, b in zip(straight.history, resumed.history):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6, abs=1e-7)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-6, abs=1e-7)
    last_a = h5_arrays(tmp_path / "a" / "checkpoint" / "epoch-0002.weights.h5")
    last_b = h5_arrays(tmp_path / "b" / "checkpoint" / "epoch-0002.weights.h5")
    for name, value in last_a.items():
        np.testing.assert_allclose(last_b[name], value, rtol=1e-6, atol=1e-7, err_msg=name)


@pytest.mark.backend_independent
def test_a_reused_model_trains_each_fold_as_a_new_model_would(tmp_path):
    # cross_validate keeps one model per setting (ModelCache): a later fold resets it to the
    # newly built state (weights, dropout seed states, optimizer slots and step) instead of
    # building (and tracing) a new one. The fold must end exactly where a new model ends.
    from hnprog.training import ModelCache

    config = tiny_config(epochs=2)
    val = TinyDataset(6, 4, 2, False)

    def run(folder, train, **kwargs):
        return train_model(train, val, tmp_path / folder, config=config, verbose=0, **kwargs)

    new = run("new", TinyDataset(8, 4, 3))
    models = ModelCache()
    first = run("first", TinyDataset(8, 4, 1), models=models)
    step_function = first.model.train_function
    reused = run("reused", TinyDataset(8, 4, 3), models=models)
    assert reused.model is first.model and len(models) == 1
    assert reused.model.train_function is step_function  # not traced again
    assert reused.best_epoch == new.best_epoch
    for a, b in zip(new.history, reused.history):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-6, abs=1e-7)
        assert b["val_cindex"] == pytest.approx(a["val_cindex"])
    for a, b in zip(new.model.get_weights(), reused.model.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(reused.val_risk, new.val_risk, rtol=1e-5, atol=1e-6)
    # another schedule length (steps per epoch), other settings or centres: another model
    key = ModelCache.key(config, None, 2)
    assert models.take(key) is not None
    assert {ModelCache.key(config, None, 3), ModelCache.key(config, 3, 2),
            ModelCache.key(tiny_config(epochs=2, seed=7), None, 2)}.isdisjoint({key})
    assert models.take(ModelCache.key(config, None, 3)) is None
    assert ModelCache.key(config.replace(n_jobs=4), None, 2) == key  # how, not what


def test_run_folder_refuses_a_different_run(tmp_path, data):
    train, val = data
    train_model(train, val, tmp_path, config=tiny_config(epochs=1), verbose=0)
    with pytest.raises(InputError, match="different run"):
        train_model(train, val, tmp_path, config=tiny_config(epochs=1, seed=5), resume=True)
    result = train_model(
        train, val, tmp_path, config=tiny_config(epochs=1, seed=5), overwrite=True, verbose=0
    )
    assert json.loads((tmp_path / "config.json").read_text())["training"]["seed"] == 5
    assert len(result.history) == 1
    with pytest.raises(InputError, match="either resume or overwrite"):
        train_model(train, val, tmp_path, config=tiny_config(), resume=True, overwrite=True)


def test_overwrite_deletes_exactly_the_files_the_run_wrote(tmp_path, data):
    from hnprog.io import RUN_MANIFEST, written_files

    train, val = data
    train_model(train, val, tmp_path, config=tiny_config(epochs=2), verbose=0)
    first = {p.relative_to(tmp_path).as_posix() for p in written_files(tmp_path)}
    assert {"config.json", "history.csv", "checkpoint/epoch-0002.weights.h5",
            "preset/hnprog.json", "preset/model.weights.h5"} <= first
    on_disk = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")
               if p.is_file() and p.name != RUN_MANIFEST}
    assert first == on_disk  # every file of the run is listed, and nothing else
    (tmp_path / "checkpoint" / "history.csv").write_text("the user's own notes")  # an hnprog name
    with pytest.warns(UserWarning, match=r"kept 1 files .*checkpoint/history.csv"):
        train_model(train, val, tmp_path, config=tiny_config(epochs=1), overwrite=True,
                    verbose=0)
    assert (tmp_path / "checkpoint" / "history.csv").read_text() == "the user's own notes"
    assert not (tmp_path / "checkpoint" / "epoch-0002.weights.h5").exists()  # the old run's
    second = {p.relative_to(tmp_path).as_posix() for p in written_files(tmp_path)}
    assert "checkpoint/epoch-0001.weights.h5" in second and "checkpoint/history.csv" not in second


def test_finished_run_resumes_without_training(tmp_path, data):
    train, val = data
    first = train_model(train, val, tmp_path, config=tiny_config(epochs=1), verbose=0)
    # run_eagerly changes how a run executes, not what it computes: the same run.
    again = train_model(train, val, tmp_path, config=tiny_config(epochs=1, run_eagerly=not EAGER),
                        resume=True)
    assert again.history == first.history
    for a, b in zip(first.model.get_weights(), again.model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_compiled_mixed_bfloat16_fit_step(tmp_path, data):
    # The compiled (graph) path, once, with bfloat16 compute: TensorFlow on CPU has no float16
    # 3D max-pooling, so mixed_float16 is for GPUs.
    train, val = data
    config = tiny_config(epochs=1, mixed_precision="mixed_bfloat16", run_eagerly=False)
    result = train_model(train, val, tmp_path, config=config, verbose=0)
    assert math.isfinite(result.history[0]["loss"])
    assert math.isfinite(result.history[0]["val_loss"])
    dtypes = {layer.compute_dtype for layer in result.model.layers if layer.weights}
    assert "bfloat16" in dtypes
    assert keras.mixed_precision.global_policy().name == "float32"  # restored


@pytest.mark.backend_independent
@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"preprocessing": PreprocessConfig(crop_size=72)}, "divisible by 16"),
        ({"w_rad": 0.0, "w_seg": 0.0}, "not both 0"),
        ({"batch_size": 0}, "positive integer"),
        ({"mixed_precision": "float8"}, "mixed_precision"),
        ({"heads": "radiomics"}, "set w_seg=0"),
        ({"task": "radiomics", "w_seg": 1.0}, "trains the outputs"),
        ({"task": "survival"}, "task must be one of"),
        ({"n_folds": 1}, "at least 2"),
    ],
)
def test_config_rejects_bad_values(overrides, match):
    with pytest.raises(InputError, match=match):
        TrainingConfig(**overrides)


@pytest.mark.backend_independent
def test_config_round_trip_and_presets():
    config = TrainingConfig.cpu(epochs=3)
    assert TrainingConfig.from_dict(config.to_dict()) == config
    assert (config.spacing, config.crop_size) == (2.0, 64)
    assert config.preprocessing == PreprocessConfig.cpu()
    assert TrainingConfig(task="radiomics").w_seg == 0.0
    with pytest.warns(DeprecationWarning, match="task="):
        assert TrainingConfig.for_setting("radiomics").w_seg == 0.0
    with pytest.raises(InputError, match="unknown training config keys"):
        TrainingConfig.from_dict({"epoch": 3})
    assert TrainingConfig(monitor="val_cindex").resolved_monitor_mode == "max"
    fingerprint = config.run_fingerprint()
    assert "run_eagerly" not in fingerprint and "n_jobs" not in fingerprint
    assert config.replace(run_eagerly=True, n_jobs=4).run_fingerprint() == fingerprint


@pytest.mark.backend_independent
def test_task_gives_loss_weights_and_heads_are_kept():
    radiomics = TrainingConfig(task="radiomics")
    assert (radiomics.w_rad, radiomics.w_seg, radiomics.heads) == (1.0, 0.0, "multitask")
    assert TrainingConfig(w_rad=0.0).task == "segmentation"  # the weights imply the task
    assert TrainingConfig(w_rad=2.0, w_seg=0.5).task == "multitask"
    # a new task takes its weights; new weights give their task
    assert radiomics.replace(task="segmentation").to_dict()["w_rad"] == 0.0
    assert radiomics.replace(w_seg=1.0).task == "multitask"
    risk_only = TrainingConfig(task="radiomics", heads="radiomics")
    assert TrainingConfig.from_dict(risk_only.to_dict()) == risk_only


@pytest.mark.backend_independent
def test_deprecated_config_keywords_and_old_config_files_still_load():
    with pytest.warns(DeprecationWarning, match="preprocessing=PreprocessConfig"):
        config = TrainingConfig(spacing=9.0, crop_size=16)
    assert config.preprocessing == PreprocessConfig(spacing=9.0, crop_size=16)
    with pytest.warns(DeprecationWarning, match="preprocessing=PreprocessConfig"):
        moved = config.replace(spacing=2.0)
    assert (moved.crop_size, moved.preprocessing.max_shift) == (16, 15)  # 30 mm at 2 mm
    with pytest.warns(DeprecationWarning, match="n_jobs"):
        assert TrainingConfig(workers=3).n_jobs == 3
    with pytest.warns(DeprecationWarning, match="heads"):
        assert TrainingConfig(tasks="multitask").heads == "multitask"
    with pytest.warns(DeprecationWarning, match="n_jobs"):
        assert config.workers == 1
    with pytest.warns(DeprecationWarning, match="Task"):
        from hnprog.training import SETTINGS
    assert SETTINGS["radiomics"] == (1.0, 0.0)
    # a config.json of the previous version
    old = {"epochs": 2, "w_rad": 1.0, "w_seg": 0.0, "spacing": 9.0, "crop_size": 16,
           "workers": 2, "tasks": "multitask", "filters": [2, 4, 4, 8, 8],
           "extra": {"preprocessing": {"spacing": 9.0, "crop_size": 16, "ct_clip": [-500, 500]}}}
    loaded = TrainingConfig.from_dict(old)
    assert (loaded.task, loaded.heads, loaded.n_jobs) == ("radiomics", "multitask", 2)
    assert loaded.preprocessing == PreprocessConfig(spacing=9.0, crop_size=16,
                                                    ct_clip=(-500.0, 500.0))


def test_run_folder_of_the_previous_version_resumes(tmp_path):
    # A run killed by the previous version: config.json with spacing/crop_size/workers/tasks,
    # a checkpoint without the kept epoch's validation risks.
    def run(folder, **kwargs):
        return small_run(tmp_path / folder, **kwargs)

    straight = run("a")
    with pytest.raises(KeyboardInterrupt):
        run("b", callbacks=[KillAfterEpoch(1)])
    training = tiny_config(epochs=2).to_dict()
    del training["preprocessing"], training["task"], training["n_jobs"]
    training.update(spacing=1.0, crop_size=SIZE, workers=1, tasks=training.pop("heads"))
    fingerprint = {k: v for k, v in training.items() if k not in ("workers", "run_eagerly",
                                                                   "extra")}
    (tmp_path / "b" / "config.json").write_text(json.dumps(
        {"fingerprint": fingerprint, "training": training, "preprocessing": {"spacing": 1.0}}))
    state_path = tmp_path / "b" / "checkpoint" / "state.json"
    state = json.loads(state_path.read_text())
    del state["best_val_risk"]
    state_path.write_text(json.dumps(state))
    resumed = run("b", resume=True)
    assert resumed.best_epoch == straight.best_epoch
    for a, b in zip(straight.history, resumed.history):
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-6, abs=1e-7)
    np.testing.assert_allclose(resumed.val_risk, straight.val_risk, rtol=1e-5, atol=1e-6)
    assert (tmp_path / "b" / "preset" / "hnprog.json").is_file()


@pytest.mark.backend_independent
def test_the_cpu_preset_has_one_name():
    assert TrainingConfig.cpu(epochs=2).preprocessing == PreprocessConfig.cpu()
    with pytest.warns(DeprecationWarning, match=r"TrainingConfig\.cpu\(\)"):
        assert TrainingConfig.fast_cpu(epochs=2) == TrainingConfig.cpu(epochs=2)


def test_the_finetune_function_is_not_shadowed_by_its_module():
    """The module is ``finetuning``: a module named like the function replaced the function
    on the package once anything imported the module (``hnprog finetune`` does)."""
    import hnprog
    import hnprog.training.finetuning  # noqa: F401
    from hnprog.training import finetune

    assert callable(finetune) and finetune.__module__ == "hnprog.training.finetuning"
    assert hnprog.finetune is finetune
