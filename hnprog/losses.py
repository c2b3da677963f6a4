"""Training losses: the Cox negative log partial likelihood (Eq. 2), the soft Dice (Eq. 1), and
their optional uncertainty weighting (Kendall et al., 2018).

All are ``keras.losses.Loss`` subclasses written with ``keras.ops`` only, so they run on the
TensorFlow, JAX and PyTorch backends, and all compute in float32 (or float64 when asked)
even when the model runs under a ``mixed_float16`` policy.
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from hnprog.errors import InputError
from hnprog.survival import deprecated_positional

__all__ = ["CoxLoss", "DiceLoss", "UncertaintyWeightedLoss", "cox_loss_terms"]

TIES = ("breslow", "efron")
_MASKED_LOG_HAZARD = -1e30  # stands in for -inf where a maximum must ignore censored samples


@deprecated_positional("time", "event", "risk", "ties")
def cox_loss_terms(*, event: Any, time: Any, risk: Any, ties: str = "breslow") -> Any:
    """Per-sample terms of the Cox loss; their sum is the loss of Eq. 2.

    Samples are sorted by time once (O(N log N)); the log of each risk-set sum
    ``log sum_{j: T_j >= T_i} exp(h_j)`` is a reverse cumulative log-sum-exp (a log-depth
    scan of ``logaddexp``), so no N x N matrix is built and log-hazards up to 1e3 in magnitude
    stay finite. Samples with tied times share one risk set (the whole tie group).

    Args:
        event: tensor of shape ``(N,)``. 1 for an observed event, 0 for censoring.
        time: tensor of shape ``(N,)``. Time to event or censoring (days).
        risk: tensor of shape ``(N,)``. Predicted log-hazard (higher means worse).
        ties: str. ``"breslow"`` or ``"efron"`` handling of tied event times.
            Defaults to ``"breslow"``.

    Returns:
        tensor of shape ``(N,)``, in the input order: ``-(h_i - log R_i) / n_events`` for an
        event ``i`` (``log R_i`` is the Breslow or Efron risk-set term), 0 for a censored
        sample. All zeros when the batch holds no event.

    Note:
        The arguments are keyword-only, in ``(event, time)`` order; the former positional
        form ``cox_loss_terms(time, event, risk)`` still works for one release, with a
        ``DeprecationWarning``.
    """
    order = ops.argsort(time)
    sorted_time = ops.take(time, order)
    sorted_event = ops.take(event, order)
    sorted_risk = ops.take(risk, order)
    # position of the first sample of each sample's tie group, in sorted order
    group_start = ops.searchsorted(sorted_time, sorted_time, side="left")
    log_suffix_sum = _reverse_cumulative_logsumexp(sorted_risk)
    log_risk_set = ops.take(log_suffix_sum, group_start)
    if ties == "efron":
        log_risk_set = _efron_log_risk_set(sorted_event, sorted_risk, group_start, log_risk_set)
    n_events = ops.maximum(ops.sum(sorted_event), 1.0)
    sorted_terms = -sorted_event * (sorted_risk - log_risk_set) / n_events
    return ops.take(sorted_terms, ops.argsort(order))


def _reverse_cumulative_logsumexp(values: Any) -> Any:
    """``out[k] = log sum_{m >= k} exp(values[m])`` for a 1D tensor, stable for any magnitude.

    A Hillis-Steele scan: ``ceil(log2 N)`` steps of ``x[k] = logaddexp(x[k], x[k + 2^j])``
    (O(N log N) work, pairwise-summation accuracy). Unlike ``keras.ops.associative_scan``,
    whose TensorFlow version nests ``tf.cond`` and makes gradient graphs blow up with N, it
    is a fixed sequence of element-wise ops. With an unknown N (a traced batch dimension) it
    runs 24 steps, enough for batches of up to 2^24 samples.
    """
    n_static = values.shape[0]
    n_steps = max(1, math.ceil(math.log2(n_static))) if n_static else 24
    n_samples = ops.shape(values)[0]
    result = values
    for step in range(n_steps):
        shift = 2**step
        # result[k + shift], or a stand-in for -inf past the end
        fill_size = min(shift, n_static) if n_static else ops.minimum(shift, n_samples)
        filler = ops.full((fill_size,), _MASKED_LOG_HAZARD, dtype=values.dtype)
        shifted = ops.concatenate([result[shift:], filler], axis=0)
        result = ops.logaddexp(result, shifted)
    return result


def _efron_log_risk_set(event: Any, risk: Any, group_start: Any, log_risk_set: Any) -> Any:
    """Efron's risk-set term for events sorted by time.

    For the ``l``-th of ``d`` events tied at one time (``l = 0 .. d-1``) the term is
    ``log(R - (l / d) D) = log R + log1p(-(l / d) exp(log D - log R))``, with ``R`` the
    risk-set sum and ``D`` the sum of ``exp(h)`` over the tied events.
    """
    n_samples = ops.shape(risk)[0]
    is_event = event > 0
    # number of events in each tie group, and rank l of each event inside its group
    events_in_group = ops.take(
        ops.segment_sum(event, group_start, num_segments=n_samples), group_start
    )
    events_before = ops.cumsum(event) - event
    rank_in_group = events_before - ops.take(events_before, group_start)
    # log D: log-sum-exp over the tied events of each group (censored samples masked out)
    masked_risk = ops.where(is_event, risk, ops.full_like(risk, _MASKED_LOG_HAZARD))
    group_max = ops.take(
        ops.segment_max(masked_risk, group_start, num_segments=n_samples), group_start
    )
    shifted = ops.where(is_event, risk - group_max, ops.zeros_like(risk))
    scaled = ops.where(is_event, ops.exp(shifted), ops.zeros_like(risk))
    group_sum = ops.take(ops.segment_sum(scaled, group_start, num_segments=n_samples), group_start)
    safe_sum = ops.where(events_in_group > 0, group_sum, ops.ones_like(group_sum))
    log_tied = group_max + ops.log(safe_sum)
    fraction = rank_in_group / ops.maximum(events_in_group, 1.0)
    ratio = ops.exp(ops.minimum(log_tied - log_risk_set, 0.0))
    return log_risk_set + ops.log1p(-fraction * ratio)


@keras.saving.register_keras_serializable(package="hnprog")
class CoxLoss(keras.losses.Loss):
    """Negative Cox log partial likelihood, averaged over the events of the batch (Eq. 2).

    ``L = -(1 / N_events) * sum_{i: E_i = 1} (h_i - log sum_{j: T_j >= T_i} exp(h_j))``,
    with Breslow's (default) or Efron's handling of tied event times. It runs in O(N log N)
    by sorting, stays finite for log-hazards up to 1e3 in magnitude, and is 0 with zero
    gradients (never NaN) for a batch without an event. It computes in float32 unless
    ``dtype="float64"`` is given, also under mixed precision.

    The loss is returned as per-sample terms (0 for censored samples) summed by the default
    ``reduction="sum"``, so ``sample_weight`` multiplies each event's term.

    Args:
        ties: str. ``"breslow"`` or ``"efron"``. Defaults to ``"breslow"``.
        name: str. Name of the loss. Defaults to ``"cox_loss"``.
        reduction: str. Keras reduction of the per-sample terms; keep ``"sum"`` for Eq. 2.
            Defaults to ``"sum"``.
        dtype: str, optional. Dtype of the computation. Defaults to None (``"float32"``,
            Keras' ``floatx``).

    Call arguments:
        y_true: tensor of shape ``(N, 2)`` holding ``(time, event)`` per sample: time in
            days, event 1 (observed) or 0 (censored). See
            :func:`hnprog.survival.survival_y_to_keras`.
        y_pred: tensor of shape ``(N, 1)`` or ``(N,)``. Log-hazard, higher means worse.

    Raises:
        InputError: if ``ties`` is unknown, or ``y_true`` does not have 2 columns.

    Example:
        >>> import numpy as np
        >>> y_true = np.array([[100.0, 1.0], [200.0, 0.0], [300.0, 1.0]], "float32")
        >>> y_pred = np.zeros((3, 1), "float32")
        >>> round(float(CoxLoss()(y_true, y_pred)), 4)  # (log 3 + log 1) / 2
        0.5493
    """

    def __init__(
        self,
        ties: str = "breslow",
        name: str = "cox_loss",
        reduction: str = "sum",
        dtype: str | None = None,
    ):
        if ties not in TIES:
            raise InputError(f"ties must be one of {TIES}. Received: ties={ties!r}")
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.ties = ties

    def call(self, y_true: Any, y_pred: Any) -> Any:
        if y_true.shape[-1] is not None and (len(y_true.shape) != 2 or y_true.shape[-1] != 2):
            raise InputError(
                "CoxLoss expects y_true of shape (N, 2) holding (time, event). "
                f"Received: y_true.shape={tuple(y_true.shape)}"
            )
        dtype = self.dtype if self.dtype == "float64" else "float32"
        y_true = ops.cast(y_true, dtype)
        risk = ops.reshape(ops.cast(y_pred, dtype), (-1,))
        return cox_loss_terms(event=y_true[:, 1], time=y_true[:, 0], risk=risk, ties=self.ties)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"ties": self.ties})
        return config


@keras.saving.register_keras_serializable(package="hnprog")
class DiceLoss(keras.losses.Loss):
    """Negative soft Dice coefficient of each sample, averaged over the batch (Eq. 1).

    ``L = -(2 * sum_k p_k y_k + s) / (sum_k p_k + sum_k y_k + s)`` over the voxels ``k`` of one
    sample, then averaged over the batch. As in the paper, it runs from -1 (perfect overlap)
    to 0. The smoothing term ``s`` (in voxels) keeps the value defined for an empty truth
    and an empty prediction (then ``L = -1``) and, for an empty truth, still pushes the
    prediction towards 0; it is negligible for a tumour of thousands of voxels.

    Args:
        smooth: float. Smoothing term ``s`` added to numerator and denominator, in voxels.
            Defaults to 1.0.
        name: str. Name of the loss. Defaults to ``"dice_loss"``.
        reduction: str. Keras reduction over the batch. Defaults to
            ``"sum_over_batch_size"`` (the mean).
        dtype: str, optional. Dtype of the computation. Defaults to None (``"float32"``).

    Call arguments:
        y_true: tensor of shape ``(N, D, H, W, 1)`` or ``(N, D, H, W)``. Binary GTVt mask.
        y_pred: tensor of shape ``(N, D, H, W, 1)``. Probabilities in [0, 1].

    Raises:
        InputError: if ``smooth`` is negative.

    Example:
        >>> import numpy as np
        >>> mask = np.zeros((1, 4, 4, 4, 1), "float32"); mask[0, :2] = 1.0
        >>> round(float(DiceLoss(smooth=0.0)(mask, mask)), 4)
        -1.0
    """

    def __init__(
        self,
        smooth: float = 1.0,
        name: str = "dice_loss",
        reduction: str = "sum_over_batch_size",
        dtype: str | None = None,
    ):
        if smooth < 0:
            raise InputError(f"smooth must not be negative. Received: smooth={smooth}")
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.smooth = float(smooth)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        dtype = self.dtype if self.dtype == "float64" else "float32"
        batch = ops.shape(y_pred)[0]
        truth = ops.reshape(ops.cast(y_true, dtype), (batch, -1))
        prob = ops.reshape(ops.cast(y_pred, dtype), (batch, -1))
        overlap = ops.sum(truth * prob, axis=1)
        total = ops.sum(truth, axis=1) + ops.sum(prob, axis=1)
        return -(2.0 * overlap + self.smooth) / (total + self.smooth)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"smooth": self.smooth})
        return config


class UncertaintyWeightedLoss(keras.losses.Loss):
    """A task loss weighted by its learnt log-variance: ``exp(-s) * (L + offset) + s``.

    The multi-task weighting of Kendall, Gal and Cipolla (CVPR 2018), with ``s`` one entry
    of an :class:`hnprog.models.layers.UncertaintyWeighting` layer of the model (so ``s`` is
    trained by the model's optimizer and saved with it). ``L`` is the wrapped loss reduced
    over the batch, and ``offset`` makes it non-negative, which the weighting needs (with
    ``L < 0`` the minimum over ``s`` is at ``-inf``): 0 for :class:`CoxLoss` (already >= 0),
    1 for :class:`DiceLoss` (which runs from -1 to 0). For fixed ``L`` the total is minimal at
    ``s = log(L + offset)``; its gradient in ``s`` is ``1 - exp(-s) (L + offset)``.

    It cannot be rebuilt from its config (it holds a model variable):
    :func:`hnprog.training.fit.compile_model` builds it at each compile; the learnt ``s``
    lives in the model.

    Args:
        loss: keras.losses.Loss. The task loss.
        weighting: UncertaintyWeighting. The model's log-variance layer.
        task: str. The task's name in ``weighting`` (the output name).
        offset: float. Added to the task loss before weighting. Defaults to 0.0.

    Call arguments:
        y_true, y_pred, sample_weight: those of ``loss``.

    Example:
        >>> import numpy as np
        >>> from hnprog.models.layers import UncertaintyWeighting
        >>> layer = UncertaintyWeighting(("segmentation",)); layer.build(None)
        >>> wrapped = UncertaintyWeightedLoss(DiceLoss(), layer, "segmentation", offset=1.0)
        >>> mask = np.ones((1, 2, 2, 2, 1), "float32")
        >>> round(float(wrapped(mask, mask * 0.5)), 4)  # s = 0: 1 + Dice loss
        0.3333
    """

    def __init__(self, loss: keras.losses.Loss, weighting: Any, task: str, offset: float = 0.0):
        super().__init__(name=f"uncertainty_{loss.name}", reduction="none")
        self.loss = loss
        self.weighting = weighting
        self.index = weighting.index(task)
        self.offset = float(offset)

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        value = ops.cast(self.loss(y_true, y_pred, sample_weight=sample_weight), "float32")
        log_variance = self.weighting.log_variances[self.index]
        return ops.exp(-log_variance) * (value + self.offset) + log_variance

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return self(y_true, y_pred)

    def get_config(self) -> dict[str, Any]:
        """A description (the wrapped loss, task and offset) for a compiled model's config.

        It cannot be rebuilt from it (:meth:`from_config` raises): the log-variance is a model
        variable, and presets are saved without their compile config.
        """
        return {"name": self.name, "loss": keras.saving.serialize_keras_object(self.loss),
                "task": self.weighting.tasks[self.index], "offset": self.offset}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> UncertaintyWeightedLoss:
        raise InputError(
            "UncertaintyWeightedLoss cannot be rebuilt from a config: load the model with "
            "compile=False and compile it again (hnprog.training.fit.compile_model)"
        )
