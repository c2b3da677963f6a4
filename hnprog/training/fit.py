"""Fitting the multi-task UNet: build, compile, fit with whole-set validation, keep the best epoch.

The loss is ``w_rad * CoxLoss`` on the ``"risk"`` output plus ``w_seg * DiceLoss`` on the
``"segmentation"`` output, given to Keras as loss dicts with ``loss_weights``; the optimiser is
Adam with a cosine decay of the learning rate from ``learning_rate`` to 0 over all steps
(Andrearczyk et al., 2021). A run folder holds::

    RUN/config.json     the TrainingConfig (with its PreprocessConfig) and the run fingerprint
    RUN/history.csv     one row per epoch (losses, val_cindex, val_dice, learning rate)
    RUN/checkpoint/     the last epoch's weights and optimizer state, the best epoch's weights
                        and state.json (see hnprog.training.callbacks.RunCheckpoint)
    RUN/preset/         the model at the kept epoch: the one saved-model format
                        (hnprog.presets.save_to_preset; load it with hnprog.from_preset)
    RUN/failures.csv    with skip_bad (--skip-bad), the patients left out because they failed
                        the input check (hnprog.training.precheck), patient_id,error
    RUN/.hnprog-files   every file hnprog wrote in the folder (hnprog.io.start_run_manifest):
                        --overwrite deletes these and nothing else

Which folder may receive a run (new, empty, or an earlier run to resume or overwrite) is
:mod:`hnprog.training.folders`. Run folders of older versions also hold ``model.keras`` and
``preprocessing.json``; they still
resume and load (:func:`hnprog.training.finetuning.load_start_model`) for one release.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from hnprog.data.runner import FAILURES_FILE, write_failures
from hnprog.errors import InputError
from hnprog.io import write_json
from hnprog.training.callbacks import (
    DatasetEpoch,
    LearntLossWeights,
    RunCheckpoint,
    ValidationMetrics,
    collect_predictions,
    output_names,
)
from hnprog.training.config import TrainingConfig
from hnprog.training.folders import (  # noqa: F401 (re-exported)
    CACHE_DIR, CONFIG_FILE, _training_fingerprint, check_run_folder, prepare_run_folder)

__all__ = [
    "CHECKPOINT_DIR",
    "CONFIG_FILE",
    "PRESET_DIR",
    "ModelCache",
    "TrainingResult",
    "build_model",
    "compile_model",
    "distribution_scope",
    "export_preset",
    "loss_weighting_layer",
    "precision_policy",
    "train_model",
]

HISTORY_FILE = "history.csv"
CHECKPOINT_DIR = "checkpoint"
PRESET_DIR = "preset"
#: The model files of run folders written before the preset became the one format.
LEGACY_MODEL_FILE = "model.keras"
LEGACY_PREPROCESSING_FILE = "preprocessing.json"


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
        val_risk: numpy.ndarray or None. Predicted log-hazards (higher is worse) of the
            validation patients at the kept epoch, shape ``(N,)`` in dataset order; None for a
            model without a risk output. Defaults to None.
        preset: Path or None. The preset folder ``RUN/preset`` once written
            (:func:`export_preset`). Defaults to None.
    """

    model: keras.Model
    history: list[dict[str, Any]]
    best_epoch: int
    best_value: float | None
    out_dir: Path
    val_risk: np.ndarray | None = None
    preset: Path | None = None


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


