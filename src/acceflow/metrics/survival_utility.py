"""Calibration and decision curves of survival models at a fixed horizon ``t`` (days).

Observed risks come from the Kaplan–Meier estimate, so censored cases count as at risk until
they leave (no naive exclusion of the censored).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, KaplanMeierFitter

from acceflow.metrics.survival import km_risk_at


def _km_risk(time, event, t) -> float:
    if len(time) == 0:
        return float("nan")
    km = KaplanMeierFitter().fit(time, event)
    return float(1.0 - km.survival_function_at_times(t).iloc[0])


def grouped_calibration_at(time, event, risk_t, t: float, n_groups: int = 5, alpha: float = 0.05) -> pd.DataFrame:
    """Predicted against Kaplan–Meier observed risk at ``t`` in groups of predicted risk.

    Parameters
    ----------
    time, event : array-like of shape (n,)
        Follow-up (days) and event indicator.
    risk_t : array-like of shape (n,)
        Predicted probability of the event by ``t``.
    t : float
        Horizon in days.
    n_groups : int
        Quantile groups of predicted risk.

    Returns
    -------
    pandas.DataFrame
        ``group, n, events, mean_predicted, observed, observed_ci_low, observed_ci_high``.

    References
    ----------
    Royston P, Altman DG (2013). External validation of a Cox prognostic model: principles and
    methods. BMC Med Res Methodol 13:33.
    """
    time, event, risk_t = (np.asarray(a, float) for a in (time, event, risk_t))
    groups = pd.qcut(risk_t, n_groups, labels=False, duplicates="drop")
    rows = []
    for g in np.unique(groups):
        sel = groups == g
        obs, lo, hi = km_risk_at(time[sel], event[sel].astype(int), t, alpha=alpha) if event[sel].any() else (0.0, 0.0, 0.0)
        rows.append({"group": int(g) + 1, "n": int(sel.sum()), "events": int(event[sel].sum()),
                     "mean_predicted": float(risk_t[sel].mean()), "observed": obs, "observed_ci_low": lo,
                     "observed_ci_high": hi})
    return pd.DataFrame(rows)


def _rcs_basis(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Restricted cubic spline basis (Harrell 2015, RMS section 2.4.5): x and k - 2 nonlinear terms."""
    k = len(knots)
    scale = (knots[-1] - knots[0]) ** 2
    cols = [x]
    for j in range(k - 2):
        term = (np.maximum(x - knots[j], 0) ** 3
                - np.maximum(x - knots[k - 2], 0) ** 3 * (knots[k - 1] - knots[j]) / (knots[k - 1] - knots[k - 2])
                + np.maximum(x - knots[k - 1], 0) ** 3 * (knots[k - 2] - knots[j]) / (knots[k - 1] - knots[k - 2]))
        cols.append(term / scale)
    return np.column_stack(cols)


