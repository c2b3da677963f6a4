"""Keras callbacks of the training loop: whole-set validation metrics, epoch keeping, resuming.

- :class:`ValidationMetrics` predicts the **whole** validation set once per epoch and logs the
  validation losses, the C-index over all validation patients (not averaged per batch) and the
  mean per-patient Dice; it keeps that epoch's predictions for :class:`RunCheckpoint`.
- :class:`RunCheckpoint` keeps the epoch with the best monitored value (the validation combined
  loss, as in the paper) and writes, after every epoch, a checkpoint from which a killed run
  resumes and ends where an uninterrupted run would have: model weights with the optimizer
  state (moments and step count, hence the learning-rate schedule), the dropout seed states,
  the history and the kept epoch's validation risks (from which the preset's risk threshold
  is taken, without predicting again), committed by one atomic ``state.json``.
- :class:`DatasetEpoch` tells the training dataset which epoch starts, so its sampling and
  augmentation depend only on ``(seed, epoch)``, also after a resume.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from hnprog.errors import InputError
from hnprog.io import atomic_path, atomic_write, write_json

__all__ = [
    "DatasetEpoch",
    "LearntLossWeights",
    "RunCheckpoint",
    "ValidationMetrics",
    "collect_predictions",
    "read_run_state",
]

STATE_FILE = "state.json"


def output_names(model: keras.Model) -> list[str]:
    """The names of a model's outputs (the keys of a dict-output model)."""
    outputs = model.output
    if isinstance(outputs, dict):
        return list(outputs)
    return list(model.output_names)


class ValidationMetrics(keras.callbacks.Callback):
    """Validation losses, C-index and Dice over the whole validation set, once per epoch.

    Adds to the epoch logs (before later callbacks see them):

    - ``val_risk_loss``: the Cox loss over all validation patients at once (one risk set);
    - ``val_segmentation_loss``: the Dice loss averaged over batches, weighted by batch size;
    - ``val_loss``: ``w_rad * val_risk_loss + w_seg * val_segmentation_loss`` (the terms the
      model has);
    - ``val_cindex``: Harrell's C-index of the predicted risk (log-hazard, higher is worse)
      over all validation patients; NaN when no pair is comparable;
    - ``val_dice``: the mean Dice of the 0.5-thresholded probability per patient.

    After each epoch, :attr:`predictions` holds that epoch's predictions
    (:func:`collect_predictions`'s dict: ``risk``, ``time_event``, ``dice``, ``dice_loss``).

    Args:
        val_data: keras.utils.PyDataset. Yields ``({"image": x}, {"segmentation": m, "risk": y})``
            with ``x`` (N, D, H, W, 2), ``m`` (N, D, H, W[, 1]) binary and ``y`` (N, 2) holding
            (time in days, event).
        cox_loss: keras.losses.Loss or None. The Cox loss, for ``val_risk_loss``.
        dice_loss: keras.losses.Loss or None. The Dice loss, for ``val_segmentation_loss``.
        w_rad: float. Weight of the Cox loss in ``val_loss``. Defaults to 1.0.
        w_seg: float. Weight of the Dice loss in ``val_loss``. Defaults to 1.0.
    """

    def __init__(
        self,
        val_data: keras.utils.PyDataset,
        *,
        cox_loss: keras.losses.Loss | None,
        dice_loss: keras.losses.Loss | None,
        w_rad: float = 1.0,
        w_seg: float = 1.0,
    ):
        super().__init__()
        self.val_data = val_data
        self.cox_loss = cox_loss
        self.dice_loss = dice_loss
        self.w_rad = w_rad
        self.w_seg = w_seg
        self.predictions: dict[str, Any] | None = None

    def evaluate(self) -> dict[str, float]:
        """Predict the validation set and return the metrics (see the class docstring)."""
        from hnprog.metrics import concordance_index

        collected = collect_predictions(self.model, self.val_data, dice_loss=self.dice_loss)
        self.predictions = collected
        risk, time_event, dices = collected["risk"], collected["time_event"], collected["dice"]
        logs: dict[str, float] = {}
        total = 0.0
        if risk is not None:
            time, event = time_event[:, 0], time_event[:, 1] > 0.5
            try:
                logs["val_cindex"] = float(concordance_index(event=event, time=time, risk=risk))
            except (ValueError, ZeroDivisionError):  # no comparable pair in the set
                logs["val_cindex"] = math.nan
            if self.cox_loss is not None:
                cox = self.cox_loss(time_event.astype("float32"), risk[:, None].astype("float32"))
                logs["val_risk_loss"] = float(keras.ops.convert_to_numpy(cox))
                total += self.w_rad * logs["val_risk_loss"]
        if dices is not None:
            logs["val_dice"] = float(np.mean(dices))
            if self.dice_loss is not None:
                logs["val_segmentation_loss"] = collected["dice_loss"]
                total += self.w_seg * logs["val_segmentation_loss"]
        logs["val_loss"] = total
        return logs

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None:
            logs.update(self.evaluate())