def build_model(
    config: TrainingConfig, *, name: str | None = None, n_centres: int | None = None
) -> keras.Model:
    """Build the UNet for ``config`` (input ``(crop, crop, crop, 2)``), seeded by ``config.seed``.

    Args:
        config: TrainingConfig. Uses ``crop_size``, ``heads``, ``filters``, ``dropout``,
            ``mixed_precision``, ``seed``, ``loss_weighting`` and ``adversarial_centres``.
        name: str, optional. Model name.
        n_centres: int, optional. Number of training centres; needed (>= 2) when
            ``config.adversarial_centres`` is positive, ignored otherwise.

    Returns:
        keras.Model. Uncompiled.
    """
    from hnprog.models.unet import build_multitask_unet

    keras.utils.set_random_seed(config.seed)
    size = config.crop_size
    adversarial = config.adversarial_centres > 0
    if adversarial and n_centres is None:
        raise InputError("adversarial_centres > 0 needs the number of training centres "
                         "(build_model(config, n_centres=...))")
    with precision_policy(config.mixed_precision):
        return build_multitask_unet(
            (size, size, size, 2),
            task=config.heads,
            filters=config.filters,
            dropout=config.dropout,
            name=name,
            seed=config.seed,
            loss_weighting=config.loss_weighting,
            n_centres=n_centres if adversarial else None,
            adversarial_weight=config.adversarial_centres if adversarial else 1.0,
        )


def compile_model(
    model: keras.Model,
    config: TrainingConfig,
    *,
    steps_per_epoch: int,
) -> dict[str, keras.losses.Loss]:
    """Compile ``model`` with ``w_rad * CoxLoss + w_seg * DiceLoss`` and Adam + cosine decay.

    With ``config.loss_weighting == "uncertainty"`` each loss with a positive weight is
    wrapped in :class:`hnprog.losses.UncertaintyWeightedLoss` (``exp(-s) * L + s``, the Dice
    loss shifted by 1 to be non-negative), ``s`` being the model's ``"loss_weighting"`` layer
    variable. A ``"centre"`` output (the adversarial branch) gets a sparse categorical
    cross-entropy with weight 1; the branch's gradient reversal carries
    ``config.adversarial_centres``.

    Args:
        model: keras.Model. Outputs ``"risk"`` and/or ``"segmentation"`` (and ``"centre"``).
        config: TrainingConfig. Uses ``learning_rate``, ``epochs``, ``w_rad``, ``w_seg``,
            ``ties``, ``loss_weighting`` and ``run_eagerly``. Freezing layers (see
            :func:`hnprog.training.finetune`) is done before compiling.
        steps_per_epoch: int. Batches per epoch; the cosine decay spans
            ``epochs * steps_per_epoch`` steps.

    Returns:
        dict. The (unweighted) loss object of each risk and segmentation output, by output
        name; the validation metrics use them.

    Raises:
        InputError: with uncertainty weighting, for a model without a ``"loss_weighting"``
            layer.
    """
    from hnprog.losses import CoxLoss, DiceLoss, UncertaintyWeightedLoss

    names = output_names(model)
    losses: dict[str, keras.losses.Loss] = {}
    weights: dict[str, float] = {}
    if "risk" in names:
        losses["risk"] = CoxLoss(ties=config.ties)
        weights["risk"] = float(config.w_rad)
    if "segmentation" in names:
        losses["segmentation"] = DiceLoss()
        weights["segmentation"] = float(config.w_seg)
    compiled: dict[str, keras.losses.Loss] = dict(losses)
    if config.loss_weighting == "uncertainty":
        weighting = loss_weighting_layer(model)
        if weighting is None:
            raise InputError(
                f"model {model.name!r} has no 'loss_weighting' layer for uncertainty "
                "weighting; build it with loss_weighting='uncertainty'"
            )
        for output, loss in losses.items():
            if weights[output] > 0:
                compiled[output] = UncertaintyWeightedLoss(
                    loss, weighting, output, offset=1.0 if output == "segmentation" else 0.0)
    if "centre" in names:
        compiled["centre"] = keras.losses.SparseCategoricalCrossentropy()
        weights["centre"] = 1.0
    schedule = keras.optimizers.schedules.CosineDecay(
        config.learning_rate, decay_steps=max(1, config.epochs * steps_per_epoch)
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=schedule),
        loss=compiled,
        loss_weights=weights,
        run_eagerly=config.run_eagerly,
    )
    return losses


