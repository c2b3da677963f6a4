"""Fold ensembles: average the predictions of the models trained on the folds of one run.

Cross-validation leaves one model per fold. Averaging them is the usual way to use all of
them on new patients (the HECKTOR 2020 winner averaged eight). :class:`FoldEnsemble` averages
the risk (Cox log-hazard, higher is worse) and the GTVt probability map over its members. It
is a :class:`~hnprog.presets.preset.Predictor`, like a single
:class:`~hnprog.presets.preset.Preset`; ``hnprog.from_preset`` returns one for a family name,
a folder of fold presets or a list.

Each fold's Cox model fixes the log-hazard only up to an additive constant, so the mean risk is
meaningful for ranking patients (C-index, median split), not as an absolute hazard.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from hnprog.errors import InputError
from hnprog.presets.preset import Preset

__all__ = ["FoldEnsemble", "mean_outputs"]


class FoldEnsemble:
    """Several presets (usually the folds of one run) that predict as one model.

    The members must expect the same preprocessing and input shape and have the same
    outputs. ``predict`` returns the mean of the members' outputs; the members run one after
    the other, so memory holds one model's activations at a time.

    Args:
        members: sequence of Preset or keras.Model. The fold models (from
            :func:`hnprog.from_preset`). A plain Keras model is wrapped in a Preset without
            metadata and then has no preprocessing spec to check.

    Raises:
        InputError: if there are no members, or they disagree on preprocessing, input shape
            or outputs.

    Example:
        >>> import hnprog
        >>> ensemble = hnprog.from_preset(["folds/fold0", "folds/fold1"])  # doctest: +SKIP
        >>> out = ensemble.predict(x)  # x: (N, D, H, W, 2), [CT, PET]  # doctest: +SKIP
        >>> out["risk"].shape, out["segmentation"].shape  # doctest: +SKIP
        ((N, 1), (N, D, H, W, 1))
    """

    def __init__(self, members: Sequence[Preset | Any]):
        members = [m if isinstance(m, Preset) else Preset(model=m, metadata={},
                                                          source=getattr(m, "name", "model"))
                   for m in members]
        if not members:
            raise InputError("A FoldEnsemble needs at least one member. Received: members=[]")
        first = members[0]
        for member in members[1:]:
            for label, ours, theirs in (
                ("outputs", first.outputs, member.outputs),
                ("input shape", _input_shape(first), _input_shape(member)),
            ):
                if ours != theirs:
                    raise InputError(
                        f"Ensemble members disagree on their {label}: {first.name} has {ours}, "
                        f"{member.name} has {theirs}."
                    )
            if (first.preprocessing is not None and member.preprocessing is not None
                    and first.preprocessing != member.preprocessing):
                raise InputError(
                    f"Ensemble members expect different preprocessing: {first.name} has "
                    f"{first.preprocessing}, {member.name} has {member.preprocessing}."
                )
        self.members: list[Preset] = members

    def __len__(self) -> int:
        return len(self.members)

    def __iter__(self) -> Iterator[Preset]:
        return iter(self.members)

    def __repr__(self) -> str:
        return f"FoldEnsemble([{', '.join(m.name for m in self.members)}])"

    @property
    def outputs(self) -> list[str]:
        """The output names shared by all members (``"risk"``, ``"segmentation"``)."""
        return self.members[0].outputs

    @property
    def preprocessing(self) -> dict[str, Any] | None:
        """The preprocessing spec that every member expects (None if no member records one)."""
        return next((m.preprocessing for m in self.members if m.preprocessing is not None), None)

    @property
    def metadata(self) -> list[dict[str, Any]]:
        """Each member's ``hnprog.json``, in member order."""
        return [m.metadata for m in self.members]

    def predict(self, x: Any, *, batch_size: int = 1, verbose: int = 0) -> dict[str, np.ndarray]:
        """Mean prediction of the members, with the arguments of
        :meth:`hnprog.presets.preset.Preset.predict` (``x``: (N, D, H, W, 2) float32,
        [CT, PET], preprocessed as :attr:`preprocessing` says).

        Returns:
            dict. ``"risk"``: (N, 1) mean log-hazard (higher is worse) and/or
            ``"segmentation"``: (N, D, H, W, 1) mean GTVt probability, float32.

        Raises:
            InputError: if ``x`` does not have the shape the members expect.
        """
        return mean_outputs(self.predict_members(x, batch_size=batch_size, verbose=verbose))

    def predict_members(self, x: Any, *, batch_size: int = 1, verbose: int = 0
                        ) -> list[dict[str, np.ndarray]]:
        """Each member's prediction, in member order (what :meth:`predict` averages).

        Prediction uses the members' own risks to average their survival curves, each with
        its own baseline (:mod:`hnprog.predict.survival`).

        Returns:
            list of dict, one per member, as :meth:`hnprog.presets.preset.Preset.predict`.
        """
        image = x["image"] if isinstance(x, Mapping) else x
        return [member.predict(image, batch_size=batch_size, verbose=verbose)
                for member in self.members]


def mean_outputs(outputs: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The mean of several predictions (dicts of equal-shaped arrays), as float32.

    Args:
        outputs: sequence of dict. E.g. :meth:`FoldEnsemble.predict_members`.

    Returns:
        dict. The mean of each key over the predictions, float32 (summed in float64).
    """
    total: dict[str, np.ndarray] = {}
    for output in outputs:
        for key, value in output.items():
            total[key] = total[key] + value.astype("float64") if key in total else (
                value.astype("float64"))
    return {key: (value / len(outputs)).astype("float32") for key, value in total.items()}


def _input_shape(member: Preset) -> tuple:
    return tuple(member.model.inputs[0].shape[1:])
