"""The standard radiomics survival model of the paper, as a scikit-survival-style estimator.

Andrearczyk et al. (2021) compare the deep models with a handcrafted pipeline: standardise the
274 features, rank them by univariate |C-index - 0.5| on the validation data, keep the top 20,
drop features correlated above a threshold t in {0.6, 0.65, 0.7, 0.75, 0.8} (t chosen on the
validation data), and fit a Cox proportional-hazards model.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from hnprog.errors import InputError
from hnprog.metrics import concordance_index
from hnprog.radiomics.cohort import check_finite_features
from hnprog.splits import holdout_split
from hnprog.survival import check_survival_y, make_survival_y

__all__ = ["RadiomicsCoxPipeline"]

PAPER_THRESHOLDS = (0.6, 0.65, 0.7, 0.75, 0.8)
# A coefficient above this (per standard deviation of a feature, so a hazard ratio of e^10) means
# the partial likelihood has no finite maximum (separation), not an estimate.
_DIVERGED_COEF = 10.0


class RadiomicsCoxPipeline(BaseEstimator):
    """Feature selection and Cox model of the paper's standard radiomics baseline.

    ``fit`` runs four steps:

    1. standardise every feature with the training mean and standard deviation;
    2. rank the features by the distance of their univariate C-index from 0.5,
       ``|C-index - 0.5|``, on the validation data, and keep the top ``n_features``;
    3. for each threshold t in ``thresholds``, walk down the ranking and keep a feature only if
       its absolute Pearson correlation (training data) with every feature kept so far is at
       most t; fit a Cox model on the kept features and score it on the validation data;
    4. keep the threshold with the best validation C-index (the lowest t on ties) and its Cox
       model, fitted on the training data.

    Validation data is passed as ``fit(X, y, X_val=..., y_val=...)``. Without it, ``fit``
    holds out ``validation_fraction`` of ``X`` (stratified by event, seeded with
    ``random_state``) and fits on the rest; with ``validation_fraction=None`` the training data
    doubles as validation data (optimistic; for quick looks only).

    The Cox model is scikit-survival's ``CoxPHSurvivalAnalysis`` with ridge penalty ``alpha``
    (0 = the plain partial likelihood). When that fit diverges (the likelihood has no finite
    maximum, which happens with few events and separable features: a convergence or numerical
    warning, a non-finite step, or a coefficient above 10 per standard deviation), it is
    refitted with each of ``fallback_alphas`` in turn; the penalty used is ``alpha_``.

    Args:
        n_features: int. Features kept after the univariate ranking. Defaults to 20.
        thresholds: sequence of float. Correlation thresholds tried. Defaults to
            ``(0.6, 0.65, 0.7, 0.75, 0.8)``.
        alpha: float. Ridge penalty of the Cox fit (scikit-survival's ``alpha``). Defaults to 0.
        fallback_alphas: sequence of float. Penalties tried in order when a fit diverges.
            Defaults to ``(0.01, 0.1, 1.0, 10.0)``.
        ties: str. ``"efron"`` or ``"breslow"`` handling of tied event times. Defaults to
            ``"efron"`` (as lifelines).
        validation_fraction: float or None. Held-out fraction when ``X_val`` is not given.
            Defaults to 0.2.
        drop_constant: bool. Ignore features that are constant in the training data instead
            of raising. Defaults to False.
        random_state: int. Seed of the internal validation split. Defaults to 0.
        alphas: sequence of float, optional. Ridge penalties to choose from on the
            validation data, with the threshold (the clinical Cox model uses this); each
            still falls back to larger penalties when its fit diverges. Defaults to None
            (``alpha`` only, the paper's baseline).

    Attributes:
        feature_names_in_: numpy.ndarray of str. Feature names seen in ``fit``.
        mean_: numpy.ndarray. Training mean of each feature.
        scale_: numpy.ndarray. Training standard deviation of each feature.
        univariate_cindex_: pandas.Series. Validation C-index of each feature, ranked by
            ``|C-index - 0.5|``.
        validation_scores_: dict. Validation C-index of the Cox model for each threshold.
        threshold_: float. The chosen correlation threshold.
        selected_features_: list of str. Features of the final Cox model.
        coef_: numpy.ndarray. Cox coefficients (log-hazard ratio per standard deviation).
        alpha_: float. The ridge penalty of the final fit.
        validation_cindex_: float. Validation C-index of the final model.

    Example:
        >>> model = RadiomicsCoxPipeline(n_features=20)
        >>> model.fit(X_train, y_train, X_val=X_val, y_val=y_val)  # doctest: +SKIP
        >>> risk = model.predict(X_test)  # log-hazard, higher = worse  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        n_features: int = 20,
        thresholds: Sequence[float] = PAPER_THRESHOLDS,
        alpha: float = 0.0,
        fallback_alphas: Sequence[float] = (0.01, 0.1, 1.0, 10.0),
        ties: str = "efron",
        validation_fraction: float | None = 0.2,
        drop_constant: bool = False,
        random_state: int = 0,
        alphas: Sequence[float] | None = None,
    ):
        self.n_features = n_features
        self.thresholds = thresholds
        self.alpha = alpha
        self.fallback_alphas = fallback_alphas
        self.ties = ties
        self.validation_fraction = validation_fraction
        self.drop_constant = drop_constant
        self.random_state = random_state
        self.alphas = alphas

    def fit(
        self,
        X: pd.DataFrame | np.ndarray,
        y: np.ndarray,
        *,
        X_val: pd.DataFrame | np.ndarray | None = None,
        y_val: np.ndarray | None = None,
    ) -> RadiomicsCoxPipeline:
        """Select features and fit the Cox model.

        Args:
            X: pandas.DataFrame or numpy.ndarray, shape ``(n_patients, n_features)``. Features
                (column names are kept from a DataFrame).
            y: structured array, shape ``(n_patients,)``, fields ``event`` (bool) and ``time``
                (days), as made by :func:`hnprog.make_survival_y`.
            X_val: same as ``X``, optional. Validation features, same columns. Defaults to
                None (see ``validation_fraction``).
            y_val: structured array, optional. Validation outcomes. Defaults to None.

        Returns:
            self.

        Raises:
            InputError: on NaN or infinite features, constant features (unless
                ``drop_constant``), mismatched lengths or columns, invalid hyperparameters,
                or a training or validation set without any event.
        """
        self._check_hyperparameters()
        X = self._as_frame(X, "X", fitting=True)
        event, time = check_survival_y(y)
        _check_lengths(X, event, "X", "y")
        if (X_val is None) != (y_val is None):
            raise InputError("give both X_val and y_val, or neither")
        if X_val is not None:
            X_train, event_train, time_train = X, event, time
            X_val = self._as_frame(X_val, "X_val")
            event_val, time_val = check_survival_y(y_val)
            _check_lengths(X_val, event_val, "X_val", "y_val")
        elif self.validation_fraction is None:
            X_train, event_train, time_train = X, event, time
            X_val, event_val, time_val = X, event, time
        else:
            train, val = holdout_split(
                event, val_fraction=self.validation_fraction, seed=self.random_state
            )
            X_train, event_train, time_train = X.iloc[train], event[train], time[train]
            X_val, event_val, time_val = X.iloc[val], event[val], time[val]
        for name, ev in (("training", event_train), ("validation", event_val)):
            if not ev.any():
                raise InputError(
                    f"the {name} data holds no event ({len(ev)} patients, all censored); a Cox "
                    "model and a C-index need at least one"
                )

        # 1. standardise (training statistics)
        self.mean_ = X_train.mean(axis=0).to_numpy(copy=True)
        self.scale_ = X_train.std(axis=0, ddof=0).to_numpy(copy=True)  # pandas 3: read-only view
        constant = self.scale_ <= 1e-12 * np.maximum(np.abs(self.mean_), 1.0)
        self.constant_features_ = X_train.columns[constant].tolist()
        if self.constant_features_ and not self.drop_constant:
            raise InputError(
                f"{len(self.constant_features_)} features are constant in the training data "
                f"(e.g. {self.constant_features_[:5]}); remove them or use drop_constant=True "
                "(hnprog radiomics cv --drop-constant)"
            )
        self.scale_[constant] = 1.0
        usable = X_train.columns[~constant]
        z_train = self._standardise(X_train)[usable]
        z_val = self._standardise(X_val)[usable]

        # 2. univariate ranking on validation data
        cindex = {
            name: concordance_index(event=event_val, time=time_val, risk=z_val[name].to_numpy())
            for name in usable
        }
        univariate = pd.Series(cindex, name="c_index")
        if univariate.isna().all():
            raise InputError(
                "the validation data has no comparable pair (no event before another "
                "patient's follow-up ends); no C-index can rank the features"
            )
        order = (univariate - 0.5).abs().sort_values(ascending=False, kind="stable").index
        self.univariate_cindex_ = univariate[order]
        top = list(order[: self.n_features])
        correlation = np.abs(np.corrcoef(z_train[top].to_numpy(), rowvar=False))
        correlation = np.atleast_2d(correlation)

        # 3. correlation filter for each threshold, Cox fit, validation score
        self.validation_scores_: dict[float, float] = {}
        kept_by_threshold: dict[float, tuple[tuple[str, ...], float]] = {}
        fits: dict[tuple[tuple[str, ...], float], tuple[Any, float, float]] = {}
        penalties = [self.alpha] if self.alphas is None else [float(a) for a in self.alphas]
        for threshold in map(float, self.thresholds):
            names = _correlation_filter(top, correlation, threshold)
            best = None
            for penalty in penalties:  # the first of the best penalties on ties
                key = (names, penalty)
                if key not in fits:
                    cox, alpha = self._fit_cox(z_train[list(names)], event=event_train,
                                               time=time_train, alpha=penalty)
                    risk_val = cox.predict(z_val[list(names)].to_numpy())
                    score = concordance_index(event=event_val, time=time_val, risk=risk_val)
                    fits[key] = (cox, alpha, score)
                if best is None or fits[key][2] > fits[best][2]:
                    best = key
            kept_by_threshold[threshold] = best
            self.validation_scores_[threshold] = fits[best][2]

        # 4. best threshold on validation (the lowest t on ties)
        scores = self.validation_scores_
        self.threshold_ = max(scores, key=lambda t: (scores[t], -t))
        self.selected_features_ = list(kept_by_threshold[self.threshold_][0])
        self.cox_, self.alpha_, self.validation_cindex_ = fits[kept_by_threshold[self.threshold_]]
        self.coef_ = np.asarray(self.cox_.coef_, dtype=float)
        return self

    def predict(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Risk scores: the Cox log-hazard (linear predictor), higher = worse.

        Args:
            X: pandas.DataFrame or numpy.ndarray, shape ``(n_patients, n_features)``. The
                same columns as in ``fit`` (a DataFrame is matched by column name).

        Returns:
            numpy.ndarray of shape ``(n_patients,)``, float64.

        Raises:
            InputError: if the model is not fitted, or ``X`` misses columns or holds NaN.
        """
        if not hasattr(self, "coef_"):
            raise InputError("this RadiomicsCoxPipeline is not fitted yet; call fit(X, y) first")
        z = self._standardise(self._as_frame(X, "X"))
        return np.asarray(self.cox_.predict(z[self.selected_features_].to_numpy()), dtype=float)

    def score(self, X: pd.DataFrame | np.ndarray, y: np.ndarray) -> float:
        """Harrell's C-index of the predicted risk on ``(X, y)``."""
        event, time = check_survival_y(y)
        return concordance_index(event=event, time=time, risk=self.predict(X))

    # -----------------------------------------------------------------------------------------

    def _check_hyperparameters(self) -> None:
        if not isinstance(self.n_features, (int, np.integer)) or self.n_features < 1:
            raise InputError(
                f"n_features must be a positive integer. Received: n_features={self.n_features!r}"
            )
        if not len(self.thresholds) or not all(0 < t <= 1 for t in self.thresholds):
            raise InputError(
                f"thresholds must be values in (0, 1]. Received: thresholds={self.thresholds!r}"
            )
        if self.alpha < 0 or any(a < 0 for a in [*self.fallback_alphas, *(self.alphas or [])]):
            raise InputError(
                f"alpha and fallback_alphas must be >= 0. Received: alpha={self.alpha}, "
                f"fallback_alphas={self.fallback_alphas}"
            )
        if self.ties not in ("efron", "breslow"):
            raise InputError(f"ties must be 'efron' or 'breslow'. Received: ties={self.ties!r}")

    def _as_frame(self, X: Any, name: str, *, fitting: bool = False) -> pd.DataFrame:
        if isinstance(X, pd.DataFrame):
            frame = X
        else:
            array = np.asarray(X)
            if array.ndim != 2:
                raise InputError(
                    f"{name} must be 2D (patients x features). Received: shape={array.shape}"
                )
            columns = (
                [f"x{i}" for i in range(array.shape[1])]
                if fitting or not hasattr(self, "feature_names_in_")
                else list(self.feature_names_in_)
            )
            if len(columns) != array.shape[1]:
                raise InputError(
                    f"{name} has {array.shape[1]} features; the model was fitted on "
                    f"{len(columns)}. Received: shape={array.shape}"
                )
            frame = pd.DataFrame(array, columns=columns)
        try:
            frame = frame.astype(float)
        except (TypeError, ValueError):
            raise InputError(f"{name}: every feature must be numeric") from None
        if fitting:
            self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
            self.n_features_in_ = frame.shape[1]
        else:
            missing = [c for c in self.feature_names_in_ if c not in frame.columns]
            if missing:
                raise InputError(
                    f"{name} misses {len(missing)} features seen in fit, e.g. {missing[:5]}"
                )
            frame = frame[list(self.feature_names_in_)]
        check_finite_features(frame, where=name)
        if frame.shape[0] < 2:
            raise InputError(f"{name} needs at least 2 patients. Received: {frame.shape[0]}")
        return frame

    def _standardise(self, X: pd.DataFrame) -> pd.DataFrame:
        return (X - self.mean_) / self.scale_

    def _fit_cox(
        self, z: pd.DataFrame, *, event: np.ndarray, time: np.ndarray,
        alpha: float | None = None,
    ) -> tuple[Any, float]:
        """Fit the Cox model with penalty ``alpha`` (default ``self.alpha``), adding ridge
        penalty while the fit diverges."""
        from scipy.linalg import LinAlgError, LinAlgWarning
        from sklearn.exceptions import ConvergenceWarning
        from sksurv.linear_model import CoxPHSurvivalAnalysis

        y = make_survival_y(event=event, time=time)
        start = self.alpha if alpha is None else alpha
        alphas = [start, *[a for a in self.fallback_alphas if a > start]]
        for alpha in alphas:
            cox = CoxPHSurvivalAnalysis(alpha=alpha, ties=self.ties)
            with warnings.catch_warnings():
                warnings.simplefilter("error", ConvergenceWarning)
                warnings.simplefilter("error", LinAlgWarning)
                warnings.simplefilter("error", RuntimeWarning)
                try:
                    cox.fit(z.to_numpy(), y)
                except (ConvergenceWarning, LinAlgWarning, RuntimeWarning, LinAlgError, ValueError):
                    continue
            if np.all(np.isfinite(cox.coef_)) and np.max(np.abs(cox.coef_)) <= _DIVERGED_COEF:
                return cox, float(alpha)
        raise InputError(
            f"the Cox model did not converge on {len(event)} patients ({int(event.sum())} "
            f"events) with {z.shape[1]} features, even with ridge penalties {alphas}"
        )


def _correlation_filter(
    ranked: list[str], correlation: np.ndarray, threshold: float
) -> tuple[str, ...]:
    """Walk down ``ranked``; keep a feature if ``|corr|`` with every kept one is <= threshold."""
    kept: list[int] = []
    for i in range(len(ranked)):
        if all(correlation[i, j] <= threshold for j in kept):
            kept.append(i)
    return tuple(ranked[i] for i in kept)


def _check_lengths(X: pd.DataFrame, event: np.ndarray, x_name: str, y_name: str) -> None:
    if len(X) != len(event):
        raise InputError(
            f"{x_name} and {y_name} must have one row per patient. "
            f"Received: len({x_name})={len(X)}, len({y_name})={len(event)}"
        )
