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
from hnprog.presets.preset import Predictor, Preset

__all__ = ["FOLD_SPREAD", "MEMBER_RISKS", "FoldEnsemble", "mean_outputs"]

#: the key of :meth:`FoldEnsemble.predict`'s output holding the risk's spread across folds
FOLD_SPREAD = "risk_fold_sd"
#: the key of :meth:`FoldEnsemble.predict`'s output holding each member's own risk
MEMBER_RISKS = "member_risks"


class FoldEnsemble:
    """Several presets (usually the folds of one run) that predict as one model.

    The members must expect the same preprocessing and input shape and have the same
    outputs. ``predict`` returns the mean of the members' outputs; the members run one after
    the other, so memory holds one model's activations at a time.

    Args:
        members: sequence of Preset, another single-model Predictor (an
            :class:`~hnprog.presets.exported.ExportedPreset`) or keras.Model. The fold models
            (from :func:`hnprog.from_preset`). A plain Keras model is wrapped in a Preset
            without metadata and then has no preprocessing spec to check.

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
        members = [m if isinstance(m, (Preset, Predictor)) else Preset(
            model=m, metadata={}, source=getattr(m, "name", "model")) for m in members]
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
        self.members: list[Any] = members

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
            ``"segmentation"``: (N, D, H, W, 1) mean GTVt probability, float32; with a risk
            and two members or more also ``"risk_fold_sd"``: (N, 1) the spread of the risk
            across the members (:meth:`risk_spread`) and ``"member_risks"``: (N, M) each
            member's own log-hazard (each fold's survival baseline applies to its own risk).

        Raises:
            InputError: if ``x`` does not have the shape the members expect.
        """
        members = self.predict_members(x, batch_size=batch_size, verbose=verbose)
        mean = mean_outputs([{key: m[key] for key in self.outputs} for m in members])
        if "risk" in mean and len(members) >= 2:
            risks = [m["risk"].astype("float64") for m in members]
            mean[FOLD_SPREAD] = self.risk_spread(risks)
            mean[MEMBER_RISKS] = np.concatenate(risks, axis=1).astype("float32")
        return mean

    def risk_spread(self, risks: Sequence[np.ndarray]) -> np.ndarray:
        """The per-patient spread of the risk across the members: an uncertainty signal.

        Each fold's Cox model fixes the log-hazard only up to an additive constant, so when
        every member records a risk threshold (the median validation risk of its fold) each
        member's risk is first taken relative to its own threshold; otherwise the raw
        log-hazards are compared, and a constant offset between folds adds to the spread.

        Args:
            risks: sequence of arrays (N, 1). Each member's log-hazard, in member order.

        Returns:
            numpy.ndarray. (N, 1) float32 sample standard deviation (ddof=1) across members.
        """
        thresholds = [(m.metadata or {}).get("outputs", {}).get("risk", {}).get("threshold")
                      for m in self.members]
        stacked = np.stack([np.asarray(r, dtype="float64") for r in risks])
        if all(t is not None for t in thresholds):
            stacked = stacked - np.asarray(thresholds, dtype="float64").reshape(-1, 1, 1)
        return stacked.std(axis=0, ddof=1).astype("float32")

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


def _input_shape(member: Any) -> tuple:
    return tuple(member.input_shape)