def calibration_at(time, event, risk_t, lp, t: float) -> dict:
    """Calibration of predicted risks at ``t``: ICI/E50/E90/Emax, observed/expected, slope.

    Parameters
    ----------
    time, event : array-like of shape (n,)
        Follow-up (days) and event indicator.
    risk_t : array-like of shape (n,)
        Predicted probability of the event by ``t``.
    lp : array-like of shape (n,)
        The model's linear predictor (for the calibration slope).
    t : float
        Horizon in days.

    Returns
    -------
    dict
        ``horizon_days``; ``ici, e50, e90, emax``: absolute differences between predicted and
        smoothed observed risk at ``t``, where the observed risk of each case comes from a Cox
        model of the outcome on a restricted cubic spline (3 knots) of the complementary
        log-log of the predicted risk (Austin, Harrell & van Klaveren 2020, Stat Med 39:2714);
        ``observed_risk_km`` (Kaplan–Meier at ``t``), ``mean_predicted``,
        ``observed_expected_ratio``; ``calibration_slope`` (Cox regression of the outcome on the
        linear predictor; 1 is ideal, below 1 means over-fitted risks) with its 95% CI.
    """
    time, event, risk_t, lp = (np.asarray(a, float) for a in (time, event, risk_t, lp))
    p = np.clip(risk_t, 1e-8, 1 - 1e-8)
    cll = np.log(-np.log(1 - p))
    knots = np.quantile(cll, [0.1, 0.5, 0.9])
    out = {"horizon_days": float(t), "n": int(len(time)), "n_events": int(event.sum()),
           "mean_predicted": float(p.mean()), "observed_risk_km": _km_risk(time, event.astype(int), t)}
    out["observed_expected_ratio"] = out["observed_risk_km"] / out["mean_predicted"]
    try:
        basis = _rcs_basis(cll, knots) if len(np.unique(knots)) == 3 else cll[:, None]
        df = pd.DataFrame(basis, columns=[f"s{i}" for i in range(basis.shape[1])]).assign(T=time, E=event)
        cph = CoxPHFitter(penalizer=1e-6).fit(df, "T", "E")
        observed = 1 - cph.predict_survival_function(df, times=[t]).to_numpy()[0]
        diff = np.abs(p - observed)
        out.update(ici=float(diff.mean()), e50=float(np.median(diff)), e90=float(np.quantile(diff, 0.9)),
                   emax=float(diff.max()))
    except Exception as exc:  # noqa: BLE001 - a failed smoother leaves the other measures standing
        out.update(ici=np.nan, e50=np.nan, e90=np.nan, emax=np.nan, smoother_error=str(exc))
    slope = CoxPHFitter().fit(pd.DataFrame({"lp": lp, "T": time, "E": event}), "T", "E")
    s = slope.summary.loc["lp"]
    out.update(calibration_slope=float(s["coef"]), calibration_slope_ci_low=float(s["coef lower 95%"]),
               calibration_slope_ci_high=float(s["coef upper 95%"]))
    return out


def survival_decision_curve(time, event, risk_t, t: float, thresholds) -> pd.DataFrame:
    """Net benefit at horizon ``t`` with Kaplan–Meier estimates for censored data.

    NB(pt) = [1 − S(t | risk ≥ pt)]·P(risk ≥ pt) − S(t | risk ≥ pt)·P(risk ≥ pt)·pt/(1 − pt),
    and treat-all NB = [1 − S(t)] − S(t)·pt/(1 − pt), with S the Kaplan–Meier estimate
    (Vickers, Cronin, Elkin, Gonen 2008, BMC Med Inform Decis Mak 8:53).

    Parameters
    ----------
    time, event, risk_t : array-like of shape (n,)
    t : float
        Horizon in days.
    thresholds : array-like of shape (k,)
        Threshold probabilities in (0, 1).

    Returns
    -------
    pandas.DataFrame
        ``threshold, net_benefit_model, net_benefit_all, net_benefit_none, net_interventions_avoided_per_100``.
    """
    time, event, risk_t = (np.asarray(a, float) for a in (time, event, risk_t))
    thresholds = np.asarray(thresholds, float)
    if ((thresholds <= 0) | (thresholds >= 1)).any():
        raise ValueError("thresholds must lie in (0, 1)")
    odds = thresholds / (1 - thresholds)
    risk_all = _km_risk(time, event.astype(int), t)
    nb_all = risk_all - (1 - risk_all) * odds
    nb = np.empty_like(thresholds)
    for i, pt in enumerate(thresholds):
        treated = risk_t >= pt
        share = treated.mean()
        if share == 0:
            nb[i] = 0.0
            continue
        r = _km_risk(time[treated], event[treated].astype(int), t)
        nb[i] = r * share - (1 - r) * share * odds[i]
    return pd.DataFrame({"threshold": thresholds, "net_benefit_model": nb, "net_benefit_all": nb_all,
                         "net_benefit_none": 0.0, "net_interventions_avoided_per_100": (nb - nb_all) / odds * 100})
