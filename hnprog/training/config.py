"""Training settings: one checked dataclass shared by training, cross-validation and fine-tuning.

The defaults are the paper's (Andrearczyk et al., 2021): Adam with cosine decay from 1e-3,
batch 10, 60 epochs, 1 mm voxels on a 144^3 crop, loss ``1 * Cox + 1 * Dice``.
:meth:`TrainingConfig.cpu` is a documented smaller preset (2 mm voxels, 64^3 crop,
:meth:`hnprog.transforms.PreprocessConfig.cpu`) that trains in minutes on a laptop CPU.

Two settings describe the model, with the one task vocabulary :class:`~hnprog.models.task.Task`:

- ``task``: what the model is **trained for**, hence the loss weights ``(w_rad, w_seg)``:
  multitask (1, 1), radiomics (1, 0), segmentation (0, 1);
- ``heads``: which outputs the model **has**. The paper's deep-radiomics and
  segmentation-only settings keep both heads (``heads="multitask"``, the default) and set one
  loss weight to 0, so that both metrics are reported for every setting.

This module does not import Keras: the CLI reads its defaults (:class:`TrainingConfig`'s field
defaults and :data:`FINETUNE_DEFAULTS`) to show them in ``--help``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hnprog.errors import InputError, warn_deprecated
from hnprog.models.task import Task
from hnprog.transforms import PreprocessConfig

__all__ = ["FINETUNE_DEFAULTS", "Task", "TrainingConfig", "with_grid"]

#: TrainingConfig fields that fine-tuning sets differently from training from scratch.
FINETUNE_DEFAULTS: dict[str, Any] = {"epochs": 20, "learning_rate": 1e-4}

_MIXED_PRECISION = (None, "mixed_float16", "mixed_bfloat16")
_LOSS_WEIGHTINGS = ("fixed", "uncertainty")  # hnprog.models.unet.LOSS_WEIGHTINGS (no Keras here)
_MONITOR_MODES = ("min", "max")
_CROP_MULTIPLE = 16  # the UNet pools four times by 2

#: Deprecated keyword -> field (one release): renamed fields.
_RENAMED = {"workers": "n_jobs", "tasks": "heads"}
#: Deprecated keywords that moved into ``preprocessing`` (one release).
_GRID_KEYS = ("spacing", "crop_size")


def _deprecated(old: str, new: str, stacklevel: int) -> None:
    warn_deprecated(old, new, stacklevel=stacklevel + 1)


def with_grid(
    preprocessing: PreprocessConfig,
    *,
    spacing: float | None = None,
    crop_size: int | None = None,
) -> PreprocessConfig:
    """``preprocessing`` with another voxel size (mm) and/or crop edge (voxels).

    A shift limit (grid voxels) is recomputed for a new spacing, so that it stays the
    paper's 30 mm (:class:`~hnprog.transforms.PreprocessConfig`'s default).
    """
    values = preprocessing.to_dict()
    if spacing is not None and float(spacing) != preprocessing.spacing:
        values.update(spacing=float(spacing), max_shift=None)
    if crop_size is not None:
        values["crop_size"] = crop_size
    return PreprocessConfig.from_dict(values)


def _translate_deprecated(
    kwargs: dict[str, Any], stacklevel: int, base: PreprocessConfig | None = None
) -> dict[str, Any]:
    """Map the deprecated keywords (``spacing``, ``crop_size``, ``workers``, ``tasks``).

    ``spacing`` and ``crop_size`` change ``kwargs["preprocessing"]``, else ``base``.
    """
    for old, new in _RENAMED.items():
        if old in kwargs:
            _deprecated(f"TrainingConfig({old}=...)", f"{new}=...", stacklevel)
            if new in kwargs:
                raise InputError(f"give {new} or its deprecated alias {old}, not both")
            kwargs[new] = kwargs.pop(old)
    grid = {k: kwargs.pop(k) for k in _GRID_KEYS if k in kwargs}
    if grid:
        _deprecated("TrainingConfig(spacing=..., crop_size=...)",
                    "preprocessing=PreprocessConfig(spacing=..., crop_size=...)", stacklevel)
        base = _as_preprocess_config(kwargs.get("preprocessing", base))
        kwargs["preprocessing"] = with_grid(base, **grid)
    return kwargs


def _as_preprocess_config(value: Any) -> PreprocessConfig:
    if value is None:
        return PreprocessConfig()
    if isinstance(value, PreprocessConfig):
        return value
    if isinstance(value, Mapping):
        return PreprocessConfig.from_dict(value)
    raise InputError(
        f"preprocessing must be a PreprocessConfig. Received: preprocessing={value!r}"
    )


def _accepting_deprecated_keywords(cls: type) -> type:
    """Let ``cls(...)`` (and ``dataclasses.replace``) take the deprecated keywords."""
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **_translate_deprecated(kwargs, stacklevel=4))

    cls.__init__ = __init__
    return cls


@_accepting_deprecated_keywords
@dataclass(frozen=True)
class TrainingConfig:
    """Everything that decides how a model is trained, saved with every run as ``config.json``.

    Args:
        epochs: int. Number of epochs. Defaults to 60 (the paper).
        batch_size: int. Patients per batch. Defaults to 10 (the paper).
        learning_rate: float. Initial Adam learning rate, decayed to 0 with a cosine schedule
            over all training steps. Defaults to 1e-3 (the paper).
        w_rad: float, optional. Weight of the Cox loss on the ``"risk"`` output. Defaults to
            the ``task``'s weight (1.0 for ``"multitask"``).
        w_seg: float, optional. Weight of the Dice loss on the ``"segmentation"`` output.
            Defaults to the ``task``'s weight (1.0 for ``"multitask"``).
        preprocessing: PreprocessConfig. The network grid (``spacing`` in mm, ``crop_size``
            in voxels, divisible by 16 for the four 2x poolings), the CT window and the
            augmentation limits (``max_shift``, ``max_rotation``, ``mirror``); saved with the
            model. Defaults to ``PreprocessConfig()`` (1 mm, 144^3, the paper).
        seed: int. Seeds splits, sampling, augmentation, weight initialisation and dropout.
            Defaults to 0.
        n_jobs: int. Data-loading workers (threads) of the Keras ``PyDataset``.
            Defaults to 1.
        mixed_precision: str or None. ``"mixed_float16"``, ``"mixed_bfloat16"`` or None for
            float32. Defaults to None.
        task: Task or str, optional. What the model is trained for: ``"multitask"`` (Cox +
            Dice), ``"radiomics"`` (Cox only) or ``"segmentation"`` (Dice only); it gives the
            loss weights not set explicitly, and given weights must agree with it (a positive
            weight exactly on the task's outputs). Defaults to what the loss weights imply,
            ``"multitask"`` when neither is given.
        heads: Task or str. The outputs of the model built for training: ``"multitask"``
            (both), ``"radiomics"`` (risk only) or ``"segmentation"`` (mask only). Defaults to
            ``"multitask"``: the paper's deep-radiomics and segmentation-only settings keep
            both heads and set a loss weight to 0, so that both metrics are reported.
        filters: tuple of int. Filters of the five encoder levels. Defaults to
            ``(8, 16, 32, 64, 128)`` (the paper).
        dropout: float. Dropout rate of the risk branch. Defaults to 0.5.
        ties: str. Tied event times in the Cox loss, ``"breslow"`` or ``"efron"``.
            Defaults to ``"breslow"``.
        val_fraction: float. Share of the non-test patients kept for validation.
            Defaults to 0.2 (the paper).
        n_folds: int. Cross-validation folds (each holds ``1/n_folds`` of patients as test).
            Defaults to 5 (the paper).
        monitor: str. Validation quantity that picks the kept epoch: ``"val_loss"`` (the
            paper's combined loss), ``"val_cindex"``, ``"val_dice"`` or any logged name.
            Defaults to ``"val_loss"``.
        monitor_mode: str. ``"min"`` or ``"max"``; when None, ``"max"`` for C-index and Dice
            and ``"min"`` otherwise. Defaults to None.
        balance_events: bool. Resample the training set so that half of the samples have an
            event (the paper's censoring balance). Defaults to True.
        augment: bool. Random shifts, sagittal mirroring and small rotations during training,
            within ``preprocessing``'s limits. Defaults to True.
        distribute: bool. Data-parallel training over all local accelerators. Defaults to
            False.
        run_eagerly: bool. Run the training and prediction steps eagerly instead of compiling
            them (Keras ``compile(run_eagerly=...)``). Much slower per step at real sizes, but
            it skips the one-off graph building, which dominates tiny runs under TensorFlow
            (seconds instead of about 20 s); for debugging and tests. Not part of the run
            fingerprint. Defaults to False.
        loss_weighting: str. ``"fixed"``: the loss is ``w_rad * Cox + w_seg * Dice`` (the
            paper); ``"uncertainty"``: each trained task's loss is weighted by a learnt
            log-variance (Kendall et al., 2018; :class:`hnprog.UncertaintyWeighting`), on top
            of its fixed weight (a task with weight 0 stays off). Defaults to ``"fixed"``.
        adversarial_centres: float. Weight of the reversed gradient of the domain-adversarial
            centre classifier on the pooled encoder features (Ganin and Lempitsky, 2015);
            0 trains no centre branch. Needs each training patient's centre. Defaults to 0.0.
        extra: dict. Free-form notes recorded with the run (fine-tuning stores its source
            here). Not part of the run fingerprint. Defaults to an empty dict.

    Deprecated keywords (one release): ``spacing=`` and ``crop_size=`` (set them in
    ``preprocessing``; ``config.spacing`` and ``config.crop_size`` stay readable),
    ``workers=`` (``n_jobs``) and ``tasks=`` (``heads``).

    Raises:
        InputError: on a crop size not divisible by 16, non-positive sizes or rates, negative
            or all-zero loss weights, weights that disagree with ``task``, a loss on an output
            that ``heads`` lacks, or an unknown mixed-precision policy or task.

    Example:
        >>> config = TrainingConfig.cpu(epochs=2)
        >>> config.spacing, config.crop_size, config.batch_size
        (2.0, 64, 10)
        >>> TrainingConfig(task="radiomics").w_seg
        0.0
    """

    epochs: int = 60
    batch_size: int = 10
    learning_rate: float = 1e-3
    w_rad: float | None = None
    w_seg: float | None = None
    preprocessing: PreprocessConfig = field(default_factory=PreprocessConfig)
    seed: int = 0
    n_jobs: int = 1
    mixed_precision: str | None = None
    task: Task | None = None
    heads: Task = Task.MULTITASK
    filters: tuple[int, ...] = (8, 16, 32, 64, 128)
    dropout: float = 0.5
    ties: str = "breslow"
    val_fraction: float = 0.2
    n_folds: int = 5
    monitor: str = "val_loss"
    monitor_mode: str | None = None
    balance_events: bool = True
    augment: bool = True
    distribute: bool = False
    run_eagerly: bool = False
    loss_weighting: str = "fixed"
    adversarial_centres: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)
        set_("filters", tuple(int(f) for f in self.filters))
        set_("preprocessing", _as_preprocess_config(self.preprocessing))
        for name in ("epochs", "batch_size", "n_jobs", "n_folds"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"{name} must be a positive integer. Received: {name}={value!r}")
        if self.n_folds < 2:
            raise InputError(f"n_folds must be at least 2. Received: n_folds={self.n_folds}")
        if self.crop_size % _CROP_MULTIPLE:
            raise InputError(
                f"crop_size must be divisible by {_CROP_MULTIPLE} (the UNet pools four times "
                f"by 2). Received: crop_size={self.crop_size}"
            )
        value = float(self.learning_rate)
        if not (math.isfinite(value) and value > 0):
            raise InputError(
                f"learning_rate must be a positive number. Received: learning_rate={value!r}"
            )
        self._resolve_task_and_weights()
        set_("heads", Task.parse(self.heads, name="heads"))
        if "segmentation" not in self.heads.outputs and self.w_seg > 0:
            raise InputError(
                f"heads={self.heads.value!r} has no segmentation output; set w_seg=0."
            )
        if "risk" not in self.heads.outputs and self.w_rad > 0:
            raise InputError(f"heads={self.heads.value!r} has no risk output; set w_rad=0.")
        if self.mixed_precision not in _MIXED_PRECISION:
            raise InputError(
                f"mixed_precision must be one of {_MIXED_PRECISION}. "
                f"Received: mixed_precision={self.mixed_precision!r}"
            )
        if not 0 < self.val_fraction < 1:
            raise InputError(
                f"val_fraction must be in (0, 1). Received: val_fraction={self.val_fraction}"
            )
        if self.monitor_mode not in (None, *_MONITOR_MODES):
            raise InputError(
                f"monitor_mode must be 'min', 'max' or None. Received: {self.monitor_mode!r}"
            )
        if self.ties not in ("breslow", "efron"):
            raise InputError(f"ties must be 'breslow' or 'efron'. Received: ties={self.ties!r}")
        if self.loss_weighting not in _LOSS_WEIGHTINGS:
            raise InputError(f"loss_weighting must be one of {_LOSS_WEIGHTINGS}. "
                             f"Received: loss_weighting={self.loss_weighting!r}")
        weight = float(self.adversarial_centres)
        if not (math.isfinite(weight) and weight >= 0):
            raise InputError("adversarial_centres must be a number >= 0 (0: no centre branch). "
                             f"Received: adversarial_centres={self.adversarial_centres!r}")
        set_("adversarial_centres", weight)

    def _resolve_task_and_weights(self) -> None:
        """Fill the loss weights from ``task`` and ``task`` from the weights; check both."""
        given = None if self.task is None else Task.parse(self.task, name="task")
        defaults = (given or Task.MULTITASK).loss_weights
        w_rad, w_seg = (
            defaults[i] if value is None else float(value)
            for i, value in enumerate((self.w_rad, self.w_seg))
        )
        if min(w_rad, w_seg) < 0 or w_rad + w_seg == 0:
            raise InputError(
                f"loss weights must be >= 0 and not both 0. Received: w_rad={w_rad}, w_seg={w_seg}"
            )
        trained = Task.from_outputs(
            [name for name, w in (("risk", w_rad), ("segmentation", w_seg)) if w > 0]
        )
        if given is not None and trained is not given:
            raise InputError(
                f"task={given.value!r} trains the outputs {list(given.outputs)}, so its loss "
                f"weights are {given.loss_weights} up to scale. Received: w_rad={w_rad}, "
                f"w_seg={w_seg}"
            )
        object.__setattr__(self, "w_rad", w_rad)
        object.__setattr__(self, "w_seg", w_seg)
        object.__setattr__(self, "task", trained)

    # -- the preprocessing grid ---------------------------------------------------------------
    @property
    def spacing(self) -> float:
        """Isotropic voxel size of the network input, mm (``preprocessing.spacing``)."""
        return self.preprocessing.spacing

    @property
    def crop_size(self) -> int:
        """Edge of the cubic network input, voxels (``preprocessing.crop_size``)."""
        return self.preprocessing.crop_size

    @property
    def workers(self) -> int:
        """Deprecated alias of :attr:`n_jobs`."""
        _deprecated("TrainingConfig.workers", "n_jobs", stacklevel=3)
        return self.n_jobs

    @property
    def tasks(self) -> Task:
        """Deprecated alias of :attr:`heads`."""
        _deprecated("TrainingConfig.tasks", "heads", stacklevel=3)
        return self.heads

    # -- presets ------------------------------------------------------------------------------
    @classmethod
    def cpu(cls, **overrides: Any) -> TrainingConfig:
        """The CPU preset: 2 mm voxels on a 64^3 crop (a 128 mm cube), other values as given.

        Args:
            **overrides: any field of :class:`TrainingConfig`.

        Returns:
            TrainingConfig. Its ``preprocessing`` is :meth:`PreprocessConfig.cpu`.
        """
        cpu = PreprocessConfig.cpu()
        overrides = _translate_deprecated(dict(overrides), stacklevel=4, base=cpu)
        return cls(**{"preprocessing": cpu, **overrides})

    @classmethod
    def fast_cpu(cls, **overrides: Any) -> TrainingConfig:
        """Deprecated alias of :meth:`cpu` (the name :meth:`PreprocessConfig.cpu` has too)."""
        _deprecated("TrainingConfig.cpu()", "TrainingConfig.cpu()", stacklevel=3)
        return cls.cpu(**overrides)

    @classmethod
    def for_setting(cls, setting: str, **overrides: Any) -> TrainingConfig:
        """Deprecated: use ``TrainingConfig(task=setting, ...)``.

        Args:
            setting: str. ``"multitask"`` (1, 1), ``"radiomics"`` (1, 0) or
                ``"segmentation"`` (0, 1).
            **overrides: any other field; ``w_rad`` and ``w_seg`` are replaced by the task's.

        Returns:
            TrainingConfig.
        """
        _deprecated("TrainingConfig.for_setting(setting)", "TrainingConfig(task=...)",
                    stacklevel=3)
        task = Task.parse(setting, name="setting")
        return cls(**{**overrides, "task": task, "w_rad": None, "w_seg": None})

    @property
    def resolved_monitor_mode(self) -> str:
        """``monitor_mode``, or the natural direction of ``monitor`` when it is None."""
        if self.monitor_mode is not None:
            return self.monitor_mode
        return "max" if self.monitor.endswith(("cindex", "dice")) else "min"

    def replace(self, **changes: Any) -> TrainingConfig:
        """A copy with some fields changed (and checked again).

        A new ``task`` without weights takes the task's loss weights; new weights without a
        ``task`` give the task they imply.
        """
        changes = _translate_deprecated(dict(changes), stacklevel=4, base=self.preprocessing)
        weights = {"w_rad", "w_seg"} & set(changes)
        if "task" in changes and not weights:
            changes.update(w_rad=None, w_seg=None)
        elif weights and "task" not in changes:
            changes["task"] = None
        return dataclasses.replace(self, **changes)

    # -- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (``filters`` as a list, tasks as their names)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out.update(
            filters=list(self.filters), preprocessing=self.preprocessing.to_dict(),
            task=self.task.value, heads=self.heads.value, extra=dict(self.extra),
        )
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainingConfig:
        """Build a config from :meth:`to_dict` output, also that of older versions.

        Older ``config.json`` files (``spacing``, ``crop_size``, ``workers`` and ``tasks``
        fields; a fine-tuned run's recorded preprocessing in ``extra``) load as the same
        settings, so their runs resume.

        Raises:
            InputError: on unknown keys or invalid values.
        """
        values = dict(values)
        known = {f.name for f in dataclasses.fields(cls)} | set(_RENAMED) | set(_GRID_KEYS)
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"unknown training config keys: {unknown}")
        for old, new in _RENAMED.items():
            if old in values:
                values[new] = values.pop(old)
        grid = {k: values.pop(k) for k in _GRID_KEYS if k in values}
        if grid and "preprocessing" not in values:
            # before PreprocessConfig was held here, a fine-tuned run kept the source's
            # recorded preprocessing in extra, and spacing/crop_size overrode it
            recorded = (values.get("extra") or {}).get("preprocessing")
            base = PreprocessConfig.from_recorded(recorded) if recorded else PreprocessConfig()
            values["preprocessing"] = with_grid(base, **grid)
        return cls(**values)

    def run_fingerprint(self) -> dict[str, Any]:
        """The fields that must match for ``--resume`` to continue a run.

        All but ``n_jobs``, ``run_eagerly`` and ``extra``, which change how a run executes,
        not what it computes. ``loss_weighting`` and ``adversarial_centres`` are left out at
        their defaults, so runs written before they existed still resume.
        """
        out = self.to_dict()
        for name in ("n_jobs", "run_eagerly", "extra"):
            out.pop(name)
        if out["loss_weighting"] == "fixed":
            out.pop("loss_weighting")
        if out["adversarial_centres"] == 0:
            out.pop("adversarial_centres")
        return out


def __getattr__(name: str) -> Any:
    if name == "SETTINGS":  # deprecated: the paper's settings are the members of Task
        _deprecated("hnprog.training.SETTINGS", "hnprog.models.task.Task (Task.loss_weights)",
                    stacklevel=3)
        return {task.value: task.loss_weights for task in Task}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
