"""The task vocabulary: the paper's three deep settings, defined once.

A :class:`Task` names what a model is trained for and, with it, which heads it has and which
loss weights ``(w_rad, w_seg)`` the paper gives it (Andrearczyk et al., 2021):

| task | heads | (w_rad, w_seg) |
| --- | --- | --- |
| ``multitask`` | risk + segmentation | (1, 1) |
| ``radiomics`` (deep radiomics) | risk (encoder and risk branch only) | (1, 0) |
| ``segmentation`` | segmentation | (0, 1) |

Models (``build_multitask_unet(task=...)``), presets (``hnprog.json``'s ``task``), training
(``TrainingConfig.task``, ``cross_validate(tasks=...)``), the CLI and the reports all use these
names. ``Task`` is a ``str`` enum, so ``Task.MULTITASK == "multitask"`` and a plain string is
accepted wherever a task is.
"""

from __future__ import annotations

import enum

from hnprog.errors import InputError

__all__ = ["Task"]


class Task(str, enum.Enum):
    """What a model is trained for: ``"multitask"``, ``"radiomics"`` or ``"segmentation"``.

    Example:
        >>> Task.parse("radiomics").loss_weights
        (1.0, 0.0)
        >>> Task.parse("multitask").outputs
        ('risk', 'segmentation')
    """

    MULTITASK = "multitask"
    RADIOMICS = "radiomics"
    SEGMENTATION = "segmentation"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: str | Task, *, name: str = "task") -> Task:
        """The task named by ``value``.

        Args:
            value: str or Task. A task name.
            name: str. The argument's name in the error message. Defaults to ``"task"``.

        Returns:
            Task.

        Raises:
            InputError: naming the argument and the accepted values.
        """
        try:
            return cls(value)
        except ValueError:
            raise InputError(
                f"{name} must be one of {[t.value for t in cls]}. Received: {name}={value!r}"
            ) from None

    @classmethod
    def from_outputs(cls, outputs: set[str] | frozenset[str] | list[str]) -> Task | None:
        """The task whose heads are exactly ``outputs`` (``{"risk", "segmentation"}`` ...)."""
        for task in cls:
            if set(task.outputs) == set(outputs):
                return task
        return None

    @property
    def loss_weights(self) -> tuple[float, float]:
        """The paper's ``(w_rad, w_seg)``: Cox loss weight, Dice loss weight."""
        return {"multitask": (1.0, 1.0), "radiomics": (1.0, 0.0),
                "segmentation": (0.0, 1.0)}[self.value]

    @property
    def outputs(self) -> tuple[str, ...]:
        """The model outputs of this task, sorted: ``("risk",)``, ``("segmentation",)`` or both."""
        return {"multitask": ("risk", "segmentation"), "radiomics": ("risk",),
                "segmentation": ("segmentation",)}[self.value]

    @property
    def label(self) -> str:
        """The name reports use: ``"deep multi-task (1,1)"`` and so on."""
        return {"multitask": "deep multi-task (1,1)", "radiomics": "deep radiomics (1,0)",
                "segmentation": "deep segmentation (0,1)"}[self.value]