def _with_training_heads(model: keras.Model, config: TrainingConfig,
                         n_centres: int | None) -> keras.Model:
    """A given model (fine-tuning) with the loss weighting and centre branch ``config`` asks."""
    from hnprog.models.unet import add_training_heads

    has_centre = isinstance(model.output, dict) and "centre" in model.output
    if config.loss_weighting == "fixed" and n_centres is None and not has_centre:
        return model
    with precision_policy(config.mixed_precision):
        return add_training_heads(model, loss_weighting=config.loss_weighting,
                                  n_centres=n_centres,
                                  adversarial_weight=config.adversarial_centres or 1.0)


def loss_weighting_layer(model: keras.Model) -> Any:
    """The model's :class:`~hnprog.models.layers.UncertaintyWeighting` layer, or None."""
    from hnprog.models.layers import UncertaintyWeighting

    for layer in model.layers:
        if isinstance(layer, UncertaintyWeighting):
            return layer
    return None


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


def build_loss_trackers(model: keras.Model, data: keras.utils.PyDataset) -> None:
    """Create the compiled loss's state eagerly from the first patient of ``data`` (the
    validation set: ``model.compute_loss`` on one eager forward pass), so that ``fit`` traces
    its train step once, not twice. ``fit`` resets the trackers before its first epoch, so
    the values do not count; nothing is drawn from any random generator. Left to ``fit``
    when ``data`` yields no batch, or lacks targets of some output (the centre labels of the
    adversarial branch are in the training set only).
    """
    if len(data) < 1:
        return
    x, y = data[0][:2]
    if isinstance(y, dict) and not set(output_names(model)) <= set(y):
        return
    first = lambda tree: keras.tree.map_structure(lambda a: a[:1], tree)  # noqa: E731
    x, y = first(x), first(y)
    model.compute_loss(x=x, y=y, y_pred=model(x, training=False))


class ModelCache:
    """Compiled models that :func:`train_model` keeps and resets for the next training of the
    same model, so that its traced train step is reused.

    Each new model costs a trace of the train step (the Adam update and the UNet's backward
    graph built op by op: about 4 s at 32³ on 2 cores, whatever the epochs). A
    cross-validation trains the same model once per fold; with a cache the second and later
    folds take the first fold's model with every variable (weights, batch-norm statistics,
    dropout seed states, optimizer slots and step count) set back to the values a newly built
    and compiled model holds, so each fold trains exactly as with a new model (tested) and the
    train step is traced once per setting. A model is reused only for the same settings
    (:meth:`TrainingConfig.to_dict`, ``n_jobs`` aside), number of centres and steps per epoch
    (the learning-rate schedule's length is part of the traced step); never when
    distributing. It holds one model per key: use it for trainings that run one after the
    other, not at the same time.

    Example:
        >>> models = ModelCache()  # doctest: +SKIP
        >>> for fold, (train_ds, val_ds) in enumerate(folds):  # doctest: +SKIP
        ...     train_model(train_ds, val_ds, f"cv/fold-{fold + 1}", config=config, models=models)
    """

    def __init__(self) -> None:
        self._kept: dict[str, tuple[keras.Model, dict[str, keras.losses.Loss], list[np.ndarray]]] = {}

    @staticmethod
    def key(config: TrainingConfig, n_centres: int | None, steps_per_epoch: int) -> str:
        """What must match for a kept model to be reused."""
        settings = {k: v for k, v in config.to_dict().items() if k != "n_jobs"}
        return json.dumps({"backend": keras.backend.backend(), "config": settings,
                           "n_centres": n_centres, "steps_per_epoch": steps_per_epoch},
                          sort_keys=True, default=str)

    def take(self, key: str) -> tuple[keras.Model, dict[str, keras.losses.Loss]] | None:
        """The kept model of ``key`` reset to its newly built state, with its loss objects;
        None when there is none."""
        if key not in self._kept:
            return None
        model, losses, initial = self._kept[key]
        for variable, value in zip(_training_state(model), initial):
            variable.assign(value)
        return model, losses

    def keep(self, key: str, model: keras.Model, losses: dict[str, keras.losses.Loss]) -> None:
        """Keep ``model`` (built and compiled, not yet trained) under ``key``."""
        self._kept[key] = (model, losses, [keras.ops.convert_to_numpy(v) for v in
                                           _training_state(model)])

    def __len__(self) -> int:
        return len(self._kept)


