"""Federated penalised logistic regression (acceflow.models.federated): FedAvg / FedProx through Flower.

Known answers: with one site, FedAvg is central training (scikit-learn's LogisticRegression on the
pooled standardised data, to 1e-7); on an IID split, FedAvg with one local step per round is central
gradient descent and converges to the central coefficients; the pooled standardisation equals a
central SimpleImputer(mean) + StandardScaler exactly; bad input names the site.
"""
import warnings

import numpy as np
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from acceflow.models.federated import (FederatedLogisticRegression, FederationError, LogisticSiteClient,
                                       aggregate_round, federated_fit, make_strategy, pooled_standardisation,
                                       site_moments, standardise)
from acceflow.models.persistence import load_model, save_model


def _data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)) * [1, 2, 3, 1, 5] + [0, 1, 2, 3, 4]
    Z = (X - X.mean(0)) / X.std(0)
    y = (rng.random(n) < 1 / (1 + np.exp(-(Z @ np.array([1.0, -1.0, 0.5, 0.0, 0.3]))))).astype(int)
    return X, y


def _central(X, y, penalty, C):
    kw = dict(l1_ratio=0) if penalty == "l2" else dict(l1_ratio=1, solver="saga")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make_pipeline(SimpleImputer(), StandardScaler(),
                             LogisticRegression(C=C, tol=1e-12, max_iter=100000, **kw)).fit(X, y)[-1]


@pytest.mark.parametrize("penalty", ["l2", "l1"])
def test_fedavg_with_one_site_is_central_training(penalty):
    X, y = _data()
    ref = _central(X, y, penalty, 0.5)
    _, params, history = federated_fit({"A": (X, y)}, penalty=penalty, C=0.5, rounds=20, local_epochs=100)
    np.testing.assert_allclose(params[0], ref.coef_[0], atol=1e-7)
    np.testing.assert_allclose(params[1], ref.intercept_, atol=1e-7)
    assert list(history.columns) == ["round", "site", "n", "loss", "update_norm", "drift"]
    assert history["update_norm"].iloc[-1] < 1e-7  # converged: the last round hardly moves


@pytest.mark.parametrize("penalty", ["l2", "l1"])
def test_fedavg_on_an_iid_split_converges_to_the_central_coefficients(penalty):
    X, y = _data()
    ref = _central(X, y, penalty, 0.5)
    parts = np.array_split(np.random.default_rng(1).permutation(len(y)), 3)
    sites = {f"s{i}": (X[q], y[q]) for i, q in enumerate(parts)}
    _, params, history = federated_fit(sites, penalty=penalty, C=0.5, rounds=200, local_epochs=1)
    assert np.abs(params[0] - ref.coef_[0]).max() < 1e-3
    first = history[history["round"] == 1]
    assert len(first) == 3 and (first["update_norm"] > 0).all() and (first["drift"] != first["update_norm"]).all()
    # FedProx on the same split lands at the same point (mu only damps the local steps)
    _, prox, _ = federated_fit(sites, penalty=penalty, C=0.5, rounds=200, local_epochs=1, strategy="fedprox",
                               proximal_mu=0.1)
    assert np.abs(prox[0] - ref.coef_[0]).max() < 5e-3


def test_pooled_standardisation_is_the_central_one_with_missing_values():
    X, y = _data(120)
    X[::7, 2] = np.nan
    parts = [slice(0, 50), slice(50, 120)]
    std = pooled_standardisation([site_moments(X[q], y[q], f"s{i}") for i, q in enumerate(parts)])
    central = make_pipeline(SimpleImputer(), StandardScaler()).fit(X)
    np.testing.assert_allclose(std["mean"], central[0].statistics_, rtol=1e-12)
    np.testing.assert_allclose(std["scale"], central[1].scale_, rtol=1e-10)
    np.testing.assert_allclose(standardise(X, std["mean"], std["scale"]), central.transform(X), atol=1e-10)
    assert std["n"] == 120 and std["sites"] == {"s0": 50, "s1": 70}


def test_a_site_with_a_single_class_is_refused_naming_the_site():
    X, y = _data(60)
    with pytest.raises(FederationError, match="site hospital_B: 0 positive and 60 negative"):
        site_moments(X, np.zeros(60), "hospital_B")


def test_a_nan_update_stops_the_aggregation_naming_the_site():
    ok = [np.zeros(3), np.zeros(1)]
    with pytest.raises(FederationError, match="round 4: the update of site site_C holds NaN"):
        aggregate_round(make_strategy("fedavg"), 4, [("site_A", ok, 10), ("site_C", [np.array([0, np.nan, 1]),
                                                                                   np.zeros(1)], 12)])


def test_aggregation_is_the_count_weighted_mean_and_fedprox_sends_mu():
    a, b = [np.array([1.0, 2.0]), np.array([0.0])], [np.array([4.0, -1.0]), np.array([3.0])]
    new = aggregate_round(make_strategy("fedprox", 0.5), 1, [("A", a, 1), ("B", b, 2)])
    np.testing.assert_allclose(new[0], [3.0, 0.0])
    np.testing.assert_allclose(new[1], [2.0])
    X, y = _data(40)
    client = LogisticSiteClient(standardise(X, X.mean(0), X.std(0)), y, "A")
    far = client.fit([np.zeros(5), np.zeros(1)], {"local_epochs": 30})[0]
    near = client.fit([np.zeros(5), np.zeros(1)], {"local_epochs": 30, "proximal_mu": 5.0})[0]
    assert np.linalg.norm(near[0]) < np.linalg.norm(far[0])  # the proximal term holds the site near the global model


def test_the_frozen_model_predicts_like_the_central_one_and_saves_without_pickle(tmp_path):
    X, y = _data()
    ref = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(C=0.5, l1_ratio=0, tol=1e-12)).fit(X, y)
    groups = np.repeat(["A", "B"], [100, 200])
    model = FederatedLogisticRegression(penalty="l2", C=0.5, rounds=300, local_epochs=1).fit(X, y, groups)
    np.testing.assert_allclose(model.predict_proba(X)[:, 1], ref.predict_proba(X)[:, 1], atol=1e-3)
    sha = save_model(model, tmp_path / "model.skops")
    again = load_model(tmp_path / "model.skops", sha)
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))
