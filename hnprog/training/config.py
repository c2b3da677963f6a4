"""Training settings: one checked dataclass shared by training, cross-validation and fine-tuning.

The defaults are the paper's (Andrearczyk et al., 2021): Adam with cosine decay from 1e-3,
batch 10, 60 epochs, 1 mm voxels on a 144^3 crop, loss ``1 * Cox + 1 * Dice``.
:meth:`TrainingConfig.fast_cpu` is a documented smaller preset (2 mm voxels, 64^3 crop) that
trains in minutes on a laptop CPU.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from hnprog.errors import InputError

__all__ = ["FINETUNE_DEFAULTS", "SETTINGS", "TrainingConfig"]

#: The paper's three deep settings: name -> (w_rad, w_seg).
SETTINGS: dict[str, tuple[float, float]] = {
    "multitask": (1.0, 1.0),
    "radiomics": (1.0, 0.0),
    "segmentation": (0.0, 1.0),
}

#: TrainingConfig fields that fine-tuning sets differently from training from scratch.
FINETUNE_DEFAULTS: dict[str, Any] = {"epochs": 20, "learning_rate": 1e-4}

_MIXED_PRECISION = (None, "mixed_float16", "mixed_bfloat16")
_MONITOR_MODES = ("min", "max")


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that decides how a model is trained, saved with every run as ``config.json``.

    Args:
        epochs: int. Number of epochs. Defaults to 60 (the paper).
        batch_size: int. Patients per batch. Defaults to 10 (the paper).
        learning_rate: float. Initial Adam learning rate, decayed to 0 with a cosine schedule
            over all training steps. Defaults to 1e-3 (the paper).
        w_rad: float. Weight of the Cox loss on the ``"risk"`` output. Defaults to 1.0.
        w_seg: float. Weight of the Dice loss on the ``"segmentation"`` output. Defaults to 1.0.
        spacing: float. Isotropic voxel size of the network input, mm. Defaults to 1.0.
        crop_size: int. Edge of the cubic network input, voxels; divisible by 16 (four
            2x poolings). Defaults to 144.
        seed: int. Seeds splits, sampling, augmentation, weight initialisation and dropout.
            Defaults to 0.
        workers: int. Data-loading workers (threads) of the Keras ``PyDataset``.
            Defaults to 1.
        mixed_precision: str or None. ``"mixed_float16"``, ``"mixed_bfloat16"`` or None for
            float32. Defaults to None.
        tasks: str. Heads of the model built for training: ``"multitask"`` (both),
            ``"radiomics"`` (risk only) or ``"segmentation"`` (mask only). Defaults to
            ``"multitask"``; the paper's deep-radiomics and segmentation-only settings keep
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
        augment: bool. Random shifts, sagittal mirroring and small rotations during training.
            Defaults to True.
        distribute: bool. Data-parallel training over all local accelerators. Defaults to
            False.
        run_eagerly: bool. Run the training and prediction steps eagerly instead of compiling
            them (Keras ``compile(run_eagerly=...)``). Much slower per step at real sizes, but
            it skips the one-off graph building, which dominates tiny runs under TensorFlow
            (seconds instead of about 20 s); for debugging and tests. Not part of the run
            fingerprint. Defaults to False.

    Raises:
        InputError: on a crop size not divisible by 16, non-positive sizes or rates, negative
            or all-zero loss weights, or an unknown mixed-precision policy or task.

    Example:
        >>> config = TrainingConfig.fast_cpu(epochs=2)
        >>> config.spacing, config.crop_size, config.batch_size
        (2.0, 64, 10)
    """

    epochs: int = 60
    batch_size: int = 10
    learning_rate: float = 1e-3
    w_rad: float = 1.0
    w_seg: float = 1.0
    spacing: float = 1.0
    crop_size: int = 144
    seed: int = 0
    workers: int = 1
    mixed_precision: str | None = None
    tasks: str = "multitask"
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
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "filters", tuple(int(f) for f in self.filters))
        for name in ("epochs", "batch_size", "crop_size", "workers", "n_folds"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"{name} must be a positive integer. Received: {name}={value!r}")
        if self.n_folds < 2:
            raise InputError(f"n_folds must be at least 2. Received: n_folds={self.n_folds}")
        if self.crop_size % 16:
            raise InputError(
                "crop_size must be divisible by 16 (the UNet pools four times by 2). "
                f"Received: crop_size={self.crop_size}"
            )
        for name in ("learning_rate", "spacing"):
            value = float(getattr(self, name))
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"{name} must be a positive number. Received: {name}={value!r}")
        if min(self.w_rad, self.w_seg) < 0 or self.w_rad + self.w_seg == 0:
            raise InputError(
                "loss weights must be >= 0 and not both 0. "
                f"Received: w_rad={self.w_rad}, w_seg={self.w_seg}"
            )
        if self.mixed_precision not in _MIXED_PRECISION:
            raise InputError(
                f"mixed_precision must be one of {_MIXED_PRECISION}. "
                f"Received: mixed_precision={self.mixed_precision!r}"
            )
        if self.tasks not in SETTINGS:
            raise InputError(
                f"tasks must be one of {tuple(SETTINGS)}. Received: tasks={self.tasks!r}"
            )
        if self.tasks == "radiomics" and self.w_seg > 0:
            raise InputError("tasks='radiomics' has no segmentation output; set w_seg=0.")
        if self.tasks == "segmentation" and self.w_rad > 0:
            raise InputError("tasks='segmentation' has no risk output; set w_rad=0.")
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

    @classmethod
    def fast_cpu(cls, **overrides: Any) -> TrainingConfig:
        """The CPU preset: 2 mm voxels on a 64^3 crop (a 128 mm cube), other values as given.

        Args:
            **overrides: any field of :class:`TrainingConfig`.

        Returns:
            TrainingConfig.
        """
        return cls(**{"spacing": 2.0, "crop_size": 64, **overrides})

    @classmethod
    def for_setting(cls, setting: str, **overrides: Any) -> TrainingConfig:
        """A config with the loss weights of one of the paper's settings.

        Args:
            setting: str. ``"multitask"`` (1, 1), ``"radiomics"`` (1, 0) or
                ``"segmentation"`` (0, 1).
            **overrides: any other field.

        Returns:
            TrainingConfig.

        Raises:
            InputError: on an unknown setting.
        """
        if setting not in SETTINGS:
            raise InputError(
                f"setting must be one of {tuple(SETTINGS)}. Received: setting={setting!r}"
            )
        w_rad, w_seg = SETTINGS[setting]
        return cls(**{**overrides, "w_rad": w_rad, "w_seg": w_seg})

    @property
    def resolved_monitor_mode(self) -> str:
        """``monitor_mode``, or the natural direction of ``monitor`` when it is None."""
        if self.monitor_mode is not None:
            return self.monitor_mode
        return "max" if self.monitor.endswith(("cindex", "dice")) else "min"

    def replace(self, **changes: Any) -> TrainingConfig:
        """A copy with some fields changed (and checked again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (``filters`` as a list)."""
        out = dataclasses.asdict(self)
        out["filters"] = list(self.filters)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingConfig:
        """Build a config from :meth:`to_dict` output; unknown keys are an error.

        Raises:
            InputError: on unknown keys or invalid values.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"unknown training config keys: {unknown}")
        return cls(**values)

    def run_fingerprint(self) -> dict[str, Any]:
        """The fields that must match for ``--resume`` to continue a run.

        All but ``workers``, ``run_eagerly`` and ``extra``, which change how a run executes,
        not what it computes.
        """
        out = self.to_dict()
        out.pop("workers")
        out.pop("run_eagerly")
        out.pop("extra")
        return out
