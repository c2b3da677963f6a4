"""Training the multi-task UNet: compile, fit with whole-set validation, keep the best epoch.

The loss is ``w_rad * CoxLoss`` on the ``"risk"`` output plus ``w_seg * DiceLoss`` on the
``"segmentation"`` output, given to Keras as loss dicts with ``loss_weights``; the optimiser is
Adam with a cosine decay of the learning rate from ``learning_rate`` to 0 over all steps
(Andrearczyk et al., 2021). A run folder holds:

- ``config.json``: the :class:`~hnprog.training.TrainingConfig` and the preprocessing;
- ``checkpoint/``: the last epoch's weights and optimizer state, the best epoch's weights and
  ``state.json`` (see :class:`~hnprog.training.callbacks.RunCheckpoint`);
- ``history.csv``: one row per epoch (losses, ``val_cindex``, ``val_dice``, learning rate);
- ``model.keras``: the model at the kept epoch, and ``preprocessing.json`` next to it.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from hnprog.errors import InputError
from hnprog.io import atomic_path, write_json
from hnprog.training.callbacks import (
    DatasetEpoch,
    RunCheckpoint,
    ValidationMetrics,
    collect_predictions,
    output_names,
)
from hnprog.training.config import TrainingConfig

__all__ = [
    "TrainingResult",
    "build_model",
    "check_training_set",
    "cohort_datasets",
    "compile_model",
    "distribution_scope",
    "prepare_run_folder",
    "predict_dataset",
    "train_model",
    "train_on_cohort",
]

CONFIG_FILE = "config.json"
MODEL_FILE = "model.keras"
PREPROCESSING_FILE = "preprocessing.json"
CHECKPOINT_DIR = "checkpoint"
_RUN_FILES = (CONFIG_FILE, MODEL_FILE, PREPROCESSING_FILE, "history.csv")


@dataclass
class TrainingResult:
    """What :func:`train_model` returns.

    Args:
        model: keras.Model. The model with the kept (best) epoch's weights.
        history: list of dict. One dict per epoch: ``epoch`` (1-based), losses, ``val_cindex``,
            ``val_dice``, ``learning_rate``.
        best_epoch: int. The kept epoch (1-based).
        best_value: float or None. The monitored value at that epoch.
        out_dir: Path. The run folder.
    """

    model: keras.Model
    history: list[dict[str, Any]]
    best_epoch: int
    best_value: float | None
    out_dir: Path


@contextlib.contextmanager
def precision_policy(mixed_precision: str | None) -> Iterator[None]:
    """Use a Keras dtype policy while models are built, then restore the previous one.

    Args:
        mixed_precision: str or None. ``"mixed_float16"``, ``"mixed_bfloat16"``, or None for
            ``"float32"``.
    """
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(mixed_precision or "float32")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def build_model(config: TrainingConfig, *, name: str | None = None) -> keras.Model:
    """Build the UNet for ``config`` (input ``(crop, crop, crop, 2)``), seeded by ``config.seed``.

    Args:
        config: TrainingConfig. Uses ``crop_size``, ``tasks``, ``filters``, ``dropout``,
            ``mixed_precision`` and ``seed``.
        name: str, optional. Model name.

    Returns:
        keras.Model. Uncompiled.
    """
    from hnprog.models import build_multitask_unet

    keras.utils.set_random_seed(config.seed)
    size = config.crop_size
    with precision_policy(config.mixed_precision):
        return build_multitask_unet(
            (size, size, size, 2),
            tasks=config.tasks,
            filters=config.filters,
            dropout=config.dropout,
            name=name,
            seed=config.seed,
        )


def compile_model(
    model: keras.Model,
    config: TrainingConfig,
    *,
    steps_per_epoch: int,
) -> dict[str, keras.losses.Loss]:
    """Compile ``model`` with ``w_rad * CoxLoss + w_seg * DiceLoss`` and Adam + cosine decay.

    Args:
        model: keras.Model. Outputs ``"risk"`` and/or ``"segmentation"``.
        config: TrainingConfig. Uses ``learning_rate``, ``epochs``, ``w_rad``, ``w_seg``,
            ``ties`` and ``run_eagerly``. Freezing layers (see
            :func:`hnprog.training.finetune`) is done before compiling.
        steps_per_epoch: int. Batches per epoch; the cosine decay spans
            ``epochs * steps_per_epoch`` steps.

    Returns:
        dict. The loss object of each output, by output name.
    """
    from hnprog.losses import CoxLoss, DiceLoss

    names = output_names(model)
    losses: dict[str, keras.losses.Loss] = {}
    weights: dict[str, float] = {}
    if "risk" in names:
        losses["risk"] = CoxLoss(ties=config.ties)
        weights["risk"] = float(config.w_rad)
    if "segmentation" in names:
        losses["segmentation"] = DiceLoss()
        weights["segmentation"] = float(config.w_seg)
    schedule = keras.optimizers.schedules.CosineDecay(
        config.learning_rate, decay_steps=max(1, config.epochs * steps_per_epoch)
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=schedule),
        loss=losses,
        loss_weights=weights,
        run_eagerly=config.run_eagerly,
    )
    return losses


@contextlib.contextmanager
def distribution_scope(config: TrainingConfig) -> Iterator[int]:
    """Data-parallel training over all local accelerators when ``config.distribute`` is set.

    Under JAX this is ``keras.distribution.DataParallel``: each device holds
    ``batch_size / n_devices`` patients, but the step is one global computation, so the Cox
    loss and batch statistics see the whole batch. Under TensorFlow it is
    ``tf.distribute.MirroredStrategy``: each replica computes them on its share (a reduced
    risk set: see the training docs). Build and compile the model inside the block.

    Args:
        config: TrainingConfig. Uses ``distribute`` and ``batch_size``.

    Yields:
        int. The number of devices used (1 when not distributing).

    Raises:
        InputError: with the PyTorch backend, or when ``batch_size`` is not divisible by the
            number of devices.
    """
    if not config.distribute:
        yield 1
        return
    backend = keras.backend.backend()
    if backend == "jax":
        devices = keras.distribution.list_devices()
        _check_divisible(config.batch_size, len(devices))
        with keras.distribution.DataParallel(devices=devices).scope():
            yield len(devices)
    elif backend == "tensorflow":
        import tensorflow as tf  # the only TensorFlow call of hnprog: multi-GPU mirroring

        strategy = tf.distribute.MirroredStrategy()
        _check_divisible(config.batch_size, strategy.num_replicas_in_sync)
        with strategy.scope():
            yield strategy.num_replicas_in_sync
    else:
        raise InputError(
            "distributed training needs the JAX or TensorFlow backend. "
            f"Received: KERAS_BACKEND={backend!r}"
        )


def _check_divisible(batch_size: int, n_devices: int) -> None:
    if batch_size % n_devices:
        raise InputError(
            f"batch_size must be divisible by the number of devices ({n_devices}) to train "
            f"data-parallel. Received: batch_size={batch_size}"
        )


def prepare_run_folder(
    out_dir: str | Path,
    fingerprint: dict[str, Any],
    *,
    resume: bool = False,
    overwrite: bool = False,
    marker: str = CONFIG_FILE,
    remove: Sequence[str] = (*_RUN_FILES, CHECKPOINT_DIR),
) -> bool:
    """Check that ``out_dir`` may receive this run; clear it on ``overwrite``.

    Args:
        out_dir: str or Path. The run folder.
        fingerprint: dict. The settings of this run, compared with the ``"fingerprint"``
            stored in ``marker``.
        resume: bool. Continue a run with the same settings. Defaults to False.
        overwrite: bool. Delete an earlier run's files (only those in ``remove``).
            Defaults to False.
        marker: str. File that marks a run folder. Defaults to ``"config.json"``.
        remove: sequence of str. Files and folders deleted by ``overwrite``.

    Returns:
        bool. True when an earlier run with the same settings is to be continued.

    Raises:
        InputError: if the folder holds a run and neither flag is given, if ``resume`` is
            given for a run with different settings, or if both flags are given.
    """
    if resume and overwrite:
        raise InputError("give either resume or overwrite, not both")
    out_dir = Path(out_dir)
    marker_path = out_dir / marker
    if not marker_path.is_file():
        return False
    if overwrite:
        for name in remove:
            path = out_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        return False
    try:
        stored = json.loads(marker_path.read_text()).get("fingerprint")
    except json.JSONDecodeError:
        stored = None
    if not resume:
        raise InputError(
            f"output folder {out_dir} already holds a run ({marker}); pass --resume to continue "
            "it or --overwrite to replace it, or choose another folder"
        )
    if stored != json.loads(json.dumps(fingerprint)):
        changed = sorted(
            k for k in set(stored or {}) | set(fingerprint)
            if (stored or {}).get(k) != json.loads(json.dumps(fingerprint)).get(k)
        )
        raise InputError(
            f"output folder {out_dir} holds a different run (settings differ: {changed}); "
            "--resume continues only the same run. Use --overwrite or another folder"
        )
    return True


def train_model(
    train_data: keras.utils.PyDataset,
    val_data: keras.utils.PyDataset,
    out_dir: str | Path,
    *,
    config: TrainingConfig | None = None,
    model: keras.Model | None = None,
    preprocessing: dict[str, Any] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int | str = "auto",
) -> TrainingResult:
    """Train (or resume training) a model and keep the epoch with the best validation value.

    Each epoch logs the training losses and, over the **whole** validation set, the losses,
    the C-index and the mean Dice (:class:`~hnprog.training.callbacks.ValidationMetrics`).
    After each epoch a checkpoint is written; with ``resume=True`` a killed run continues
    from its last completed epoch with the same optimizer state, learning-rate schedule,
    dropout seeds and (for datasets with ``set_epoch``) sampling, so it ends where an
    uninterrupted run ends.

    Args:
        train_data: keras.utils.PyDataset. Yields ``({"image": x}, {"segmentation": m,
            "risk": y})``: ``x`` float32 (N, D, H, W, 2) [CT, PET], ``m`` (N, D, H, W, 1) binary
            GTVt, ``y`` float32 (N, 2) (time in days, event). A ``set_epoch(epoch)`` method,
            when present, is called before each epoch.
        val_data: keras.utils.PyDataset. Same layout, not shuffled nor augmented.
        out_dir: str or Path. The run folder (see the module docstring).
        config: TrainingConfig, optional. Defaults to ``TrainingConfig()`` (the paper).
        model: keras.Model, optional. A model to train (for fine-tuning), built by the
            caller inside :func:`distribution_scope` when distributing. Defaults to
            :func:`build_model` ``(config)``.
        preprocessing: dict, optional. The preprocessing settings, stored in
            ``preprocessing.json`` with the model. Defaults to None (not written).
        resume: bool. Continue the run in ``out_dir`` (same settings). Defaults to False.
        overwrite: bool. Replace a run in ``out_dir``. Defaults to False.
        callbacks: sequence of keras.callbacks.Callback. Extra callbacks, run after the
            validation and checkpoint callbacks. Defaults to none.
        verbose: int or str. Keras ``fit`` verbosity. Defaults to ``"auto"``.

    Returns:
        TrainingResult.

    Raises:
        InputError: if ``out_dir`` holds a run and neither ``resume`` nor ``overwrite`` is
            given, or holds a different run and ``resume`` is given.

    Example:
        >>> result = train_model(train_ds, val_ds, "runs/fold1",  # doctest: +SKIP
        ...                      config=TrainingConfig.fast_cpu(epochs=5))
        >>> result.best_epoch, result.history[-1].get("val_cindex")  # doctest: +SKIP
    """
    config = config or TrainingConfig()
    out_dir = Path(out_dir)
    fingerprint = config.run_fingerprint()
    resuming = prepare_run_folder(out_dir, fingerprint, resume=resume, overwrite=overwrite)
    write_json(
        {"fingerprint": fingerprint, "training": config.to_dict(), "preprocessing": preprocessing},
        out_dir / CONFIG_FILE,
    )
    steps = len(train_data)
    if steps < 1:
        raise InputError("the training dataset yields no batch")
    with distribution_scope(config):
        if model is None:
            model = build_model(config)
        else:
            keras.utils.set_random_seed(config.seed)
        losses = compile_model(model, config, steps_per_epoch=steps)
        # Build the optimizer state now, eagerly: inside the first traced train step it costs
        # seconds of graph building (TensorFlow). A resume loads this state.
        model.optimizer.build(model.trainable_variables)
        checkpoint = RunCheckpoint(
            out_dir / CHECKPOINT_DIR,
            monitor=config.monitor,
            mode=config.resolved_monitor_mode,
            fingerprint=fingerprint,
        )
        initial_epoch = checkpoint.restore(model) if resuming else 0
        all_callbacks = [
            DatasetEpoch(train_data),
            ValidationMetrics(
                val_data,
                cox_loss=losses.get("risk"),
                dice_loss=losses.get("segmentation"),
                w_rad=config.w_rad,
                w_seg=config.w_seg,
            ),
            checkpoint,
            keras.callbacks.TerminateOnNaN(),
            *callbacks,
        ]
        if initial_epoch < config.epochs:
            model.fit(
                train_data,
                epochs=config.epochs,
                initial_epoch=initial_epoch,
                callbacks=all_callbacks,
                verbose=verbose,
                # The dataset orders its epochs from (seed, epoch); Keras' own shuffle of the
                # batch order draws from Python's global RNG, which a resumed run cannot replay.
                shuffle=False,
            )
        else:  # the run had finished: load its kept epoch
            checkpoint.set_model(model)
            checkpoint.on_train_end()
    if checkpoint.best_epoch is None:
        raise InputError(f"training in {out_dir} ended before its first epoch completed")
    save_model(model, out_dir / MODEL_FILE, preprocessing=preprocessing)
    return TrainingResult(
        model=model,
        history=checkpoint.history,
        best_epoch=int(checkpoint.best_epoch),
        best_value=checkpoint.best_value,
        out_dir=out_dir,
    )


def save_model(
    model: keras.Model, path: str | Path, *, preprocessing: dict[str, Any] | None = None
) -> None:
    """Save ``model`` as ``.keras`` (atomically) with ``preprocessing.json`` next to it.

    Args:
        model: keras.Model. The model.
        path: str or Path. Target ``.keras`` file.
        preprocessing: dict, optional. Preprocessing settings to record. Defaults to None.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        model.save(tmp)
    if preprocessing is not None:
        write_json(preprocessing, path.parent / PREPROCESSING_FILE)


