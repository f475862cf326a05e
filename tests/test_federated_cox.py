"""Federated site-stratified penalised Cox regression (acceflow.models.federated_cox) through Flower.

Known answers from lifelines: with one site, FedAvg is central training (``CoxPHFitter`` with the
same ridge penalty, mapped onto lifelines' ddof-1 rescaling of the columns); with three
heterogeneous sites and one local step per round, FedAvg converges to the central
**site-stratified** fit (``CoxPHFitter(strata=["site"])``); the partial likelihood equals
lifelines' log-likelihood without ties; the pooled Breslow baseline equals lifelines' baseline
cumulative hazard of the unstratified fit; bad input names the site.
"""
import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter

from acceflow.models.cox import survival_y
from acceflow.models.federated import FederationError, standardise
from acceflow.models.persistence import load_model, save_model
from acceflow.models.federated_cox import (CoxSiteClient, FederatedCox, breslow_loglik, federated_cox_fit,
                                           survival_site_moments)

PRECISE = {"precision": 1e-12, "max_steps": 500}


def _site(n, shift=0.0, scale=1.0, seed=0):
    """Exponential survival with log hazard ratios (0.8, -0.5, 0.3) per SD; no tied times."""
    r = np.random.default_rng(seed)
    X = r.normal(size=(n, 3)) * [1, 2, 3] + [0, 1, 2] + shift
    lp = ((X - [0, 1, 2]) / [1, 2, 3]) @ np.array([0.8, -0.5, 0.3])
    T = r.exponential(scale * np.exp(-lp)) * 365
    C = r.exponential(2 * 365, size=n)
    return X, np.minimum(T, C), (T <= C).astype(float)


def _lifelines(frames, penalizer, strata=None):
    d = pd.concat(frames, ignore_index=True)
    sd = d[["a", "b", "c"]].std().to_numpy()  # lifelines penalises beta * (its ddof-1 SD of each column)
    return CoxPHFitter(penalizer=penalizer / sd ** 2, strata=strata).fit(d, "T", "E", fit_options=PRECISE)


def _frame(X, t, e, std, site="A"):
    d = pd.DataFrame(standardise(X, std["mean"], std["scale"]), columns=["a", "b", "c"])
    return d.assign(T=t, E=e, site=site)


def test_one_site_is_central_cox_training_and_the_baseline_is_breslows():
    X, t, e = _site(200)
    std, beta, history, (times, cumhaz) = federated_cox_fit({"A": (X, t, e)}, penalizer=0.1, rounds=2,
                                                             local_epochs=2000)
    ref = _lifelines([_frame(X, t, e, std).drop(columns="site")], 0.1)
    np.testing.assert_allclose(beta, ref.params_.to_numpy(), atol=1e-7)
    assert history["update_norm"].iloc[-1] < 1e-8
    # pooled Breslow = lifelines' baseline (lifelines centres the covariates: shift by exp(mean lp))
    lp_mean = float(standardise(X, std["mean"], std["scale"]).mean(0) @ beta)
    lifelines_h0 = ref.baseline_cumulative_hazard_.iloc[:, 0]
    at_events = lifelines_h0.index.isin(t[e == 1])
    np.testing.assert_array_equal(times, lifelines_h0.index[at_events])
    np.testing.assert_allclose(cumhaz, lifelines_h0[at_events].to_numpy() / np.exp(lp_mean), rtol=1e-6)


def test_several_sites_converge_to_the_central_site_stratified_fit():
    sites = {f"s{k}": _site(150 + 50 * k, shift, scale, seed=k + 1)
             for k, (shift, scale) in enumerate([(0, 1), (0.5, 2), (-0.3, 0.5)])}
    std, beta, history, _ = federated_cox_fit(sites, penalizer=0.05, rounds=2000, local_epochs=1)
    ref = _lifelines([_frame(*v, std, s) for s, v in sites.items()], 0.05, strata=["site"])
    np.testing.assert_allclose(beta, ref.params_.to_numpy(), atol=1e-5)
    unstratified = _lifelines([_frame(*v, std, s).drop(columns="site") for s, v in sites.items()], 0.05)
    assert np.abs(unstratified.params_.to_numpy() - beta).max() > 1e-3  # the stratified fit is what it matches
    last = history[history["round"] == history["round"].max()]
    assert len(last) == 3 and (last["drift"] > 0).all()  # sites still pull apart at the optimum
    # more local epochs per round: fewer rounds, near the same point (FedAvg's client drift)
    _, beta_e, _, _ = federated_cox_fit(sites, penalizer=0.05, rounds=100, local_epochs=20)
    assert np.abs(beta_e - beta).max() < 0.02