def collect_predictions(
    model: keras.Model, dataset: keras.utils.PyDataset, *, dice_loss: Any = None
) -> dict[str, Any]:
    """Predict every batch of ``dataset`` and gather what the metrics need.

    Args:
        model: keras.Model. Outputs ``"risk"`` and/or ``"segmentation"``.
        dataset: keras.utils.PyDataset. Yields ``(x, y)`` as in :class:`ValidationMetrics`.
        dice_loss: keras.losses.Loss, optional. Averaged over batches (weighted by size).

    Returns:
        dict with ``risk`` (float64 (N,) log-hazards or None), ``time_event`` ((N, 2) or
        None), ``dice`` (per-patient Dice of the 0.5-thresholded probability, list or None)
        and ``dice_loss`` (float or None).
    """
    from hnprog.metrics import dice_score

    names = output_names(model)
    risks, survival, dices = [], [], []
    dice_loss_sum, n_seen = 0.0, 0
    for index in range(len(dataset)):
        x, y = dataset[index][:2]
        pred = model.predict_on_batch(x)
        if not isinstance(pred, dict):
            pred = dict(zip(names, pred if isinstance(pred, (list, tuple)) else [pred]))
        if "risk" in pred and "risk" in y:
            risks.append(np.asarray(pred["risk"], dtype="float64").reshape(-1))
            survival.append(np.asarray(y["risk"], dtype="float64").reshape(-1, 2))
        if "segmentation" in pred and "segmentation" in y:
            prob = np.asarray(pred["segmentation"], dtype="float32")
            truth = np.asarray(y["segmentation"]).reshape(prob.shape)
            if dice_loss is not None:
                value = dice_loss(truth.astype("float32"), prob)
                dice_loss_sum += float(keras.ops.convert_to_numpy(value)) * prob.shape[0]
                n_seen += prob.shape[0]
            dices.extend(dice_score(prob[i] > 0.5, truth[i] > 0.5) for i in range(len(prob)))
    return {
        "risk": np.concatenate(risks) if risks else None,
        "time_event": np.concatenate(survival) if survival else None,
        "dice": dices if dices else None,
        "dice_loss": dice_loss_sum / n_seen if n_seen else None,
    }


class LearntLossWeights(keras.callbacks.Callback):
    """Log the learnt task weights ``exp(-s)`` of uncertainty weighting after each epoch.

    Adds ``loss_weight_<output>`` (e.g. ``loss_weight_risk``) to the epoch logs, hence to
    ``history.csv``.

    Args:
        weighting: UncertaintyWeighting. The model's ``"loss_weighting"`` layer.
    """

    def __init__(self, weighting: Any):
        super().__init__()
        self.weighting = weighting

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None:
            logs.update({f"loss_weight_{task}": value
                         for task, value in self.weighting.weights_by_task().items()})