def preprocess_config(config: TrainingConfig) -> Any:
    """The :class:`hnprog.transforms.PreprocessConfig` of a training config.

    ``config.extra["preprocessing"]`` (a recorded preprocessing dict, set when fine-tuning)
    gives the other settings; ``spacing`` (mm) and ``crop_size`` (voxels) come from ``config``.
    A recorded shift limit (grid voxels) is dropped when the spacing changes, so the limit
    stays the paper's 30 mm (:class:`~hnprog.transforms.PreprocessConfig`'s default).
    """
    from hnprog.transforms import PreprocessConfig

    recorded = dict(config.extra.get("preprocessing") or {})
    if recorded.get("spacing") != config.spacing:
        recorded.pop("max_shift", None)
    recorded.update(spacing=config.spacing, crop_size=config.crop_size)
    return PreprocessConfig.from_recorded(recorded)


def check_training_set(
    n_train: int, n_events: int, batch_size: int, *, n_val: int | None = None, where: str = ""
) -> None:
    """Refuse, before training, a split the Cox loss, the batch size or validation cannot use.

    Args:
        n_train: int. Patients in the training set.
        n_events: int. Observed events among them.
        batch_size: int. Patients per batch.
        n_val: int, optional. Patients in the validation set; checked when given.
            Defaults to None.
        where: str. Named in the message (e.g. ``"fold 2"``). Defaults to ``""``.

    Raises:
        InputError: if the training set holds no event or fewer patients than
            ``batch_size``, or the validation set is empty.
    """
    prefix = f"{where}: " if where else ""
    if n_val == 0:
        raise InputError(
            f"{prefix}the validation set is empty ({n_train} training patients); the kept "
            "epoch is chosen on validation patients. Use more patients, fewer folds or a "
            "larger val_fraction"
        )
    if n_events == 0:
        raise InputError(
            f"{prefix}the training set ({n_train} patients) holds no event; the Cox loss needs "
            "events. Use fewer folds or check the endpoint file"
        )
    if batch_size > n_train:
        raise InputError(
            f"{prefix}batch_size is larger than the training set ({n_train} patients). "
            f"Received: batch_size={batch_size}"
        )


