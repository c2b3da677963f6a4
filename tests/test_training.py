"""Training loop: loss weights, whole-set validation metrics, best epoch, resume, run folders.

Tiny 16^3 two-channel volumes, filters (8, 4, 4, 8, 8), a handful of in-memory patients.
"""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest
from sksurv.metrics import concordance_index_censored

from hnprog.errors import InputError
from hnprog.training import TrainingConfig, train_model
from hnprog.training.callbacks import ValidationMetrics
from hnprog.training.trainer import build_model, compile_model

SIZE = 16
FILTERS = (8, 4, 4, 8, 8)  # level 1 = 8: the side outputs have 8 channels


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
    values = dict(epochs=2, batch_size=4, crop_size=SIZE, filters=FILTERS, learning_rate=1e-2)
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
    risk = result.model.predict(val.image, verbose=0)["risk"].ravel()
    expected = concordance_index_censored(val.y[:, 1] > 0, val.y[:, 0], risk)[0]
    assert best["val_cindex"] == pytest.approx(expected, abs=1e-9)
    for name in ("config.json", "model.keras", "history.csv", "checkpoint/state.json"):
        assert (tmp_path / "run" / name).is_file(), name
    reloaded = keras.models.load_model(tmp_path / "run" / "model.keras", compile=False)
    np.testing.assert_allclose(
        reloaded.predict(val.image, verbose=0)["risk"].ravel(), risk, rtol=1e-5, atol=1e-6
    )


def test_validation_metrics_use_whole_set_not_batch_mean(data):
    _, val = data
    model = build_model(tiny_config())
    compile_model(model, tiny_config(), steps_per_epoch=1)
    callback = ValidationMetrics(val, cox_loss=None, dice_loss=None)
    callback.set_model(model)
    logs = callback.evaluate()
    out = model.predict(val.image, verbose=0)
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


def test_killed_run_resumes_and_ends_like_uninterrupted_run(tmp_path):
    config = tiny_config(epochs=4)
    straight = train_model(
        TinyDataset(8, 4, 1), TinyDataset(6, 4, 2, False), tmp_path / "a", config=config, verbose=0
    )
    with pytest.raises(KeyboardInterrupt):
        train_model(
            TinyDataset(8, 4, 1), TinyDataset(6, 4, 2, False), tmp_path / "b", config=config,
            callbacks=[KillAfterEpoch(2)], verbose=0,
        )
    state = json.loads((tmp_path / "b" / "checkpoint" / "state.json").read_text())
    assert state["epochs_completed"] == 2
    with pytest.raises(InputError, match="already holds a run"):
        train_model(TinyDataset(8, 4, 1), TinyDataset(6, 4, 2, False), tmp_path / "b",
                    config=config, verbose=0)
    resumed = train_model(
        TinyDataset(8, 4, 1), TinyDataset(6, 4, 2, False), tmp_path / "b", config=config,
        resume=True, verbose=0,
    )
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3, 4]
    assert resumed.best_epoch == straight.best_epoch
    for a, b in zip(straight.history, resumed.history):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-6)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4, abs=1e-6)
    for a, b in zip(straight.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


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


def test_finished_run_resumes_without_training(tmp_path, data):
    train, val = data
    first = train_model(train, val, tmp_path, config=tiny_config(epochs=1), verbose=0)
    again = train_model(train, val, tmp_path, config=tiny_config(epochs=1), resume=True)
    assert again.history == first.history
    for a, b in zip(first.model.get_weights(), again.model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_mixed_bfloat16_fit_step(tmp_path, data):
    train, val = data
    config = tiny_config(epochs=1, mixed_precision="mixed_bfloat16")
    result = train_model(train, val, tmp_path, config=config, verbose=0)
    assert math.isfinite(result.history[0]["loss"])
    assert result.model.layers[-1].compute_dtype in ("bfloat16", "float32")
    assert keras.mixed_precision.global_policy().name == "float32"  # restored


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"crop_size": 72}, "divisible by 16"),
        ({"w_rad": 0.0, "w_seg": 0.0}, "not both 0"),
        ({"batch_size": 0}, "positive integer"),
        ({"mixed_precision": "float8"}, "mixed_precision"),
        ({"tasks": "radiomics"}, "set w_seg=0"),
        ({"n_folds": 1}, "at least 2"),
    ],
)
def test_config_rejects_bad_values(overrides, match):
    with pytest.raises(InputError, match=match):
        TrainingConfig(**overrides)


def test_config_round_trip_and_presets():
    config = TrainingConfig.fast_cpu(epochs=3)
    assert TrainingConfig.from_dict(config.to_dict()) == config
    assert (config.spacing, config.crop_size) == (2.0, 64)
    assert TrainingConfig.for_setting("radiomics").w_seg == 0.0
    with pytest.raises(InputError, match="unknown training config keys"):
        TrainingConfig.from_dict({"epoch": 3})
    assert TrainingConfig(monitor="val_cindex").resolved_monitor_mode == "max"
