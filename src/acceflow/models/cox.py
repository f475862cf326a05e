"""Penalised Cox proportional hazards models (lifelines) as scikit-learn estimators.

Conventions (time in days, event 1 = observed, risk oriented higher = worse) are those of
:mod:`acceflow.metrics.survival`.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted, validate_data

from acceflow.metrics.survival import _EVENT_COL, _TIME_COL, check_survival, harrell_c

__all__ = ["fit_cox", "survival_y", "PenalizedCox"]


def _check_penalty(penalizer, l1_ratio):
    if not (isinstance(penalizer, numbers.Real) and math.isfinite(penalizer) and penalizer >= 0):
        raise ValueError(f"penalizer must be a finite number >= 0; got {penalizer!r}")
    if not (isinstance(l1_ratio, numbers.Real) and 0 <= l1_ratio <= 1):
        raise ValueError(f"l1_ratio must be in [0, 1] (0 = ridge, 1 = lasso); got {l1_ratio!r}")


def fit_cox(X, time, event, penalizer=0.1, l1_ratio=0.0):
    """Fit a (penalised) Cox proportional hazards model with lifelines.

    lifelines maximises the Efron partial likelihood with an elastic-net penalty,
    ``-loglik(beta) / n + penalizer * (l1_ratio * |beta|_1 + (1 - l1_ratio) / 2 * |beta|_2^2)``,
    where ``beta`` are the coefficients of covariates it standardises internally (mean 0, SD 1)
    and ``|.|_1`` is a smooth approximation (lasso coefficients shrink towards, but never exactly
    to, 0). The baseline hazard is Breslow's. Nothing is standardised here beyond that: X should
    already be preprocessed (imputed, scaled) by the caller's pipeline, fitted on training data
    only, so that the reported coefficients are per SD of the training data and external cohorts
    go through the same frozen transformation.

    Parameters
    ----------
    X : pandas.DataFrame, shape (n, p)
        Numeric, finite covariates, one row per case; column names become coefficient names.
    time : array-like, shape (n,)
        Follow-up times in days (> 0).
    event : array-like, shape (n,)
        1 = event observed, 0 = censored.
    penalizer : float
        Penalty strength (>= 0; 0 = unpenalised maximum partial likelihood).
    l1_ratio : float
        Elastic-net mixing in [0, 1]: 0 = ridge, 1 = lasso.

    Returns
    -------
    lifelines.CoxPHFitter
        The fitted model (``params_`` = log hazard ratios per unit of each column of X).

    Raises
    ------
    ValueError
        If X is not a DataFrame, has non-numeric, non-finite or constant columns, reserved column
        names, a row count different from ``time``; or the survival data or penalty are invalid.

    References
    ----------
    Cox DR. Regression models and life-tables. J R Stat Soc B 1972;34(2):187-220.
    Efron B. The efficiency of Cox's likelihood function for censored data. J Am Stat Assoc
    1977;72(359):557-565.
    Simon N, Friedman J, Hastie T, Tibshirani R. Regularization paths for Cox's proportional
    hazards model via coordinate descent. J Stat Softw 2011;39(5):1-13.

    Examples
    --------
    >>> from lifelines.datasets import load_rossi
    >>> rossi = load_rossi()
    >>> cph = fit_cox(rossi[["age", "prio"]], rossi["week"], rossi["arrest"], penalizer=0.01)
    >>> sorted(cph.params_.index)
    ['age', 'prio']
    """
    if not isinstance(X, pd.DataFrame):
        raise ValueError(f"X must be a pandas DataFrame of covariates (one row per case); got {type(X).__name__}")
    t, e = check_survival(time, event)
    _check_penalty(penalizer, l1_ratio)
    if X.shape[0] != t.size:
        raise ValueError(f"X must have one row per case ({t.size}); got {X.shape[0]} rows")
    if X.shape[1] == 0:
        raise ValueError("X must have at least one covariate column; got none")
    reserved = {_TIME_COL, _EVENT_COL} & {str(c) for c in X.columns}
    if reserved:
        raise ValueError(f"X must not contain the reserved column names {sorted(reserved)}")
    non_numeric = [str(c) for c in X.columns if X[c].dtype.kind not in "biuf"]
    if non_numeric:
        raise ValueError(f"X must be numeric (encode categories first); non-numeric columns: {non_numeric}")
    values = X.to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        i, j = (int(k[0]) for k in np.nonzero(bad))
        raise ValueError(
            f"X must be finite (impute missing values first); case index {i} has "
            f"{values[i, j]} in column {X.columns[j]!r}"
        )
    constant = [str(c) for c, s in zip(X.columns, values.std(axis=0)) if s == 0]
    if constant:
        raise ValueError(f"X has constant columns (no information, drop them first): {constant}")
    df = pd.DataFrame(values, columns=[str(c) for c in X.columns])
    df[_TIME_COL] = t
    df[_EVENT_COL] = e
    cph = CoxPHFitter(penalizer=float(penalizer), l1_ratio=float(l1_ratio))
    cph.fit(df, duration_col=_TIME_COL, event_col=_EVENT_COL)
    return cph


def survival_y(time, event):
    """Pack survival outcomes into a structured array for scikit-learn (``y`` of :class:`PenalizedCox`).

    Parameters
    ----------
    time : array-like, shape (n,)
        Follow-up times in days (> 0).
    event : array-like, shape (n,)
        1 = event observed, 0 = censored.

    Returns
    -------
    numpy.ndarray, shape (n,)
        Structured array with fields ``event`` (bool) and ``time`` (float, days), the layout of
        scikit-survival's ``Surv.from_arrays``; it can be indexed and split like any ``y``.

    Raises
    ------
    ValueError
        If the survival data are invalid (see :func:`check_survival`).

    References
    ----------
    Pölsterl S. scikit-survival: a library for time-to-event analysis built on top of
    scikit-learn. J Mach Learn Res 2020;21(212):1-6.

    Examples
    --------
    >>> y = survival_y([100, 200], [1, 0])
    >>> y["time"].tolist(), y["event"].tolist()
    ([100.0, 200.0], [True, False])
    """
    t, e = check_survival(time, event)
    y = np.empty(t.size, dtype=[("event", bool), ("time", float)])
    y["event"] = e.astype(bool)
    y["time"] = t
    return y


def _split_y(y):
    """(time, event) from a structured array, a DataFrame or an (n, 2) array of (time, event)."""
    if isinstance(y, pd.DataFrame):
        lower = {str(c).lower(): c for c in y.columns}
        if "time" in lower and "event" in lower:
            return check_survival(y[lower["time"]].to_numpy(), y[lower["event"]].to_numpy())
        y = y.to_numpy()
    y = np.asarray(y)
    names = y.dtype.names
    if names is not None:
        lower = {n.lower(): n for n in names}
        if "time" in lower and "event" in lower:
            return check_survival(y[lower["time"]], y[lower["event"]])
        bools = [n for n in names if y.dtype[n].kind == "b"]
        if len(names) == 2 and len(bools) == 1:
            other = names[1] if names[0] == bools[0] else names[0]
            return check_survival(y[other], y[bools[0]])
        raise ValueError(
            f"structured y must have fields 'time' and 'event', or one bool (event) and one "
            f"numeric (time) field; got fields {list(names)}"
        )
    if y.ndim == 2 and y.shape[1] == 2:
        return check_survival(y[:, 0], y[:, 1])
    raise ValueError(
        "y must be a structured array with fields (event, time) (see survival_y) or an (n, 2) "
        f"array with columns (time in days, event 0/1); got shape {y.shape}"
    )


class PenalizedCox(BaseEstimator):
    """Penalised Cox model as a scikit-learn estimator (last step of a Pipeline).

    Wraps :func:`fit_cox` (lifelines ``CoxPHFitter``, Efron ties, Breslow baseline). Put the
    preprocessing (imputer, scaler, feature selection) before it in a ``Pipeline`` so that it is
    refitted inside every cross-validation fold.

    Parameters
    ----------
    penalizer : float
        Penalty strength (>= 0), see :func:`fit_cox`.
    l1_ratio : float
        Elastic-net mixing in [0, 1]: 0 = ridge, 1 = lasso.

    Attributes
    ----------
    mean_ : numpy.ndarray, shape (p,)
        Training means of the input columns (the centre of the linear predictor, as lifelines').
    coef_ : numpy.ndarray, shape (p,)
        Log hazard ratios per unit of each input column.
    feature_columns_ : list of str
        Column names used (``feature_names_in_`` when X was a DataFrame, else ``x0``, ``x1``, ...).
    baseline_time_ : numpy.ndarray, shape (K,)
        Distinct training follow-up times (days) at which the baseline cumulative hazard is given.
    baseline_cumhaz_ : numpy.ndarray, shape (K,)
        Breslow baseline cumulative hazard at ``baseline_time_`` (for the mean training covariates).
    max_time_ : float
        Longest training follow-up (days): survival is not predicted beyond it.

    Raises
    ------
    ValueError
        From ``fit`` / ``predict*`` on invalid ``X``, ``y``, ``t`` or penalty.

    References
    ----------
    Cox DR. J R Stat Soc B 1972;34(2):187-220.
    Breslow NE. Covariance analysis of censored survival data. Biometrics 1974;30(1):89-99.
    Simon N, Friedman J, Hastie T, Tibshirani R. J Stat Softw 2011;39(5):1-13.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from lifelines.datasets import load_rossi
    >>> rossi = load_rossi()
    >>> X = rossi.drop(columns=["week", "arrest"])
    >>> model = make_pipeline(StandardScaler(), PenalizedCox(penalizer=0.01))
    >>> model = model.fit(X, survival_y(rossi["week"], rossi["arrest"]))
    >>> model.predict(X).shape, model[-1].predict_risk_at(model[:-1].transform(X), 52).shape
    ((432,), (432,))
    """

    def __init__(self, penalizer=0.1, l1_ratio=0.0):
        self.penalizer = penalizer
        self.l1_ratio = l1_ratio

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags

    def fit(self, X, y):
        """Fit the model.

        Parameters
        ----------
        X : array-like or DataFrame, shape (n, p)
            Numeric, finite, preprocessed covariates.
        y : structured array, DataFrame or array, shape (n,) or (n, 2)
            Survival outcome: a structured array with fields ``event``/``time`` (see
            :func:`survival_y`; scikit-survival's layout also works), a DataFrame with columns
            ``time`` and ``event``, or an (n, 2) array with columns (time in days, event 0/1).

        Returns
        -------
        self : PenalizedCox
        """
        X = validate_data(self, X, dtype=float)
        time, event = _split_y(y)
        if hasattr(self, "feature_names_in_"):
            columns = [str(c) for c in self.feature_names_in_]
        else:
            columns = [f"x{i}" for i in range(X.shape[1])]
        cox = fit_cox(pd.DataFrame(X, columns=columns), time, event, self.penalizer, self.l1_ratio)
        self.feature_columns_ = columns
        self.coef_ = cox.params_.reindex(columns).to_numpy(dtype=float)
        # lifelines' predict_log_partial_hazard centres on the training means: keep them (plain
        # arrays, so that the model saves in the skops format without the lifelines object)
        self.mean_ = cox._norm_mean.reindex(columns).to_numpy(dtype=float)
        baseline = cox.baseline_cumulative_hazard_
        self.baseline_time_ = baseline.index.to_numpy(dtype=float)
        self.baseline_cumhaz_ = baseline.iloc[:, 0].to_numpy(dtype=float)
        self.max_time_ = float(time.max())
        return self

    def predict(self, X):
        """Linear predictor (risk score; higher = worse prognosis).

        Parameters
        ----------
        X : array-like or DataFrame, shape (n, p)
            Covariates, same columns and preprocessing as in ``fit``.

        Returns
        -------
        numpy.ndarray of float, shape (n,)
            ``(x - mean_train) @ coef_``: the log partial hazard relative to the mean training
            covariates (lifelines' ``predict_log_partial_hazard``). Unitless (log hazard ratio).
        """
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, dtype=float, reset=False)
        # as lifelines' predict_log_partial_hazard: dot(normalize(X, mean, 1), params)
        # (column-major, as the DataFrame lifelines reads: the same summation order, the same bits)
        return np.dot((np.asfortranarray(X) - self.mean_) / 1, self.coef_)

    def predict_survival(self, X, t):
        """Predicted survival probability S(t | x) = exp(-H0(t) exp(lp)).

        H0 is the Breslow baseline cumulative hazard evaluated as a step function (its value at the
        last training time <= t). lifelines' ``predict_survival_function`` interpolates H0
        linearly between those times instead; both agree at the training times.

        Parameters
        ----------
        X : array-like or DataFrame, shape (n, p)
            Covariates, preprocessed as in ``fit``.
        t : float or array-like, shape (k,)
            Horizon(s) in days, 0 < t <= longest training follow-up (``max_time_``).

        Returns
        -------
        numpy.ndarray of float, shape (n,) for a scalar ``t``, else (n, k)
            Survival probabilities in [0, 1].

        Raises
        ------
        ValueError
            If a horizon is not positive or lies beyond the training follow-up.
        """
        lp = self.predict(X)
        times = np.asarray(t, dtype=float)
        scalar = times.ndim == 0
        times = np.atleast_1d(times)
        if times.ndim != 1 or times.size == 0:
            raise ValueError(f"t must be a number or a 1-D array of days; got shape {times.shape}")
        for hz in times:
            if not (np.isfinite(hz) and hz > 0):
                raise ValueError(f"t must be positive finite days; got {hz:g}")
            if hz > self.max_time_:
                raise ValueError(
                    f"t = {hz:g} days lies beyond the longest training follow-up "
                    f"({self.max_time_:g} days); the baseline hazard is not estimated there"
                )
        idx = np.searchsorted(self.baseline_time_, times, side="right") - 1
        h0 = np.where(idx >= 0, self.baseline_cumhaz_[np.clip(idx, 0, None)], 0.0)
        surv = np.exp(-np.exp(lp)[:, None] * h0[None, :])
        return surv[:, 0] if scalar else surv

    def predict_risk_at(self, X, t):
        """Predicted absolute risk by t days, 1 - S(t | x).

        Parameters
        ----------
        X : array-like or DataFrame, shape (n, p)
            Covariates, preprocessed as in ``fit``.
        t : float or array-like, shape (k,)
            Horizon(s) in days (see :meth:`predict_survival`).

        Returns
        -------
        numpy.ndarray of float, shape (n,) for a scalar ``t``, else (n, k)
            Event probabilities in [0, 1].
        """
        return 1.0 - self.predict_survival(X, t)

    def score(self, X, y):
        """Harrell's C of :meth:`predict` (used by ``GridSearchCV`` when no scoring is given).

        Parameters
        ----------
        X : array-like or DataFrame, shape (n, p)
        y : structured array, DataFrame or (n, 2) array (see :meth:`fit`)

        Returns
        -------
        float
            Harrell's C (see :func:`harrell_c`).
        """
        time, event = _split_y(y)
        return harrell_c(time, event, self.predict(X))