def cohort_datasets(
    cohort: Any,
    train_ids: Sequence[str],
    val_ids: Sequence[str],
    config: TrainingConfig,
    *,
    cache_dir: str | Path | None = None,
    train: bool = True,
) -> tuple[keras.utils.PyDataset, keras.utils.PyDataset]:
    """Training and validation datasets of a cohort (:class:`hnprog.data.dataset.CohortDataset`).

    The training set is augmented and censoring-balanced (half events per epoch) as configured,
    seeded by ``config.seed``; the validation set is neither.

    Args:
        cohort: Cohort. Patients with masks and endpoints.
        train_ids: sequence of str. Training patients.
        val_ids: sequence of str. Validation (or test) patients.
        config: TrainingConfig.
        cache_dir: str or Path, optional. Case cache folder. Defaults to None.
        train: bool. Build the training dataset too (False returns ``(None, val)``).
            Defaults to True.

    Returns:
        tuple ``(train_dataset, val_dataset)``.
    """
    from hnprog.data.dataset import CohortDataset

    preprocessing = preprocess_config(config)
    common = {"config": preprocessing, "batch_size": config.batch_size, "cache_dir": cache_dir,
              "seed": config.seed, "workers": config.workers}
    train_ds = None
    if train:
        train_ds = CohortDataset(
            cohort, list(train_ids), augment=config.augment, shuffle=True,
            event_fraction=0.5 if config.balance_events else None, **common,
        )
    val_ds = CohortDataset(cohort, list(val_ids), **common)
    return train_ds, val_ds