def _training_state(model: keras.Model) -> list[Any]:
    """Every variable a training changes: the model's (weights, batch statistics, seed
    states, metric states) and the optimizer's (slots, step count)."""
    seen: set[int] = set()
    state = []
    for variable in [*model.variables, *model.optimizer.variables]:
        if id(variable) not in seen:
            seen.add(id(variable))
            state.append(variable)
    return state


def train_model(
    train_data: keras.utils.PyDataset,
    val_data: keras.utils.PyDataset,
    out_dir: str | Path,
    *,
    config: TrainingConfig | None = None,
    model: keras.Model | None = None,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int | str = "auto",
    export: bool = True,
    preprocessing: Mapping[str, Any] | None = None,
    failures: Mapping[str, str] | None = None,
    models: ModelCache | None = None,
) -> TrainingResult:
    """Train (or resume training) a model and keep the epoch with the best validation value.

    Each epoch logs the training losses and, over the **whole** validation set, the losses,
    the C-index and the mean Dice (:class:`~hnprog.training.callbacks.ValidationMetrics`).
    After each epoch a checkpoint is written; with ``resume=True`` a killed run continues
    from its last completed epoch with the same optimizer state, learning-rate schedule,
    dropout seeds and (for datasets with ``set_epoch``) sampling, so it ends where an
    uninterrupted run ends. The kept epoch's validation risks are kept with it
    (:attr:`TrainingResult.val_risk`) and give the preset's risk threshold.

    Args:
        train_data: keras.utils.PyDataset. Yields ``({"image": x}, {"segmentation": m,
            "risk": y})``: ``x`` float32 (N, D, H, W, 2) [CT, PET], ``m`` (N, D, H, W, 1) binary
            GTVt, ``y`` float32 (N, 2) (time in days, event). A ``set_epoch(epoch)`` method,
            when present, is called before each epoch.
        val_data: keras.utils.PyDataset. Same layout, not shuffled nor augmented.
        out_dir: str or Path. The run folder (see the module docstring).
        config: TrainingConfig, optional. Defaults to ``TrainingConfig()`` (the paper). Its
            ``preprocessing`` is recorded in the preset: it should be how the datasets were
            prepared.
        model: keras.Model, optional. A model to train (for fine-tuning), built by the
            caller inside :func:`distribution_scope` when distributing. Defaults to
            :func:`build_model` ``(config)``.
        resume: bool. Continue the run in ``out_dir`` (same settings). Defaults to False.
        overwrite: bool. Replace a run in ``out_dir``. Defaults to False.
        callbacks: sequence of keras.callbacks.Callback. Extra callbacks, run after the
            validation and checkpoint callbacks. Defaults to none.
        verbose: int or str. Keras ``fit`` verbosity. Defaults to ``"auto"``.
        export: bool. Save the kept model as ``RUN/preset`` (:func:`export_preset`, without
            dataset metadata). The cohort runs pass False and export with their metadata
            themselves. Defaults to True.
        preprocessing: dict, optional. Deprecated: set ``config.preprocessing`` instead; when
            given it replaces it. Defaults to None.
        failures: dict, optional. Patient id -> reason of the patients left out of the
            datasets (:func:`hnprog.training.precheck.precheck_cohort`), written to
            ``RUN/failures.csv`` once the folder is prepared. Defaults to None (not written).
        models: ModelCache, optional. Reuse a model this cache kept from an earlier training
            with the same settings (reset to its newly built state: the same training, one
            trace of the train step fewer), and keep the one built here. Ignored with
            ``model`` or ``config.distribute``. Defaults to None (a new model).

    Returns:
        TrainingResult. With ``models``, ``result.model`` is the cache's model: the next
        training with the same settings resets it.

    Raises:
        InputError: if ``out_dir`` holds a run and neither ``resume`` nor ``overwrite`` is
            given, or holds a different run and ``resume`` is given.

    Example:
        >>> result = train_model(train_ds, val_ds, "runs/fold1",  # doctest: +SKIP
        ...                      config=TrainingConfig.cpu(epochs=5))
        >>> result.best_epoch, result.history[-1].get("val_cindex")  # doctest: +SKIP
        >>> hnprog.from_preset(result.preset)  # doctest: +SKIP
    """
    from hnprog.transforms import PreprocessConfig

    config = config or TrainingConfig()
    if preprocessing is not None:
        warnings.warn("train_model(preprocessing=...) is deprecated and will be removed in the "
                      "next release; set TrainingConfig(preprocessing=PreprocessConfig(...))",
                      DeprecationWarning, stacklevel=2)
        config = config.replace(preprocessing=PreprocessConfig.from_recorded(preprocessing))
    out_dir = Path(out_dir)
    fingerprint = config.run_fingerprint()
    resuming = prepare_run_folder(out_dir, fingerprint, resume=resume, overwrite=overwrite,
                                  stored_fingerprint=_training_fingerprint)
    write_json({"fingerprint": fingerprint, "training": config.to_dict()}, out_dir / CONFIG_FILE)
    if failures is not None:
        write_failures(failures, out_dir / FAILURES_FILE)
    steps = len(train_data)
    if steps < 1:
        raise InputError("the training dataset yields no batch")
    labels = getattr(train_data, "centre_labels", None)
    if config.adversarial_centres > 0 and not labels:
        raise InputError("adversarial_centres > 0 needs a training dataset that yields each "
                         "patient's centre (CohortDataset(centre_labels=...))")
    with distribution_scope(config):
        n_centres = len(set(labels.values())) if labels and config.adversarial_centres else None
        reuse = models is not None and model is None and not config.distribute
        key = ModelCache.key(config, n_centres, steps) if reuse else ""
        kept = models.take(key) if reuse else None
        if kept is not None:
            keras.utils.set_random_seed(config.seed)  # as build_model does
            model, losses = kept
        else:
            if model is None:
                model = build_model(config, n_centres=n_centres)
            else:
                keras.utils.set_random_seed(config.seed)
                model = _with_training_heads(model, config, n_centres)
            losses = compile_model(model, config, steps_per_epoch=steps)
            # Build the optimizer state and the compiled loss's trackers now, eagerly: created
            # inside the first traced train step they cost seconds of graph building, and
            # TensorFlow then traces the step a second time (counted: two traces of the train
            # step become one; about 2.3 s less per training at 32^3, docs/benchmarks.md). A
            # resume loads the optimizer state.
            model.optimizer.build(model.trainable_variables)
            if not config.distribute:
                build_loss_trackers(model, val_data)
            if reuse:
                models.keep(key, model, losses)
        validation = ValidationMetrics(
            val_data,
            cox_loss=losses.get("risk"),
            dice_loss=losses.get("segmentation"),
            w_rad=config.w_rad,
            w_seg=config.w_seg,
        )
        checkpoint = RunCheckpoint(
            out_dir / CHECKPOINT_DIR,
            monitor=config.monitor,
            mode=config.resolved_monitor_mode,
            fingerprint=fingerprint,
            validation=validation,
        )
        initial_epoch = checkpoint.restore(model) if resuming else 0
        all_callbacks = [
            DatasetEpoch(train_data),
            validation,
            *([LearntLossWeights(weighting)]
              if (weighting := loss_weighting_layer(model)) is not None else []),
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
                verbose=fit_verbosity(verbose),
                # The dataset orders its epochs from (seed, epoch); Keras' own shuffle of the
                # batch order draws from Python's global RNG, which a resumed run cannot replay.
                shuffle=False,
            )
        else:  # the run had finished: load its kept epoch
            checkpoint.set_model(model)
            checkpoint.on_train_end()
    if checkpoint.best_epoch is None:
        raise InputError(f"training in {out_dir} ended before its first epoch completed")
    val_risk = checkpoint.best_val_risk
    if val_risk is None and "risk" in output_names(model):
        # a checkpoint of an older version, whose best epoch came before the resume, does not
        # hold that epoch's validation risks: predict them once with the kept weights
        val_risk = collect_predictions(model, val_data)["risk"]
    result = TrainingResult(
        model=model,
        history=checkpoint.history,
        best_epoch=int(checkpoint.best_epoch),
        best_value=checkpoint.best_value,
        out_dir=out_dir,
        val_risk=val_risk,
    )
    if export:
        export_preset(result, config)
    return result


