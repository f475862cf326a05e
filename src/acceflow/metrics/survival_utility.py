"""Calibration and decision curves of survival models at a fixed horizon ``t`` (days).

Observed risks come from the Kaplan–Meier estimate, so censored cases count as at risk until
they leave (no naive exclusion of the censored).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.exceptions import ConvergenceError

from acceflow.metrics.calibration import PROB_CEIL, PROB_FLOOR
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
        ``group, n, events, mean_predicted, observed, observed_ci_low, observed_ci_high, note``.
        A group whose follow-up ends before ``t`` with a censored case has no Kaplan–Meier
        estimate at ``t``: its ``observed`` and CI are NaN and ``note`` says why (small external
        cohorts make such groups; the other groups are kept). A group whose last follow-up is an
        event has S = 0 from then on, so its observed risk at ``t`` is 1 (the estimate and CI at
        that last time).

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
        tg, eg = time[sel], event[sel].astype(int)
        last = tg.max()
        note = ""
        if last < t and not eg[tg == last].any():
            obs = lo = hi = float("nan")
            note = (f"follow-up ends at {last:g} days (censored), before the horizon {t:g}: Kaplan-Meier "
                    f"undefined there")
        elif not eg.any():
            obs, lo, hi = 0.0, 0.0, 0.0
        else:
            obs, lo, hi = km_risk_at(tg, eg, min(t, last), alpha=alpha)
        rows.append({"group": int(g) + 1, "n": int(sel.sum()), "events": int(eg.sum()),
                     "mean_predicted": float(risk_t[sel].mean()), "observed": obs, "observed_ci_low": lo,
                     "observed_ci_high": hi, "note": note})
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


def breslow_survival_at(cph: CoxPHFitter, X: pd.DataFrame, t: float) -> np.ndarray:
    """S(t | x) of a fitted lifelines Cox model with the Breslow baseline as a right-continuous step function.

    ``S(t | x) = exp(-H0(t) exp(lp(x)))`` with ``H0(t) = sum over event times t_i <= t of
    d_i / sum_{j at risk at t_i} exp(lp_j)``: the value at the last event time at or before ``t``, as
    R's ``survfit.coxph`` and :meth:`acceflow.models.cox.PenalizedCox.predict_survival` compute it.
    With untied event times this is R's default curve; with tied event times it is
    ``survfit(fit, ctype = 1)`` (R's default after an Efron fit, ``ctype = 2``, spreads the ties).
    lifelines' ``predict_survival_function(times=[t])`` interpolates H0 linearly between event
    times instead, which differs between them. lifelines centres the covariates on their means
    (``lp`` and ``H0`` both relative to the mean); the product ``H0(t) exp(lp)`` is the same as R's
    (centred on ``means``) or uncentred, since the Breslow H0 scales by ``exp(-c)`` when every
    ``lp`` shifts by ``c``.

    Parameters
    ----------
    cph : lifelines.CoxPHFitter
        A fitted model.
    X : pandas.DataFrame, shape (n, p)
        Covariates, the columns the model was fitted on.
    t : float
        Horizon, in the time unit of the fit (days here).

    Returns
    -------
    numpy.ndarray, shape (n,)
        Survival probabilities at ``t``.

    References
    ----------
    Breslow NE (1972). Discussion of Professor Cox's paper. J R Stat Soc B 34:216-217.
    Therneau TM, Grambsch PM (2000). Modeling Survival Data, section 10.2. Springer.
    """
    base = cph.baseline_cumulative_hazard_
    times, cumhaz = base.index.to_numpy(dtype=float), base.iloc[:, 0].to_numpy(dtype=float)
    i = int(np.searchsorted(times, float(t), side="right")) - 1
    h0 = cumhaz[i] if i >= 0 else 0.0
    lp = cph.predict_log_partial_hazard(X).to_numpy(dtype=float)
    return np.exp(-h0 * np.exp(lp))


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
        log-log of the predicted risk (Austin, Harrell & van Klaveren 2020, Stat Med 39:2714),
        read at ``t`` from the Breslow step-function baseline as R's ``survfit.coxph`` does
        (:func:`breslow_survival_at`); ``n_prob_at_bounds``: predicted risks of exactly 0 or 1;
        ``observed_risk_km`` (Kaplan–Meier at ``t``), ``mean_predicted``,
        ``observed_expected_ratio``; ``calibration_slope`` (Cox regression of the outcome on the
        linear predictor; 1 is ideal, below 1 means over-fitted risks) with its 95% CI.
    """
    time, event, risk_t, lp = (np.asarray(a, float) for a in (time, event, risk_t, lp))
    p = risk_t
    at_bounds = (p == 0.0) | (p == 1.0)
    # the complementary log-log of the risk itself; only a risk of exactly 0 or 1 (cloglog -inf / +inf)
    # is moved to the nearest representable probability, and counted
    cll = np.log(-np.log1p(-np.where(p == 0.0, PROB_FLOOR, np.where(p == 1.0, PROB_CEIL, p))))
    knots = np.quantile(cll, [0.1, 0.5, 0.9])
    out = {"horizon_days": float(t), "n": int(len(time)), "n_events": int(event.sum()),
           "n_prob_at_bounds": int(at_bounds.sum()),
           "mean_predicted": float(p.mean()), "observed_risk_km": _km_risk(time, event.astype(int), t)}
    out["observed_expected_ratio"] = out["observed_risk_km"] / out["mean_predicted"]
    try:
        basis = _rcs_basis(cll, knots) if len(np.unique(knots)) == 3 else cll[:, None]
        df = pd.DataFrame(basis, columns=[f"s{i}" for i in range(basis.shape[1])]).assign(T=time, E=event)
        try:  # unpenalised, as R's coxph; a whisper of ridge only if that fails to converge
            cph = CoxPHFitter().fit(df, "T", "E")
        except ConvergenceError:
            cph = CoxPHFitter(penalizer=1e-6).fit(df, "T", "E")
            out["smoother_note"] = "spline Cox fit needed a ridge penalty of 1e-6 to converge"
        observed = 1 - breslow_survival_at(cph, df, t)
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