class DatasetEpoch(keras.callbacks.Callback):
    """Tell the training dataset which epoch its batches belong to.

    A dataset whose sampling and augmentation are drawn from ``(seed, epoch)`` (such as
    :class:`hnprog.data.dataset.CohortDataset`) then gives the same batches in a resumed run
    as in an uninterrupted one. Keras creates the next epoch's iterator right after the last
    batch of an epoch, before ``on_epoch_end``, and under TensorFlow it starts prefetching from
    it at once; so the next epoch is set right after the last batch (when no read is in
    flight), as well as at the start of each epoch (for the first epoch of a run or a resume).

    Args:
        dataset: object. The training dataset. Its ``set_epoch(epoch: int)`` method is called
            with the 0-based epoch; a dataset without one is left alone (its batches then do
            not depend on the epoch index, or a resumed run may see other batches).
    """

    def __init__(self, dataset: Any):
        super().__init__()
        self.dataset = dataset
        self.epoch = 0

    def _set(self, epoch: int) -> None:
        set_epoch = getattr(self.dataset, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch = epoch
        self._set(epoch)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if batch == len(self.dataset) - 1:
            self._set(self.epoch + 1)


def _seed_variables(model: keras.Model) -> list[Any]:
    # Dropout's SeedGenerator state is a model variable that save_weights() does not store.
    return [v for v in model.variables if "seed_generator_state" in v.path]


def _jsonable(value: Any) -> float | None:
    # Logged values are Python floats, NumPy scalars or backend scalars; NaN becomes None.
    number = float(np.asarray(keras.ops.convert_to_numpy(value)).reshape(-1)[0])
    return number if math.isfinite(number) else None


def read_run_state(directory: str | Path) -> dict[str, Any] | None:
    """Read the ``state.json`` of a run folder's checkpoint, or None when there is none.

    Args:
        directory: str or Path. The checkpoint folder (``<run>/checkpoint``).

    Returns:
        dict or None. Keys ``epochs_completed``, ``best_epoch``, ``best_value``, ``monitor``,
        ``weights``, ``best_weights``, ``best_val_risk`` (absent in checkpoints of older
        versions), ``seed_states``, ``history`` and ``fingerprint``.

    Raises:
        InputError: if the file exists but is not valid JSON.
    """
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"checkpoint state {path} is not valid JSON: {exc}") from None