def fit_verbosity(verbose: int | str, stream: Any = None) -> int | str:
    """Keras ``fit`` verbosity: ``"auto"`` becomes 2 (one plain line per epoch) when the
    output is not a terminal, because Keras' progress bar writes ANSI colours and backspaces
    even into a redirected log file; any other value is kept."""
    import sys

    if verbose != "auto":
        return verbose
    stream = stream if stream is not None else sys.stdout
    return "auto" if getattr(stream, "isatty", lambda: False)() else 2


def export_preset(
    result: TrainingResult,
    config: TrainingConfig,
    *,
    name: str | None = None,
    dataset: Mapping[str, Any] | None = None,
    fold: int | None = None,
    test_metrics: Mapping[str, float] | None = None,
    baseline: Mapping[str, Any] | None = None,
    clinical_model: Mapping[str, Any] | None = None,
) -> Path:
    """Save a run's kept model as its preset folder ``RUN/preset`` (:func:`hnprog.save_to_preset`).

    The preset holds the model without its training-only centre branch (the loss-weighting
    layer stays). It records ``config.preprocessing``, ``config.task``, the training recipe, the
    validation C-index and Dice of the kept epoch (and the test metrics when given) and, as
    the risk-group threshold used by ``hnprog predict``, the median of the kept epoch's
    validation risks (:attr:`TrainingResult.val_risk`, computed during training). Sets
    ``result.preset``.

    Args:
        result: TrainingResult. The finished run.
        config: TrainingConfig. The run's settings.
        name: str, optional. Preset name, e.g. ``"multitask_fold1"``. Defaults to the run
            folder's name.
        dataset: dict, optional. The training data (``name``, ``id``, ``n_patients``,
            ``synthetic``), see :func:`hnprog.save_to_preset`. Defaults to unknown data.
        fold: int, optional. Cross-validation fold (0-based). Defaults to None.
        test_metrics: dict, optional. ``{"c_index": ..., "dice": ...}`` on the test patients;
            values that are not finite are left out. Defaults to None.
        baseline: dict, optional. The Breslow baseline of the training patients
            (:func:`hnprog.training.runs.training_baseline`), so that ``hnprog predict``
            writes survival probabilities. Defaults to None.
        clinical_model: dict, optional. The deep + clinical Cox model of the training
            patients (:func:`hnprog.radiomics.clinical.fit_deep_clinical_model`), for
            ``hnprog predict --clinical``. Defaults to None.

    Returns:
        pathlib.Path. The preset folder.
    """
    from hnprog.presets import save_to_preset

    best = next((row for row in result.history if row.get("epoch") == result.best_epoch), {})
    metrics: dict[str, dict[str, float]] = {}
    validation = _finite({"c_index": best.get("val_cindex"), "dice": best.get("val_dice")})
    if validation:
        metrics["validation"] = validation
    test = _finite(test_metrics or {})
    if test:
        metrics["test"] = test
    risk = result.val_risk
    threshold = float(np.median(risk)) if risk is not None and np.isfinite(risk).all() else None
    from hnprog.models.unet import without_centre_branch

    out_dir = Path(result.out_dir)
    result.preset = save_to_preset(
        without_centre_branch(result.model), out_dir / PRESET_DIR,
        preprocessing=config.preprocessing, name=name or out_dir.name, task=config.task.value,
        fold=fold, n_folds=config.n_folds if fold is not None else None, split_seed=config.seed,
        dataset=dataset, training=config.to_dict(), metrics=metrics or None,
        risk_threshold=threshold, baseline=baseline, clinical_model=clinical_model,
        overwrite=True,
    )
    return result.preset


def _finite(values: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if v is not None and np.isfinite(v)}