def test_partial_likelihood_and_gradient_match_lifelines_and_finite_differences():
    X, t, e = _site(120, seed=3)
    Z = (X - X.mean(0)) / X.std(0)
    beta = np.array([0.3, -0.2, 0.1])
    d = pd.DataFrame(Z, columns=["a", "b", "c"]).assign(T=t, E=e)
    unpen = CoxPHFitter().fit(d, "T", "E", fit_options=PRECISE)
    assert breslow_loglik(Z, t, e, unpen.params_.to_numpy()) == pytest.approx(unpen.log_likelihood_, rel=1e-9)
    _, g = breslow_loglik(Z, t, e, beta, gradient=True)
    h = 1e-6
    fd = [(breslow_loglik(Z, t, e, beta + h * np.eye(3)[j]) - breslow_loglik(Z, t, e, beta - h * np.eye(3)[j]))
          / (2 * h) for j in range(3)]
    np.testing.assert_allclose(g, fd, rtol=1e-6)


def test_l1_meets_the_lasso_optimality_conditions_with_exact_zeros():
    X, t, e = _site(200, seed=4)
    X = np.column_stack([X, np.random.default_rng(9).normal(size=len(t))])  # a pure-noise column
    std, beta, _, _ = federated_cox_fit({"A": (X, t, e)}, penalizer=0.1, l1_ratio=1.0, rounds=1, local_epochs=3000)
    _, g = breslow_loglik(standardise(X, std["mean"], std["scale"]), t, e, beta, gradient=True)
    g = g / len(t)  # KKT of -l/n + 0.1 |beta|_1: g_j = 0.1 sign(beta_j) where beta_j != 0, |g_j| <= 0.1 at 0
    zero = beta == 0.0
    assert zero[3] and not zero[0]
    np.testing.assert_allclose(g[~zero], 0.1 * np.sign(beta[~zero]), atol=1e-7)
    assert np.all(np.abs(g[zero]) <= 0.1)


def test_a_site_without_events_is_refused_naming_it():
    X, t, e = _site(30)
    with pytest.raises(FederationError, match="site Z: 0 event"):
        survival_site_moments(X, t, np.zeros_like(e), "Z")
    with pytest.raises(FederationError, match="site Z: 1 follow-up"):
        survival_site_moments(X, np.r_[0.0, t[1:]], e, "Z")


def test_the_frozen_model_predicts_risk_and_survival_and_saves_without_pickle(tmp_path):
    X, t, e = _site(200, seed=5)
    groups = np.repeat(["A", "B"], 100)
    model = FederatedCox(penalizer=0.1, rounds=200, local_epochs=5).fit(
        pd.DataFrame(X, columns=["a", "b", "c"]), survival_y(t, e), groups)
    X_nan = X[:3].copy()
    X_nan[0, 1] = np.nan  # missing: the pooled mean, i.e. no contribution
    lp = model.predict(pd.DataFrame(X_nan, columns=["a", "b", "c"]))
    assert lp[0] == pytest.approx(((X_nan[0] - model.mean_) / model.scale_)[[0, 2]] @ model.coef_[[0, 2]])
    s = model.predict_survival(pd.DataFrame(X[:3], columns=["a", "b", "c"]), [100.0, 400.0])
    assert s.shape == (3, 2) and np.all(s[:, 1] <= s[:, 0]) and np.all((s > 0) & (s < 1))
    with pytest.raises(ValueError, match="horizons"):
        model.predict_survival(X[:3], 1e6)
    sha = save_model(model, tmp_path / "model.skops")
    np.testing.assert_array_equal(load_model(tmp_path / "model.skops", sha).predict(X), model.predict(X))
    client = CoxSiteClient(np.zeros((3, 3)), [1.0, 2.0, 3.0], [1, 0, 1], "A")
    assert [p.shape for p in client.get_parameters({})] == [(3,)]
