"""Recalibration of a frozen model's probabilities on an external cohort, evaluated honestly.

Three updates (Steyerberg 2019, Clinical Prediction Models, ch. 20; Janssen et al. 2008, J Clin
Epidemiol 61:76): *intercept* (re-estimate calibration-in-the-large, slope fixed at 1), *logistic*
(intercept and slope: logistic recalibration), and *isotonic* (a monotone non-parametric map;
Zadrozny & Elkan 2002). Each is fitted inside cross-validation folds of the external cohort and
judged on the held-out cases, so the figures say what recalibration would achieve on new cases
of that site, not how well it fits the cases it was fitted on.

An isotonic map is a step function: it has no intercept or slope, and the calibration intercept and
slope of its probabilities (many tied at the bounds of the map) are not reported for it (NaN, with
``note`` saying why); what it has is reported instead: its number of steps and the range of the
probabilities it gives.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression
from sklearn.model_selection import StratifiedKFold

from acceflow.metrics.calibration import calibration_intercept_slope, calibration_summary, finite_logit

METHODS = ("intercept", "logistic", "isotonic")

#: calibration_summary keys that describe a logistic fit of the probabilities (not applicable to isotonic)
_LOGISTIC_KEYS = [f"calibration_{k}{s}" for k in ("intercept", "slope") for s in ("", "_ci_low", "_ci_high")]


def _logit(p):
    """The logit as R's ``qlogis`` (only exact 0 / 1 moved to the nearest float; see ``finite_logit``)."""
    return finite_logit(p)[0]


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
        # the calibration-in-the-large estimate, solved from its score equation (statsmodels' IRLS
        # diverges on extreme logits; see acceflow.metrics.calibration)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "calibration slope not estimable", RuntimeWarning)
            a = calibration_intercept_slope(y, np.asarray(p, float))["calibration_intercept"]
        return lambda q: expit(a + _logit(q))
    if method == "logistic":
        if np.ptp(lp) == 0:
            raise ValueError(f"logistic recalibration needs predictions that vary: all {len(lp)} predictions are "
                             f"{1 / (1 + np.exp(-lp[0])):.6g}, so no calibration slope can be fitted; the model gives "
                             "one probability to every case (use the intercept update, or check the model)")
        fit = sm.GLM(y, sm.add_constant(lp, has_constant="add"), family=sm.families.Binomial()).fit()
        a, b = (float(v) for v in fit.params)
        return lambda q: expit(a + b * _logit(q))
    if method == "isotonic":
        iso = IsotonicRegression(y_min=1e-6, y_max=1 - 1e-6, out_of_bounds="clip").fit(p, y)
        recalibrate = lambda q: iso.predict(q)  # noqa: E731
        recalibrate.n_steps = int(np.unique(iso.y_thresholds_).size)
        return recalibrate
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
        One row per method (``original`` first): ``method``, ``evaluation``, the calibration
        measures of :func:`acceflow.metrics.calibration.calibration_summary` on the out-of-fold
        recalibrated probabilities, ``recalibrated_low`` / ``recalibrated_high`` (their range),
        ``n_steps_min`` / ``n_steps_max`` (isotonic: fewest and most distinct levels of the
        per-fold step functions; NaN otherwise) and ``note``. For ``isotonic`` the calibration
        intercept and slope (and their CIs) are NaN: a step function has neither, and a logistic
        fit of its tied probabilities diverges.
    predictions : pandas.DataFrame
        ``original`` and ``recalibrated_<method>`` out-of-fold probabilities per case.
    """
    y = np.asarray(y_true, int)
    p = np.asarray(prob, float)
    k = int(max(2, min(folds, y.sum(), (1 - y).sum())))
    out, steps = {"original": p}, {}
    for method in methods:
        q = np.empty_like(p)
        for tr, te in StratifiedKFold(k, shuffle=True, random_state=seed).split(p, y):
            recalibrate = fit_recalibration(y[tr], p[tr], method)
            q[te] = recalibrate(p[te])
            if hasattr(recalibrate, "n_steps"):
                steps.setdefault(method, []).append(recalibrate.n_steps)
        out[f"recalibrated_{method}"] = q
    rows = []
    for name, q in out.items():
        method = name.replace("recalibrated_", "")
        with warnings.catch_warnings():
            if method == "isotonic":  # its intercept / slope are dropped below, with the reason
                warnings.filterwarnings("ignore", "calibration (intercept|slope) not estimable", RuntimeWarning)
            s = calibration_summary(y, q)
        note = s.get("calibration_note", "")
        if method == "isotonic":
            s.update(dict.fromkeys(_LOGISTIC_KEYS, float("nan")))
            note = ("calibration intercept and slope not applicable: an isotonic map is a step function "
                    f"({min(steps[method])}-{max(steps[method])} steps per fold), described by its steps and range")
        rows.append({"method": method,
                     "evaluation": "as predicted" if name == "original" else f"out-of-fold, {k}-fold CV within the cohort",
                     **s, "recalibrated_low": float(q.min()), "recalibrated_high": float(q.max()),
                     "n_steps_min": float(min(steps[method])) if method in steps else float("nan"),
                     "n_steps_max": float(max(steps[method])) if method in steps else float("nan"),
                     "note": note})
    table = pd.DataFrame(rows).drop(columns=["calibration_note"], errors="ignore")
    return table, pd.DataFrame(out)