def predict_dataset(
    model: keras.Model, dataset: keras.utils.PyDataset
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Risks and per-patient Dice of a dataset's patients, in dataset order.

    Returns:
        tuple ``(risk, dice)``: float arrays of shape ``(N,)`` (log-hazard, higher is worse;
        Dice of the 0.5-thresholded probability), each None when the model lacks that output.
    """
    collected = collect_predictions(model, dataset)
    dice = None if collected["dice"] is None else np.asarray(collected["dice"], dtype=float)
    return collected["risk"], dice


PRESET_DIR = "preset"


def export_preset(
    result: TrainingResult,
    cohort: Any,
    val_data: keras.utils.PyDataset,
    config: TrainingConfig,
    *,
    name: str,
    fold: int | None = None,
    test_metrics: dict[str, float] | None = None,
) -> Path:
    """Save a run's kept model as a preset folder ``RUN/preset`` (:func:`hnprog.save_to_preset`).

    The preset records the preprocessing, the training recipe, the validation C-index and
    Dice of the kept epoch (and the test metrics when given) and, as the risk-group threshold
    used by ``hnprog predict``, the median predicted log-hazard of the validation patients.
    A cohort folder holding the generator's ``truth.csv`` is labelled synthetic, so the card
    says these weights are for trying the tool only.

    Args:
        result: TrainingResult. The finished run.
        cohort: Cohort. The training cohort (its folder name names the data set).
        val_data: keras.utils.PyDataset. The validation patients, not augmented.
        config: TrainingConfig. The run's settings.
        name: str. Preset name, e.g. ``"multitask_fold1"``.
        fold: int, optional. Cross-validation fold (0-based). Defaults to None.
        test_metrics: dict, optional. ``{"c_index": ..., "dice": ...}`` on the test patients.

    Returns:
        pathlib.Path. The preset folder.
    """
    from hnprog.presets import save_to_preset

    risk, dice = predict_dataset(result.model, val_data)
    best = next((row for row in result.history if row.get("epoch") == result.best_epoch), {})
    metrics: dict[str, dict[str, float]] = {}
    validation = {k: float(best[v]) for k, v in (("c_index", "val_cindex"), ("dice", "val_dice"))
                  if best.get(v) is not None and np.isfinite(best[v])}
    if validation:
        metrics["validation"] = validation
    if test_metrics:
        finite = {k: float(v) for k, v in test_metrics.items() if v is not None and np.isfinite(v)}
        if finite:
            metrics["test"] = finite
    root = Path(cohort.root)
    synthetic = (root / "truth.csv").is_file()
    return save_to_preset(
        result.model, Path(result.out_dir) / PRESET_DIR,
        preprocessing=preprocess_config(config), name=name, task=config.tasks, fold=fold,
        n_folds=config.n_folds if fold is not None else None,
        split_seed=config.seed, dataset={"name": root.name, "id": root.name,
                                         "n_patients": len(cohort), "synthetic": synthetic},
        training=config.to_dict(), metrics=metrics or None,
        risk_threshold=float(np.median(risk)) if risk is not None else None, overwrite=True,
    )


def train_on_cohort(
    data: str | Path | Any,
    out_dir: str | Path,
    *,
    config: TrainingConfig | None = None,
    model: keras.Model | None = None,
    cache_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    verbose: int | str = "auto",
) -> TrainingResult:
    """Train on a whole cohort: a seeded, event-stratified 80/20 training/validation split.

    Args:
        data: str, Path or Cohort. A cohort folder or manifest, or a read ``Cohort``.
        out_dir: str or Path. The run folder; ``split.json`` records the patients of each part.
        config: TrainingConfig, optional. Defaults to ``TrainingConfig()``.
        model: keras.Model, optional. Start from this model (fine-tuning). Defaults to a new
            one.
        cache_dir: str or Path, optional. Case cache. Defaults to ``out_dir/cache``.
        resume: bool. Continue the run in ``out_dir``. Defaults to False.
        overwrite: bool. Replace the run in ``out_dir``. Defaults to False.
        verbose: int or str. Keras verbosity. Defaults to ``"auto"``.

    Returns:
        TrainingResult.

    Raises:
        InputError: before training, if the cohort has no endpoints, a part of the split holds
            no event, or the batch size is larger than the training set.
    """
    from hnprog.data.cohort import read_cohort
    from hnprog.splits import holdout_split

    config = config or TrainingConfig()
    cohort = data if hasattr(data, "patients") else read_cohort(data)
    if cohort.endpoints is None:
        raise InputError(f"cohort {cohort.root} has no endpoints (endpoints.csv)")
    y = cohort.survival_y()
    ids = np.asarray(cohort.ids)
    train_idx, val_idx = holdout_split(y["event"], val_fraction=config.val_fraction,
                                       seed=config.seed)
    check_training_set(len(train_idx), int(y["event"][train_idx].sum()), config.batch_size,
                       n_val=len(val_idx))
    out_dir = Path(out_dir)
    train_ds, val_ds = cohort_datasets(
        cohort, ids[train_idx], ids[val_idx], config,
        cache_dir=cache_dir if cache_dir is not None else out_dir / "cache",
    )
    result = train_model(
        train_ds, val_ds, out_dir, config=config, model=model,
        preprocessing=preprocess_config(config).to_dict(), resume=resume, overwrite=overwrite,
        verbose=verbose,
    )
    write_json({"train": ids[train_idx].tolist(), "val": ids[val_idx].tolist()},
               out_dir / "split.json")
    export_preset(result, cohort, val_ds, config, name=f"{config.tasks}_{Path(out_dir).name}")
    return result
