"""Federated Cox regression in the survival workflow (acceflow.study.federated_survival): the DAG's steps.

Known answers: the study steps, run as the rules run them (split, site moments, pooled
standardisation, site rounds, aggregation, site baselines, final model), give the library learner's
coefficients and pooled Breslow baseline (:func:`federated_cox_fit`, itself checked against
lifelines in tests/test_federated_cox.py); the card's shared training risks are the final model's
risks of the pooled training rows; the central reference is lifelines' site-stratified fit, which
FedAvg with one local step per round reaches; the paired bootstrap of a C difference against a
constant score is the C's own bootstrap shifted by 1/2 (same draws).
"""
import numpy as np
import pandas as pd
import pytest

from acceflow.metrics.survival import c_index_ci, c_index_difference
from acceflow.models.federated import FederationError, standardise
from acceflow.models.federated_cox import breslow_loglik, federated_cox_fit, stratified_cox_objective
from acceflow.models.persistence import load_model, save_model
from acceflow.study import federated as F
from acceflow.study.card import ModelCard
from acceflow.study.settings import ConfigError, model_names, with_defaults
from acceflow.study.task import task_for

FEATURES = ["f0", "f1", "f2"]


def _table(seed=0, days=np.ceil):
    """Three sites (A, B training; C external), exponential survival, log HR (0.8, -0.5, 0.3) per SD;
    follow-up rounded up to whole days (``days=np.asarray``: continuous, no tied times)."""
    r = np.random.default_rng(seed)
    parts = []
    for site, n, shift, scale in [("A", 90, 0.0, 1.0), ("B", 60, 0.5, 2.0), ("C", 70, -0.3, 1.0)]:
        X = r.normal(size=(n, 3)) * [1, 2, 3] + shift
        T = r.exponential(scale * 365 * np.exp(-(X / [1, 2, 3]) @ np.array([0.8, -0.5, 0.3])))
        C = r.exponential(2 * 365, size=n)
        parts.append(pd.DataFrame(X, columns=FEATURES).assign(
            case_id=[f"{site}{i}" for i in range(n)], cohort=site, time=days(np.minimum(T, C)),
            event=(T <= C).astype(int)))
    return pd.concat(parts, ignore_index=True)


def _config(**federated):
    return with_defaults({"input": {"features": "t.csv"}, "seed": 3, "cohorts": {"train": ["A", "B"], "external": ["C"]},
                          "outcome": {"type": "survival", "time": "time", "event": "event", "horizons": [180, 365]},
                          "model": {"primary": "imaging", "comparators": ["federated"]},
                          "federated": {"rounds": 4, "local_epochs": 3, **federated}})


def _run_dag_steps(table, config):
    """The federated rules' steps in order, each reading what its rule reads."""
    sites = F.split_sites(table, config, FEATURES)
    std, start = F.standardisation_step([F.site_moments_step(sites[s], s) for s in sites])
    globals_, previous = [], start
    for _ in range(config["federated"]["rounds"]):
        updates = [F.site_round_step(sites[s], s, std, previous, config) for s in sites]
        previous = F.aggregate_step(updates, previous, config)
        globals_.append(previous)
    baselines = [F.site_baseline_step(sites[s], s, std, previous) for s in sites]
    return sites, std, globals_, baselines