class RunCheckpoint(keras.callbacks.Callback):
    """Keep the best epoch and checkpoint every epoch so that a killed run can resume.

    After each epoch it writes, in ``directory``: ``epoch-XXXX.weights.h5`` (model weights
    and optimizer state), ``best-XXXX.weights.h5`` when the monitored value improved, and
    then ``state.json`` naming them, with the dropout seed states, the history and the best
    epoch's validation risks (``best_val_risk``, from ``validation``). The state file is
    written last and atomically, so it always names complete files; older weight files are
    deleted after it. At the end of training the best epoch's weights are loaded into the
    model.

    Args:
        directory: str or Path. The checkpoint folder.
        monitor: str. Logged value that picks the kept epoch. Defaults to ``"val_loss"``.
        mode: str. ``"min"`` or ``"max"``. Defaults to ``"min"``.
        fingerprint: dict. Run settings stored with the state, compared on resume.
            Defaults to an empty dict.
        restore_best: bool. Load the best epoch's weights when training ends. Defaults to True.
        validation: ValidationMetrics, optional. The callback (run before this one) whose
            epoch predictions give :attr:`best_val_risk`. Defaults to None.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        monitor: str = "val_loss",
        mode: str = "min",
        fingerprint: dict[str, Any] | None = None,
        restore_best: bool = True,
        validation: ValidationMetrics | None = None,
    ):
        super().__init__()
        self.directory = Path(directory)
        self.monitor = monitor
        self.mode = mode
        self.fingerprint = fingerprint or {}
        self.restore_best = restore_best
        self.validation = validation
        self.best_val_risk: np.ndarray | None = None
        self.history: list[dict[str, Any]] = []
        self.best_epoch: int | None = None
        self.best_value: float | None = None
        self.best_weights: str | None = None
        self.weights: str | None = None

    # -- resuming ---------------------------------------------------------------------------
    def restore(self, model: keras.Model) -> int:
        """Load the last checkpoint into ``model`` (compiled) and return the next epoch index.

        Returns:
            int. The number of completed epochs (0 when there is no checkpoint), to pass to
            ``fit(initial_epoch=...)``.

        Raises:
            InputError: if the checkpoint's weights cannot be read (a truncated file) or its
                seed states do not fit the model.
        """
        state = read_run_state(self.directory)
        if state is None:
            return 0
        model.optimizer.build(model.trainable_variables)
        weights = self.directory / state["weights"]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                model.load_weights(weights)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            text = str(exc).strip()
            reason = text.splitlines()[0] if text else type(exc).__name__
            raise InputError(
                f"checkpoint {weights} cannot be read (truncated or corrupt?): {reason}. Start "
                "the run again with --overwrite, or in another folder") from None
        seeds = _seed_variables(model)
        if len(seeds) != len(state["seed_states"]):
            raise InputError(
                f"checkpoint {self.directory} holds {len(state['seed_states'])} seed states but "
                f"the model has {len(seeds)}; was it written by a different model?"
            )
        for variable, value in zip(seeds, state["seed_states"]):
            variable.assign(np.asarray(value, dtype=variable.dtype))
        self.history = list(state["history"])
        self.best_epoch = state["best_epoch"]
        self.best_value = state["best_value"]
        self.best_weights = state["best_weights"]
        self.weights = state["weights"]
        self.best_val_risk = _as_array(state.get("best_val_risk"))
        return int(state["epochs_completed"])

    # -- every epoch -------------------------------------------------------------------------
    def _improved(self, value: float | None) -> bool:
        if value is None:
            return False
        if self.best_value is None:
            return True
        return value < self.best_value if self.mode == "min" else value > self.best_value

    def _save_weights(self, name: str) -> str:
        with atomic_path(self.directory / name) as tmp:
            self.model.save_weights(tmp)
        return name

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = dict(logs or {})
        row = {"epoch": epoch + 1, **{k: _jsonable(v) for k, v in logs.items()}}
        with contextlib.suppress(Exception):
            row["learning_rate"] = _jsonable(self.model.optimizer.learning_rate)
        self.history.append(row)
        stale = []
        value = row.get(self.monitor)
        if self.best_epoch is None and value is None and self.monitor not in logs:
            raise InputError(
                f"monitor {self.monitor!r} is not logged. Available: {sorted(logs)}"
            )
        if self._improved(value) or self.best_weights is None:
            stale.append(self.best_weights)
            self.best_epoch, self.best_value = epoch + 1, value
            self.best_weights = self._save_weights(f"best-{epoch + 1:04d}.weights.h5")
            predictions = self.validation.predictions if self.validation is not None else None
            self.best_val_risk = None if predictions is None else predictions["risk"]
        stale.append(self.weights)
        self.weights = self._save_weights(f"epoch-{epoch + 1:04d}.weights.h5")
        state = {
            "epochs_completed": epoch + 1,
            "monitor": self.monitor,
            "mode": self.mode,
            "best_epoch": self.best_epoch,
            "best_value": self.best_value,
            "best_weights": self.best_weights,
            "weights": self.weights,
            "best_val_risk": None if self.best_val_risk is None else self.best_val_risk.tolist(),
            "seed_states": [
                keras.ops.convert_to_numpy(v).tolist() for v in _seed_variables(self.model)
            ],
            "history": self.history,
            "fingerprint": self.fingerprint,
        }
        write_json(state, self.directory / STATE_FILE)
        for name in stale:
            if name and name not in (self.weights, self.best_weights):
                (self.directory / name).unlink(missing_ok=True)
        _write_history_csv(self.history, self.directory.parent / "history.csv")

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.restore_best and self.best_weights is not None:
            self.model.load_weights(self.directory / self.best_weights)


def _as_array(values: list[float] | None) -> np.ndarray | None:
    return None if values is None else np.asarray(values, dtype="float64")


def _write_history_csv(history: Iterable[dict[str, Any]], path: Path) -> None:
    rows = list(history)
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    with atomic_write(path, newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
