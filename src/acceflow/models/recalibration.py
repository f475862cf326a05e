"""Recalibration of a frozen model's probabilities on an external cohort, evaluated honestly.

Three updates (Steyerberg 2019, Clinical Prediction Models, ch. 20; Janssen et al. 2008, J Clin
Epidemiol 61:76): *intercept* (re-estimate calibration-in-the-large, slope fixed at 1), *logistic*
(intercept and slope: logistic recalibration), and *isotonic* (a monotone non-parametric map;
Zadrozny & Elkan 2002). Each is fitted inside cross-validation folds of the external cohort and
judged on the held-out cases, so the figures say what recalibration would achieve on new cases
of that site, not how well it fits the cases it was fitted on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import statsmodels.api as sm
from sklearn.isotonic import IsotonicRegression
from sklearn.model_selection import StratifiedKFold

from acceflow.metrics.calibration import calibration_summary

METHODS = ("intercept", "logistic", "isotonic")


def _logit(p):
    p = np.clip(p, 1e-8, 1 - 1e-8)
    return np.log(p / (1 - p))


def fit_recalibration(y, p, method: str):
    """Fit one recalibration map on (y, p); return a function new p -> recalibrated p.

    Raises
    ------
    ValueError
        On an unknown method, or for ``logistic`` when every prediction is the same (the slope
        is then not identifiable: the model gave one probability to every case).
    """
    y = np.asarray(y, float)
    lp = _logit(np.asarray(p, float))
    if method == "intercept":
        fit = sm.GLM(y, np.ones((len(y), 1)), family=sm.families.Binomial(), offset=lp).fit()
        a = float(fit.params[0])
        return lambda q: 1 / (1 + np.exp(-(a + _logit(q))))
    if method == "logistic":
        if np.ptp(lp) == 0:
            raise ValueError(f"logistic recalibration needs predictions that vary: all {len(lp)} predictions are "
                             f"{1 / (1 + np.exp(-lp[0])):.6g}, so no calibration slope can be fitted; the model gives "
                             "one probability to every case (use the intercept update, or check the model)")
        fit = sm.GLM(y, sm.add_constant(lp, has_constant="add"), family=sm.families.Binomial()).fit()
        a, b = (float(v) for v in fit.params)
        return lambda q: 1 / (1 + np.exp(-(a + b * _logit(q))))
    if method == "isotonic":
        iso = IsotonicRegression(y_min=1e-6, y_max=1 - 1e-6, out_of_bounds="clip").fit(p, y)
        return lambda q: iso.predict(q)
    raise ValueError(f"recalibration method '{method}' unknown; use one of {METHODS}")


def recalibrate_cv(y_true, prob, methods=METHODS, folds: int = 5, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cross-validated recalibration on one cohort.

    Parameters
    ----------
    y_true : array-like, shape (n,)
        Outcome 0/1 of the external cohort.
    prob : array-like, shape (n,)
        The frozen model's predicted probabilities.
    methods : sequence of str
        Subset of :data:`METHODS`.
    folds : int
        Stratified folds (reduced to the number of events when fewer).
    seed : int
        Seed of the fold assignment.

    Returns
    -------
    summary : pandas.DataFrame
        One row per method (``original`` first): ``method``, ``evaluation``, and the calibration
        measures of :func:`acceflow.metrics.calibration.calibration_summary` on the out-of-fold
        recalibrated probabilities.
    predictions : pandas.DataFrame
        ``original`` and ``recalibrated_<method>`` out-of-fold probabilities per case.
    """
    y = np.asarray(y_true, int)
    p = np.asarray(prob, float)
    k = int(max(2, min(folds, y.sum(), (1 - y).sum())))
    out = {"original": p}
    for method in methods:
        q = np.empty_like(p)
        for tr, te in StratifiedKFold(k, shuffle=True, random_state=seed).split(p, y):
            q[te] = fit_recalibration(y[tr], p[tr], method)(p[te])
        out[f"recalibrated_{method}"] = q
    rows = []
    for name, q in out.items():
        s = calibration_summary(y, q)
        rows.append({"method": name.replace("recalibrated_", ""),
                     "evaluation": "as predicted" if name == "original" else f"out-of-fold, {k}-fold CV within the cohort",
                     **s})
    return pd.DataFrame(rows), pd.DataFrame(out)
