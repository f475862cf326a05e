"""Federated penalised Cox regression with Flower: a site-stratified Cox model trained by FedAvg
(McMahan et al. 2017) or FedProx (Li et al. 2020).

Which likelihood
----------------
The Cox partial likelihood is not separable across sites: a case's risk set holds every case still
at risk, wherever it was treated. Two federated versions exist:

* pooled risk sets from summary statistics (WebDISCO, Lu et al. 2015): each Newton step, every site
  shares its risk-set sums at every distinct event time of the federation. Exact for the
  unstratified model, but the sites disclose their event times and many per-time aggregates each
  iteration, and the server runs the optimiser.
* **site-stratified partial likelihood (implemented here)**: each site's risk sets are its own
  cases only, i.e. each site has its own baseline hazard and the log hazard ratios are shared
  (``CoxPHFitter(strata=["site"])`` centrally; Andreux et al. 2020 train the same objective with
  FedAvg). The objective is a sum over sites, so FedAvg of local proximal-gradient steps optimises
  it with only parameters and counts leaving a site.

The objective, on features standardised by the pooled mean and SD (ddof 0, as
:func:`acceflow.models.federated.pooled_standardisation` computes them from the sites' moments):

    J(beta) = -(1/N) sum_k l_k(beta) + penalizer * (l1_ratio ||beta||_1 + (1 - l1_ratio)/2 ||beta||_2^2),

``l_k`` site k's Breslow partial log-likelihood (ties: Breslow's approximation; lifelines uses
Efron's, identical without tied event times), N the pooled number of cases. It is lifelines'
``CoxPHFitter(penalizer, l1_ratio, strata=...)`` objective (lifelines divides the log-likelihood by
N too, but penalises its own ddof-1 rescaling of the columns and smooths |beta|; the tests map the
penalties onto each other). Site k minimises ``-(1/n_k) l_k + pen(beta)`` so that the
n_k/N-weighted FedAvg of the sites' objectives is J. With one site the stratified model is the
ordinary one: FedAvg is then central training (tests/test_federated_cox.py checks it against
lifelines to 1e-6, and the several-site fit against lifelines' stratified fit).

Site step: ``local_epochs`` FISTA steps (Beck & Teboulle 2009, with the gradient restart of
O'Donoghue & Candès 2015) from the global coefficients, the l1 part by soft-thresholding, FedProx's
``mu/2 ||beta - beta_global||^2`` added when ``proximal_mu > 0``. One step size for every site,
``1 / L``, L a Lipschitz bound of every site's gradient from what the sites share: the Hessian of
``-(1/n_k) l_k`` is ``(1/n_k) sum_events Cov_w(z | risk set)`` and a weighted covariance of
values within a box has its largest eigenvalue below ``sum_j (range_j / 2)^2``, so
``L = max_k (d_k / n_k) sum_j ((max_j - min_j) / (2 s_j))^2``: each site shares its per-column
minimum and maximum besides counts, sums and sums of squares. With ``local_epochs = 1`` a round is
one proximal-gradient step of J (exact fixed point); more local epochs save rounds at the price of
FedAvg's client drift on heterogeneous sites (FedProx's mu limits it).

The frozen model's baseline hazard: the pooled Breslow estimator at the final coefficients,
``H0(t) = sum_{event times s <= t} d(s) / sum_k S0_k(s)``, from each site's event-time table
(distinct event times, events, risk-set sums ``S0_k(s) = sum_{j at k, t_j >= s} exp(z_j beta)``),
shared once after the last round (what WebDISCO shares every iteration). Risk scores (linear
predictor; Harrell's C) need no baseline.

References
----------
Cox DR (1972). Regression models and life-tables. J R Stat Soc B 34:187-220.
Breslow NE (1974). Covariance analysis of censored survival data. Biometrics 30:89-99.
Lu CL, Wang S, Ji Z, et al. (2015). WebDISCO: a web service for distributed Cox model learning
without patient-level data sharing. J Am Med Inform Assoc 22:1212-1219.
Andreux M, Manoel A, Menuet R, et al. (2020). Federated survival analysis with discrete-time Cox
models. arXiv:2006.08997.
McMahan B et al. (2017). AISTATS, PMLR 54:1273-1282. Li T et al. (2020). MLSys 2:429-450.
Beck A, Teboulle M (2009). SIAM J Imaging Sci 2:183-202.
O'Donoghue B, Candès E (2015). Adaptive restart for accelerated gradient schemes. Found Comput
Math 15:715-732.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from flwr.client import NumPyClient
from sklearn.base import BaseEstimator

from acceflow.models.federated import (FederationError, pooled_standardisation, run_rounds,
                                       standardise)

__all__ = ["survival_site_moments", "cox_lipschitz", "breslow_loglik", "CoxSiteClient", "site_event_table",
           "pooled_breslow", "federated_cox_fit", "FederatedCox", "stratified_cox_objective"]


def survival_site_moments(X, time, event, site: str, min_events: int = 1) -> dict:
    """What one site shares before training: counts, sums, sums of squares, column minima and maxima.

    Parameters
    ----------
    X : array-like of shape (n, p)
        The site's feature values (NaN for missing).
    time : array-like of shape (n,)
        Follow-up in days (> 0).
    event : array-like of shape (n,)
        1 = event observed, 0 = censored.
    site : str
        The site's name (for error messages).
    min_events : int
        Events the site needs (a site without events has a flat partial likelihood).

    Returns
    -------
    dict
        ``site``, ``n``, ``n_events``, ``count``, ``sum``, ``sum_squares``, ``min``, ``max``
        (lists of length p; min / max of the observed values, NaN for an all-missing column).

    Raises
    ------
    FederationError
        When times are not positive finite, events not 0/1, or the site has fewer than
        ``min_events`` events.
    """
    X = np.asarray(X, dtype=float)
    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=float)
    if not np.all(np.isfinite(t) & (t > 0)):
        raise FederationError(f"site {site}: {int(np.sum(~(np.isfinite(t) & (t > 0))))} follow-up time(s) missing or "
                              f"not positive: fix or drop those rows in the site's table")
    if np.any((e != 0) & (e != 1)):
        raise FederationError(f"site {site}: {int(np.sum((e != 0) & (e != 1)))} event value(s) neither 0 nor 1: "
                              f"fix or drop those rows in the site's table")
    if len(e) == 0 or e.sum() < max(min_events, 1):
        raise FederationError(f"site {site}: {int(e.sum())} event(s) in {len(e)} cases; a site of federated Cox "
                              f"training needs at least {max(min_events, 1)} event(s) (its partial likelihood is "
                              f"flat otherwise). Merge the site with another one, or leave it out of cohorts.train")
    observed = ~np.isnan(X)
    filled = np.where(observed, X, 0.0)
    with np.errstate(all="ignore"):
        lo = np.where(observed.any(0), np.nanmin(np.where(observed, X, np.inf), axis=0), np.nan)
        hi = np.where(observed.any(0), np.nanmax(np.where(observed, X, -np.inf), axis=0), np.nan)
    return {"site": site, "n": int(len(e)), "n_events": int(e.sum()), "count": observed.sum(0).astype(int).tolist(),
            "sum": filled.sum(0).tolist(), "sum_squares": (filled ** 2).sum(0).tolist(),
            "min": lo.tolist(), "max": hi.tolist()}


def cox_lipschitz(moments: list[dict], standardisation: dict) -> float:
    """A common Lipschitz bound of every site's gradient of ``-(1/n_k) l_k`` (module docstring).

    ``max_k (d_k / n_k) * sum_j ((max_j - min_j) / (2 s_j))^2`` with the pooled range of column j
    (the box every standardised row, mean-imputed ones included, lies in) and pooled SD ``s_j``.
    """
    lo = np.nanmin([m["min"] for m in moments], axis=0)
    hi = np.nanmax([m["max"] for m in moments], axis=0)
    half = ((hi - lo) / (2.0 * np.asarray(standardisation["scale"]))) ** 2
    return float(max(m["n_events"] / m["n"] for m in moments) * max(np.sum(half), 1e-12))


def _risk_index(time):
    """Order by time and, per case, the first sorted index of its risk set (ties included)."""
    order = np.argsort(time, kind="stable")
    ts = time[order]
    return order, ts, np.searchsorted(ts, ts, side="left")


def breslow_loglik(Z, time, event, beta, gradient: bool = False):
    """Breslow's partial log-likelihood ``l(beta)`` of one stratum (and its gradient).

    ``l = sum_{i: event} [z_i beta - log sum_{j: t_j >= t_i} exp(z_j beta)]`` (Breslow 1974).

    Parameters
    ----------
    Z : array (n, p)
    time, event : arrays (n,)
        Days, 0/1.
    beta : array (p,)

    Returns
    -------
    float, or (float, array (p,)) with ``gradient=True``
    """
    order, _, first = _risk_index(np.asarray(time, dtype=float))
    Zs = np.asarray(Z, dtype=float)[order]
    es = np.asarray(event, dtype=float)[order]
    eta = Zs @ beta
    shift = eta.max() if len(eta) else 0.0
    w = np.exp(eta - shift)
    s0 = np.cumsum(w[::-1])[::-1][first]
    ll = float(np.sum(es * (eta - shift - np.log(s0))))
    if not gradient:
        return ll
    s1 = np.cumsum((w[:, None] * Zs)[::-1], axis=0)[::-1][first]
    return ll, (es[:, None] * (Zs - s1 / s0[:, None])).sum(0)


def _penalty(beta, penalizer, l1_ratio) -> float:
    return float(penalizer * (l1_ratio * np.abs(beta).sum() + 0.5 * (1 - l1_ratio) * beta @ beta))


def stratified_cox_objective(Z, time, event, strata, beta, penalizer: float, l1_ratio: float) -> float:
    """The federated Cox learner's objective J at ``beta`` (the module docstring's J).

    ``J(beta) = -(1/N) sum_k l_k(beta) + penalizer (l1_ratio ||beta||_1 + (1 - l1_ratio)/2 ||beta||_2^2)``,
    ``l_k`` the Breslow partial log-likelihood of stratum (site) k (:func:`breslow_loglik`).

    Parameters
    ----------
    Z : array of shape (N, p)
        The pooled rows, standardised by the pooled mean and SD (missing values at 0).
    time, event : arrays of shape (N,)
        Days, 0/1.
    strata : array of shape (N,)
        Each row's site.
    beta : array of shape (p,)
        Log hazard ratios per pooled SD.
    penalizer, l1_ratio : float
        As :class:`CoxSiteClient`.

    Returns
    -------
    float
        J; at ``beta = 0`` (round 0 of federated training) it is ``(1/N) sum_events log |risk set|``.
    """
    Z, beta = np.asarray(Z, dtype=float), np.asarray(beta, dtype=float)
    time, event, strata = np.asarray(time, dtype=float), np.asarray(event, dtype=float), np.asarray(strata)
    loglik = sum(breslow_loglik(Z[strata == s], time[strata == s], event[strata == s], beta) for s in pd.unique(strata))
    return float(-loglik / len(Z) + _penalty(beta, penalizer, l1_ratio))


class CoxSiteClient(NumPyClient):
    """One site's local step of federated site-stratified penalised Cox regression (Flower NumPyClient).

    Parameters
    ----------
    Z : array of shape (n_k, p)
        The site's standardised features (pooled mean and SD).
    time, event : arrays of shape (n_k,)
        Follow-up (days) and event indicator (0/1).
    site : str
    penalizer, l1_ratio : float
        Elastic-net penalty as lifelines' ``CoxPHFitter`` (module docstring): ``penalizer >= 0``,
        ``l1_ratio`` in [0, 1].
    local_epochs : int
        Default FISTA steps per round (``config["local_epochs"]`` overrides it).
    lipschitz : float, optional
        The common bound :func:`cox_lipschitz` (every site must use the same step). Default: this
        site's own ``(d_k/n_k) * sum_j (range_j / 2)^2``.

    ``fit(parameters, config)`` takes ``[coef (p,)]`` and returns ``([coef], n_k, {"loss": ...})``,
    ``loss`` the site's mean negative partial log-likelihood ``-l_k / n_k`` (unpenalised) at the
    updated coefficients.
    """

    def __init__(self, Z, time, event, site: str, penalizer: float = 0.1, l1_ratio: float = 0.0,
                 local_epochs: int = 1, lipschitz: float | None = None):
        if not (penalizer >= 0 and 0 <= l1_ratio <= 1):
            raise ValueError(f"penalizer {penalizer!r} must be >= 0 and l1_ratio {l1_ratio!r} in [0, 1]")
        self.Z = np.asarray(Z, dtype=float)
        self.time = np.asarray(time, dtype=float)
        self.event = np.asarray(event, dtype=float)
        self.site, self.penalizer, self.l1_ratio = site, float(penalizer), float(l1_ratio)
        self.local_epochs = int(local_epochs)
        if lipschitz is None:
            half = ((self.Z.max(0) - self.Z.min(0)) / 2) ** 2 if len(self.Z) else np.zeros(1)
            lipschitz = self.event.mean() * max(float(half.sum()), 1e-12)
        self.lipschitz = float(lipschitz) + self.penalizer * (1 - self.l1_ratio)

    def get_parameters(self, config):
        return [np.zeros(self.Z.shape[1])]

    def loss(self, beta) -> float:
        """``-l_k(beta) / n_k`` (unpenalised)."""
        return -breslow_loglik(self.Z, self.time, self.event, beta) / len(self.time)

    def _objective(self, beta, mu, anchor):
        return (self.loss(beta) + _penalty(beta, self.penalizer, self.l1_ratio)
                + 0.5 * mu * float((beta - anchor) @ (beta - anchor)))

    def _gradient(self, beta, mu, anchor):
        _, g = breslow_loglik(self.Z, self.time, self.event, beta, gradient=True)
        return -g / len(self.time) + self.penalizer * (1 - self.l1_ratio) * beta + mu * (beta - anchor)

    def fit(self, parameters, config):
        beta0 = np.asarray(parameters[0], dtype=float).copy()
        mu = float(config.get("proximal_mu", 0.0))
        epochs = int(config.get("local_epochs", self.local_epochs))
        step = 1.0 / (self.lipschitz + mu)
        threshold = step * self.penalizer * self.l1_ratio
        x, v, t = beta0.copy(), beta0.copy(), 1.0
        for _ in range(epochs):
            new = v - step * self._gradient(v, mu, beta0)
            if threshold > 0:
                new = np.sign(new) * np.maximum(np.abs(new) - threshold, 0.0)
            if (v - new) @ (new - x) > 0:  # gradient restart (O'Donoghue & Candès 2015)
                t = 1.0
            t_next = (1.0 + np.sqrt(1.0 + 4.0 * t * t)) / 2.0
            v = new + (t - 1.0) / t_next * (new - x)
            x, t = new, t_next
        loss = self.loss(x) if np.all(np.isfinite(x)) else float("nan")
        return [x], int(len(self.time)), {"loss": loss}

    def evaluate(self, parameters, config):
        return self.loss(np.asarray(parameters[0], dtype=float)), int(len(self.time)), {}


def site_event_table(Z, time, event, beta) -> pd.DataFrame:
    """A site's event-time table at the final coefficients, for the pooled Breslow baseline.

    Returns
    -------
    pandas.DataFrame
        One row per distinct follow-up time of the site: ``time`` (days), ``events`` (0 where only
        censorings), ``s0`` (``sum_{j: t_j >= time} exp(z_j beta)`` over the site's cases). What
        leaves the site: its distinct follow-up times with these two numbers, once, after training.
    """
    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=float)
    w = np.exp(np.asarray(Z, dtype=float) @ beta)
    times = np.unique(t)
    order = np.argsort(t)
    tail = np.cumsum(w[order][::-1])[::-1]
    first = np.searchsorted(t[order], times, side="left")
    events = np.array([e[t == s].sum() for s in times])
    return pd.DataFrame({"time": times, "events": events, "s0": tail[first]})


def pooled_breslow(tables: list[pd.DataFrame]) -> tuple[np.ndarray, np.ndarray]:
    """The pooled Breslow baseline cumulative hazard from the sites' :func:`site_event_table` s.

    ``H0(t) = sum_{event times s <= t} d(s) / sum_k S0_k(s)``, S0_k(s) the risk-set sum of site k
    at s: its ``s0`` at its first follow-up time >= s (0 when none; it is the sum over cases with
    ``t_j >= s``, constant between the site's follow-up times).

    Returns
    -------
    times : array (K,)
        Distinct event times of the federation (days).
    cumhaz : array (K,)
    """
    times = np.unique(np.concatenate([tb.loc[tb["events"] > 0, "time"].to_numpy() for tb in tables]))
    d = np.zeros(len(times))
    s0 = np.zeros(len(times))
    for tb in tables:
        tt, ss = tb["time"].to_numpy(), tb["s0"].to_numpy()
        idx = np.searchsorted(tt, times, side="left")
        s0 += np.where(idx < len(tt), ss[np.minimum(idx, len(tt) - 1)], 0.0)
        ev = tb.set_index("time")["events"]
        d += ev.reindex(times, fill_value=0.0).to_numpy()
    return times, np.cumsum(d / s0)


def federated_cox_fit(sites: dict, penalizer: float = 0.1, l1_ratio: float = 0.0, rounds: int = 50,
                      local_epochs: int = 5, strategy: str = "fedavg", proximal_mu: float = 0.0):
    """Federated site-stratified Cox training in one process (Flower client and strategy, as the DAG's jobs).

    Parameters
    ----------
    sites : dict of str -> (X (n_k, p), time (n_k,), event (n_k,))

    Returns
    -------
    standardisation : dict
        Pooled mean / scale (:func:`acceflow.models.federated.pooled_standardisation`) with
        ``lipschitz`` replaced by :func:`cox_lipschitz`.
    beta : array (p,)
        Log hazard ratios per pooled SD.
    history : pandas.DataFrame
        ``round, site, n, loss, update_norm, drift`` of every round.
    baseline : tuple of arrays
        :func:`pooled_breslow` at the final coefficients.
    """
    moments = [survival_site_moments(X, t, e, site) for site, (X, t, e) in sites.items()]
    std = pooled_standardisation(moments)
    std["lipschitz"] = cox_lipschitz(moments, std)
    Zs = {site: standardise(X, std["mean"], std["scale"]) for site, (X, _, _) in sites.items()}
    clients = {site: CoxSiteClient(Zs[site], t, e, site, penalizer, l1_ratio, local_epochs, std["lipschitz"])
               for site, (_, t, e) in sites.items()}
    params = [np.zeros(len(std["mean"]))]
    params, rows = run_rounds(clients, params, rounds, local_epochs, strategy, proximal_mu)
    beta = params[0]
    baseline = pooled_breslow([site_event_table(Zs[s], t, e, beta) for s, (_, t, e) in sites.items()])
    return std, beta, rows, baseline


class FederatedCox(BaseEstimator):
    """The frozen federated Cox model: pooled standardisation, log hazard ratios, pooled Breslow baseline.

    ``fit(X, y, groups)`` trains in one process with each distinct ``groups`` value a site
    (``y``: a structured array with ``time`` / ``event``, see
    :func:`acceflow.models.cox.survival_y`). ``predict`` gives the linear predictor (log partial
    hazard per pooled SD, missing values at the pooled mean); ``predict_survival(X, t)`` the
    survival at horizon(s) t from the pooled Breslow baseline as a step function (as
    :class:`acceflow.models.cox.PenalizedCox`).

    Attributes
    ----------
    mean_, scale_ : arrays (p,)
    coef_ : array (p,)
        Log hazard ratios per pooled SD.
    baseline_time_, baseline_cumhaz_ : arrays (K,)
    max_time_ : float
    feature_names_in_ : array of str (p,)

    Saved with skops (the type is on :data:`acceflow.models.persistence.TRUSTED_TYPES`).
    """

    def __init__(self, penalizer: float = 0.1, l1_ratio: float = 0.0, rounds: int = 50, local_epochs: int = 5,
                 strategy: str = "fedavg", proximal_mu: float = 0.0):
        self.penalizer, self.l1_ratio, self.rounds, self.local_epochs = penalizer, l1_ratio, rounds, local_epochs
        self.strategy, self.proximal_mu = strategy, proximal_mu

    def fit(self, X, y, groups):
        X = pd.DataFrame(X)
        y, groups = np.asarray(y), np.asarray(groups)
        values = X.to_numpy(dtype=float)
        sites = {str(g): (values[groups == g], y["time"][groups == g], y["event"][groups == g].astype(float))
                 for g in pd.unique(groups)}
        std, beta, _, (times, cumhaz) = federated_cox_fit(
            sites, self.penalizer, self.l1_ratio, self.rounds, self.local_epochs, self.strategy, self.proximal_mu)
        self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        self.mean_, self.scale_ = np.asarray(std["mean"]), np.asarray(std["scale"])
        self.coef_ = np.asarray(beta, dtype=float)
        self.baseline_time_, self.baseline_cumhaz_ = times, cumhaz
        self.max_time_ = float(np.max(y["time"]))
        return self

    @classmethod
    def from_parameters(cls, features, standardisation: dict, coef, baseline, max_time: float, **settings):
        """The frozen model from the federation's shared results (the workflow's server files).

        Parameters
        ----------
        features : list of str (p,)
        standardisation : dict
            ``mean`` and ``scale`` (p,), the pooled standardisation.
        coef : array (p,)
            The last round's global log hazard ratios per pooled SD.
        baseline : (times (K,), cumhaz (K,))
            :func:`pooled_breslow` of the sites' :func:`site_event_table` s at ``coef``.
        max_time : float
            The longest follow-up of any site (days): ``predict_survival`` refuses horizons beyond.
        settings
            The constructor's keywords (recorded, not used to refit).
        """
        model = cls(**settings)
        model.feature_names_in_ = np.asarray([str(f) for f in features], dtype=object)
        model.n_features_in_ = len(model.feature_names_in_)
        model.mean_ = np.asarray(standardisation["mean"], dtype=float)
        model.scale_ = np.asarray(standardisation["scale"], dtype=float)
        model.coef_ = np.asarray(coef, dtype=float)
        model.baseline_time_ = np.asarray(baseline[0], dtype=float)
        model.baseline_cumhaz_ = np.asarray(baseline[1], dtype=float)
        model.max_time_ = float(max_time)
        return model

    def predict_risk_at(self, X, t):
        """Probability of the event by ``t`` days, ``1 - S(t | x)`` (array (n,))."""
        return 1.0 - self.predict_survival(X, float(t))

    def predict(self, X):
        if isinstance(X, pd.DataFrame):
            X = X[list(self.feature_names_in_)]
        return standardise(np.asarray(X, dtype=float), self.mean_, self.scale_) @ self.coef_

    def predict_survival(self, X, t):
        lp = self.predict(X)
        times = np.atleast_1d(np.asarray(t, dtype=float))
        if np.any(~np.isfinite(times) | (times <= 0) | (times > self.max_time_)):
            raise ValueError(f"horizons {times.tolist()} must lie in (0, {self.max_time_:g}] days (the training "
                             f"follow-up)")
        idx = np.searchsorted(self.baseline_time_, times, side="right") - 1
        h0 = np.where(idx >= 0, self.baseline_cumhaz_[np.clip(idx, 0, None)], 0.0)
        surv = np.exp(-np.exp(lp)[:, None] * h0[None, :])
        return surv[:, 0] if np.ndim(t) == 0 else surv
