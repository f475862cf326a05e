"""Survival models (``outcome.type: survival``): penalised Cox regression, leakage-safe.

The model is a :class:`~sklearn.model_selection.GridSearchCV` over a Pipeline (median imputation,
constant-column removal, standardisation, optional correlation filter, penalised Cox regression
``acceflow.models.cox.PenalizedCox``) whose penalty is chosen by inner cross-validation on
the held-out partial log-likelihood (Verweij & van Houwelingen 1993), folds stratified by the
event indicator; the C-index is scale-free and would favour over-shrunk, uncalibrated risks. Internal validation refits the whole search
in every outer fold of a repeated event-stratified cross-validation, as for binary outcomes.
"""

from __future__ import annotations

import logging
from time import perf_counter

import numpy as np
import pandas as pd
from sklearn.feature_selection import VarianceThreshold
from sklearn.impute import SimpleImputer
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from acceflow.metrics.survival import (
    c_index_ci,
    check_survival,
    harrell_c,
    hazard_ratio_per_sd,
    km_by_group,
    logrank,
    risk_groups,
    time_dependent_auc,
)
from acceflow.models.cox import PenalizedCox, survival_y
from acceflow.models.pipeline import CorrelationFilter
from acceflow.study.card import ModelCard
from acceflow.study.settings import model_settings
from acceflow.study.training import cohort_design

log = logging.getLogger(__name__)


class EventStratifiedKFold(StratifiedKFold):
    """Stratified k-fold on the event indicator of a survival ``y`` (structured array)."""

    def split(self, X, y=None, groups=None):
        return super().split(X, np.asarray(y["event"], dtype=int), groups)


def partial_log_likelihood(time, event, lp) -> float:
    """Cox partial log-likelihood of a linear predictor on (held-out) cases, per event.

    sum over events i of [lp_i - log sum_{j: t_j >= t_i} exp(lp_j)] / number of events (Breslow
    handling of ties). On held-out folds this is the cross-validated partial likelihood used to
    tune penalised Cox models (Verweij & van Houwelingen 1993, Stat Med 12:2305); unlike the
    C-index it rewards a linear predictor on the right scale, which calibration needs.
    """
    time, event, lp = (np.asarray(a, float) for a in (time, event, lp))
    order = np.argsort(-time, kind="stable")
    t, e, l = time[order], event[order], lp[order]
    log_risk = np.logaddexp.accumulate(l)  # log sum of exp(lp) over cases with time >= t (descending)
    # ties: every case with the same time belongs to each other's risk set
    last = np.searchsorted(-t, -t, side="right") - 1
    log_risk = log_risk[last]
    n_events = max(e.sum(), 1.0)
    return float(((l - log_risk) * e).sum() / n_events)


def _cox_scorer(estimator, X, y) -> float:
    return partial_log_likelihood(y["time"], y["event"], estimator.predict(X))


def build_survival_search(penalizers=(0.01, 0.1, 1.0), l1_ratio: float = 0.5, inner_folds: int = 5, seed: int = 42,
                          correlation_threshold: float | None = None) -> GridSearchCV:
    """Penalised Cox regression with the penalty chosen by inner CV on the partial likelihood (unfitted).

    Parameters
    ----------
    penalizers : sequence of float
        Penalty strengths searched (lifelines' ``penalizer``).
    l1_ratio : float
        Elastic-net mixing (0 ridge, 1 lasso).
    inner_folds : int
        Folds of the inner, event-stratified cross-validation.
    seed : int
        Seed of the inner folds.
    correlation_threshold : float, optional
        Correlation filter threshold (None: no filter).

    Returns
    -------
    sklearn.model_selection.GridSearchCV
        ``fit(X, y)`` with ``y`` from :func:`acceflow.models.cox.survival_y`.
    """
    pipe = Pipeline([
        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
        ("drop_constant", VarianceThreshold(0.0)),
        ("scale", StandardScaler()),
        ("decorrelate", CorrelationFilter(correlation_threshold) if correlation_threshold else "passthrough"),
        ("classifier", PenalizedCox(l1_ratio=l1_ratio)),
    ])
    return GridSearchCV(pipe, {"classifier__penalizer": list(penalizers)}, refit=True, error_score="raise",
                        scoring=_cox_scorer, cv=EventStratifiedKFold(inner_folds, shuffle=True, random_state=seed))


def risk_at(model, X, t) -> np.ndarray:
    """Predicted probability of the event by ``t`` days, ``1 - S(t | x)``, of a fitted search, or of a
    frozen Cox model with its own ``predict_risk_at`` (the federated Cox model,
    :class:`acceflow.models.federated_cox.FederatedCox`)."""
    if not hasattr(model, "best_estimator_"):
        return model.predict_risk_at(X, t)
    pipe = model.best_estimator_
    return pipe[-1].predict_risk_at(pipe[:-1].transform(X), t)