def test_the_dag_steps_are_the_library_learner_and_the_card_is_a_survival_card(tmp_path):
    table, config = _table(), _config()
    sites, std, globals_, baselines = _run_dag_steps(table, config)
    assert list(sites["A"].columns) == ["case_id", "time", "event", *FEATURES]
    assert "intercept" not in globals_[-1] and std["learner"] == "cox"
    model, card, rounds = F.final_model(std, globals_, config, baselines)
    lib_std, beta, history, (times, cumhaz) = federated_cox_fit(
        {s: (t[FEATURES].to_numpy(float), t["time"].to_numpy(float), t["event"].to_numpy(float))
         for s, t in sites.items()}, penalizer=0.1, l1_ratio=0.0, rounds=4, local_epochs=3)
    np.testing.assert_allclose(model.coef_, beta, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(model.baseline_cumhaz_, cumhaz, rtol=1e-12)
    np.testing.assert_array_equal(model.baseline_time_, times)
    pd.testing.assert_frame_equal(rounds.reset_index(drop=True), history.reset_index(drop=True), check_dtype=False)
    # the card: what the survival rules read, with the shared risks = the model's risks of the training rows
    train = table[table["cohort"].isin(["A", "B"])]
    risks = model.predict(train[FEATURES])
    np.testing.assert_allclose(sorted(card.to_dict()["risk_train"]), np.sort(risks), rtol=1e-12)
    c = card.to_dict()
    assert c["risk_sd_train"] == pytest.approx(np.std(risks, ddof=1), rel=1e-12)
    assert c["horizons_days"] == [180.0, 365.0] and c["horizon_days"] == 365.0 and c["threshold"] is None
    assert c["n_train"] == 150 and c["n_events_train"] == int(train["event"].sum())
    assert "one number per patient" in c["risk_train_shared"]
    # saved and reloaded (skops), validated on the external cohort by the survival task's predict
    card.model_file = "model.skops"
    card.model_sha256 = save_model(model, tmp_path / "model.skops")
    card.write(tmp_path / "card.json")
    card = ModelCard.read(tmp_path / "card.json")
    loaded = load_model(tmp_path / "model.skops", card.model_sha256)
    pred = task_for(card).predict(loaded, card, table, "C")
    assert list(pred.columns) == ["case_id", "time", "event", "risk", "risk_at_horizon"]
    ext = table[table["cohort"] == "C"]
    np.testing.assert_allclose(pred["risk_at_horizon"], 1 - model.predict_survival(ext[FEATURES], 365.0))
    assert task_for(card).discrimination(pred, card, n_bootstrap=50)["c_index"] > 0.6
    apparent = F.apparent_predictions(table, model, card, config)
    assert len(apparent) == 150 and apparent["risk_at_horizon"].between(0, 1).all()


def test_the_central_reference_is_the_optimum_of_the_federated_objective_and_the_comparison_is_paired():
    """Central = lifelines' site-stratified fit with the mapped penalty: the federated objective's gradient
    (sum of the sites' Breslow gradients, no tied times) vanishes there (the KKT condition of the ridge)."""
    table, config = _table(1, days=np.asarray), _config(rounds=5, local_epochs=3)
    sites, std, globals_, baselines = _run_dag_steps(table, config)
    model, card, _ = F.final_model(std, globals_, config, baselines)
    comparison, coefficients, summary = F.compare_federated(table, model, card.to_dict(), config)
    central = coefficients["central"].to_numpy()
    grad = sum(breslow_loglik(standardise(t[FEATURES].to_numpy(float), std["mean"], std["scale"]), t["time"],
                              t["event"], central, gradient=True)[1] for t in sites.values())
    np.testing.assert_allclose(-grad / std["n"] + 0.1 * central, 0.0, atol=1e-6)
    assert np.abs(central).max() > 0.1  # not the trivial optimum
    for site in ("A", "B"):  # local-only: the same objective on one site's rows, standardised by that site
        t = sites[site]
        X = t[FEATURES].to_numpy(float)
        local = coefficients[f"local_{site}"].to_numpy()
        g = breslow_loglik((X - X.mean(0)) / X.std(0), t["time"], t["event"], local, gradient=True)[1]
        np.testing.assert_allclose(-g / len(t) + 0.1 * local, 0.0, atol=1e-6)
    assert summary["max_abs_coefficient_difference"] == pytest.approx(np.abs(coefficients["difference"]).max())
    assert list(coefficients.columns) == ["feature", "federated", "central", "local_A", "local_B", "difference"]
    assert list(comparison["model"]) == ["federated", "central", "local_A", "local_B"]
    fed = comparison.iloc[0]
    assert np.isnan(fed["p_value"]) and (comparison["reference"] == "federated").all()
    for _, row in comparison.iloc[1:].iterrows():
        assert row["c_difference"] == pytest.approx(row["c_index"] - fed["c_index"], abs=1e-12)
        assert row["c_difference_ci_low"] <= row["c_difference"] <= row["c_difference_ci_high"]
        assert 0 <= row["p_value"] <= 1
    assert (comparison["c_index_ci_low"] <= comparison["c_index"]).all()
    assert (comparison["c_index"] <= comparison["c_index_ci_high"]).all()
    # convergence stated: the federated objective's relative gap to the central optimum (5 rounds: short of it)
    J = lambda beta: stratified_cox_objective(  # noqa: E731
        standardise(np.vstack([t[FEATURES].to_numpy(float) for t in sites.values()]), std["mean"], std["scale"]),
        np.concatenate([t["time"] for t in sites.values()]), np.concatenate([t["event"] for t in sites.values()]),
        np.repeat(list(sites), [len(t) for t in sites.values()]), beta, 0.1, 0.0)
    assert summary["objective_gap"] == pytest.approx((J(model.coef_) - J(central)) / J(central), rel=1e-9)
    assert summary["objective_gap"] > 0 and summary["converged"] is (summary["objective_gap"] <= 0.01)
    assert comparison.set_index("model").loc["central", "objective_gap"] == 0
    assert (comparison["n_features"] == 3).all() and comparison["objective_gap"].iloc[2:].isna().all()


def test_paired_c_difference_against_a_constant_score_is_the_c_bootstrap_shifted():
    table = _table(2)
    t, e, risk = table["time"].to_numpy(), table["event"].to_numpy(), table["f0"].to_numpy()
    c, lo, hi = c_index_ci(t, e, risk, n_boot=300, seed=7)
    d = c_index_difference(t, e, risk, np.zeros_like(risk), n_boot=300, seed=7)
    assert d["c_a"] == c and d["c_b"] == 0.5 and d["difference"] == pytest.approx(c - 0.5)
    assert (d["ci_low"], d["ci_high"]) == pytest.approx((lo - 0.5, hi - 0.5), abs=1e-12)
    same = c_index_difference(t, e, risk, risk, n_boot=50, seed=1)
    assert same["difference"] == same["ci_low"] == same["ci_high"] == 0 and same["p_value"] == 1


def test_settings_accept_survival_and_a_site_without_events_is_named():
    assert model_names(_config()) == ("imaging", ["federated"])
    with pytest.raises(ConfigError, match=r"cohorts.train has 1"):
        model_names(with_defaults({**_config(), "cohorts": {"train": ["A"], "external": ["C"]}}))
    table = _table()
    table.loc[table["cohort"] == "B", "event"] = 0
    with pytest.raises(ValueError, match="site B: event has no 1: all 60 cases are censored"):
        F.split_sites(table, _config(), FEATURES)
    sites = F.split_sites(_table(), _config(), FEATURES)  # a site's own table without events (edited at the site)
    with pytest.raises(FederationError, match="site B: 0 event"):
        F.site_moments_step(sites["B"].assign(event=0), "B")
    table = _table()
    table.loc[table.index[100], "time"] = -3
    with pytest.raises(ValueError, match="site B"):
        F.split_sites(table, _config(), FEATURES)