def max_follow_up(model) -> float:
    """The longest training follow-up (days) of a fitted search or a frozen federated Cox model."""
    return float(model.best_estimator_[-1].max_time_ if hasattr(model, "best_estimator_") else model.max_time_)


def default_horizons(time, event) -> list[float]:
    """Horizons (days) for time-dependent metrics: quartiles of the event times, rounded to 30 days."""
    t = np.asarray(time, float)[np.asarray(event, int) == 1]
    return sorted({float(max(30.0, np.round(q / 30.0) * 30.0)) for q in np.quantile(t, [0.25, 0.5, 0.75])})


def train_survival(table: pd.DataFrame, config: dict, features: list[str], note: str):
    """Train the frozen Cox model on the training cohorts and validate it internally.

    Parameters
    ----------
    table : pandas.DataFrame
        Feature table with the config's time (days) and event columns.
    config : dict
        Validated configuration (``outcome.time``, ``outcome.event``, ``model``, ``validation``).
    features : list of str
        Input columns; ``note`` says how they were chosen.

    Returns
    -------
    model, card, predictions, folds
        Fitted search; model card; training cases ``case_id, time, event, risk, risk_at_horizon``
        (out-of-fold, averaged over repeats; ``risk`` is the Cox linear predictor); per-fold
        Harrell's C.

    Raises
    ------
    ValueError
        On non-positive times, events not 0/1, or no event.
    """
    o, m, v, seed = config["outcome"], model_settings(config), config["validation"], config["seed"]
    rows = table[table["cohort"].isin(config["cohorts"]["train"])].reset_index(drop=True)
    time, event = check_survival(rows[o["time"]], rows[o["event"]])
    y = survival_y(time, event)
    X = rows[features].apply(pd.to_numeric, errors="coerce")
    horizons = list(o.get("horizons") or default_horizons(time, event))
    horizon = (config.get("utility") or {}).get("horizon") or horizons[len(horizons) // 2]

    def make():
        return build_survival_search(m["cox_penalizers"], m["cox_l1_ratio"], m["inner_folds"], seed,
                                     m["correlation_threshold"])

    lp = np.zeros((v["cv_repeats"], len(y)))
    rk = np.zeros_like(lp)
    fold_rows = []
    start, total = perf_counter(), v["cv_repeats"] * v["cv_folds"]
    log.info("penalised Cox: %d training cases (%d events), %d features, %d repeats x %d outer folds, "
             "penalizers %s", len(y), int(event.sum()), len(features), v["cv_repeats"], v["cv_folds"],
             list(m["cox_penalizers"]))
    for r in range(v["cv_repeats"]):
        for k, (tr, te) in enumerate(EventStratifiedKFold(v["cv_folds"], shuffle=True, random_state=seed + r)
                                     .split(X, y)):
            fit = make().fit(X.iloc[tr], y[tr])
            lp[r, te] = fit.predict(X.iloc[te])
            rk[r, te] = risk_at(fit, X.iloc[te], min(horizon, fit.best_estimator_[-1].max_time_))
            fold_rows.append({"repeat": r + 1, "fold": k + 1, "n": len(te), "n_events": int(event[te].sum()),
                              "c_index": harrell_c(time[te], event[te], lp[r, te]) if event[te].any() else np.nan})
            log.info("repeat %d/%d, fold %d/%d (fit %d of %d): %d test cases, %d events, Harrell's C %.3f, "
                     "%.1f s elapsed", r + 1, v["cv_repeats"], k + 1, v["cv_folds"], len(fold_rows), total, len(te),
                     fold_rows[-1]["n_events"], fold_rows[-1]["c_index"], perf_counter() - start)
    folds = pd.DataFrame(fold_rows)
    model = make().fit(X, y)
    log.info("penalised Cox: final fit on all %d cases done (penalizer %s), %.1f s in all", len(y),
             model.best_params_["classifier__penalizer"], perf_counter() - start)
    coefs = dict(zip(features, [0.0] * len(features)))
    pipe = model.best_estimator_
    kept = np.asarray(features)[pipe.named_steps["drop_constant"].get_support()]
    if pipe.named_steps["decorrelate"] != "passthrough":
        kept = kept[pipe.named_steps["decorrelate"].get_support()]
    coefs.update({f: float(c) for f, c in zip(kept, pipe[-1].coef_)})
    card = {
        "model": "imaging", "role": "primary", "learner": "penalised_cox",
        "chosen": {"estimator": "PenalizedCox", "penalizer": float(model.best_params_["classifier__penalizer"]),
                   "l1_ratio": m["cox_l1_ratio"]},
        "hyperparameters": {"penalizer": float(model.best_params_["classifier__penalizer"]),
                            "penalizers_searched": list(m["cox_penalizers"]), "l1_ratio": m["cox_l1_ratio"],
                            "inner_folds": m["inner_folds"], "scoring": "cross-validated partial log-likelihood"},
        "pipeline": [f"{n}: {type(s).__name__ if s != 'passthrough' else 'none'}" for n, s in pipe.steps],
        "features": features, "feature_selection": note,
        "n_nonzero": int(sum(abs(c) > 1e-8 for c in coefs.values())),
        "coefficients": coefs, "intercept": None,
        "coefficient_scale": "log hazard ratio per standard deviation of the training cohort",
        "training_cohorts": list(config["cohorts"]["train"]), "external_cohorts": list(config["cohorts"]["external"]),
        "outcome": dict(o), "n_train": int(len(y)), "n_events_train": int(event.sum()), "seed": seed,
        "validation": "external" if config["cohorts"]["external"] else "internal",
        "internal_validation": (f"repeated event-stratified {v['cv_folds']}-fold cross-validation, "
                                f"{v['cv_repeats']} repeats, of the whole pipeline (penalty chosen by inner "
                                f"{m['inner_folds']}-fold CV on the partial likelihood); out-of-fold risks averaged over repeats"),
        "cv_c_index_mean": float(folds["c_index"].mean()),
        "apparent_c_index": float(harrell_c(time, event, model.predict(X))),
        "horizons_days": horizons, "horizon_days": float(horizon),
        "risk_sd_train": float(np.std(model.predict(X), ddof=1)),
        "risk_train": [float(x) for x in model.predict(X)],
        "threshold": None,
    }
    predictions = pd.DataFrame({"case_id": rows["case_id"], "time": time, "event": event,
                                "risk": lp.mean(axis=0), "risk_at_horizon": rk.mean(axis=0)})
    return model, ModelCard.from_dict(card), predictions, folds


def predict_survival_cohort(model, card: dict, table: pd.DataFrame, cohort: str) -> pd.DataFrame:
    """Apply the frozen Cox model to one cohort: ``case_id, time, event, risk, risk_at_horizon``."""
    rows, X = cohort_design(card, table, cohort)
    o = card["outcome"]
    time, event = check_survival(rows[o["time"]], rows[o["event"]])
    t = min(card["horizon_days"], max_follow_up(model))
    return pd.DataFrame({"case_id": rows["case_id"], "time": time, "event": event, "risk": model.predict(X),
                         "risk_at_horizon": risk_at(model, X, t)})


def survival_cohort_metrics(pred: pd.DataFrame, card: dict, alpha: float = 0.05, n_boot: int = 1000,
                            seed: int = 0) -> dict:
    """Discrimination of a Cox model's risks on one cohort.

    Parameters
    ----------
    pred : pandas.DataFrame
        ``time`` (days), ``event`` (0/1), ``risk`` (linear predictor; higher = worse).
    card : dict
        The model card (training risk scores and SD, horizons).

    Returns
    -------
    dict
        ``n, n_events, c_index`` (Harrell) and ``c_index_ci_low/high`` (bootstrap), ``uno_c`` with
        CI (untruncated), ``td_auc_{t}`` at each horizon inside the cohort's follow-up,
        ``hr_per_sd`` with CI (per training SD of the risk score), and the log-rank test of the
        risk groups cut at the training median (``logrank_p``) with per-group events and medians.
    """
    time, event, risk = pred["time"].to_numpy(float), pred["event"].to_numpy(int), pred["risk"].to_numpy(float)
    c, c_lo, c_hi = c_index_ci(time, event, risk, "harrell", n_boot=n_boot, alpha=alpha, seed=seed)
    u, u_lo, u_hi = c_index_ci(time, event, risk, "uno", n_boot=n_boot, alpha=alpha, seed=seed)
    out = {"n": int(len(time)), "n_events": int(event.sum()), "c_index": c, "c_index_ci_low": c_lo,
           "c_index_ci_high": c_hi, "c_index_method": f"Harrell's C, percentile bootstrap ({n_boot})",
           "uno_c": u, "uno_c_ci_low": u_lo, "uno_c_ci_high": u_hi}
    usable = [t for t in card["horizons_days"] if time[event == 1].min() <= t < time.max()]
    if usable:
        for t, auc in zip(usable, time_dependent_auc(time, event, risk, usable)):
            out[f"td_auc_{int(t)}d"] = float(auc)
    out.update({f"hr_per_sd_{k}" if k != "hr" else "hr_per_sd": v
                for k, v in hazard_ratio_per_sd(time, event, risk, alpha=alpha, sd=card["risk_sd_train"]).items()
                if k in ("hr", "ci_low", "ci_high", "p_value")})
    groups = risk_groups(np.asarray(card["risk_train"]), risk, quantiles=(0.5,))
    if len(set(groups)) > 1:
        out.update({f"logrank_{k}": v for k, v in logrank(time, event, groups).items() if k in ("statistic", "p_value")})
    for g, info in km_by_group(time, event, groups, alpha=alpha).items():
        name = "high" if int(g) == 1 else "low"
        out[f"risk_group_{name}_n"], out[f"risk_group_{name}_events"] = info["n"], info["events"]
        out[f"risk_group_{name}_median_days"] = info["median"]
    return out
