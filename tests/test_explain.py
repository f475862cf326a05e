"""Permutation importance (AUC drop) and bootstrap stability of the L1 model's coefficients."""
import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.feature_selection import VarianceThreshold
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from acceflow.models.explain import acceflow_coefficients, bootstrap_coefficients, permutation_importance_auc
from acceflow.models.pipeline import build_model, fitted_coefficients


def _data(n=100, n_noise=5, seed=0, signal=2.0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, n_noise + 1)), columns=[f"noise{i}" for i in range(n_noise)] + ["signal"])
    y = (rng.random(n) < 1 / (1 + np.exp(-signal * X["signal"]))).astype(int).to_numpy()
    return X, y


def _small_model():
    return build_model(Cs=[0.1, 1.0], inner_folds=3)


@pytest.fixture(scope="module")
def fitted():
    X, y = _data()
    return _small_model().fit(X, y), X, y


def test_permutation_importance_ranks_informative_feature_first(fitted):
    model, X, y = fitted
    imp = permutation_importance_auc(model, X, y, n_repeats=10, seed=0)
    assert list(imp.columns) == ["feature", "importance_mean", "importance_sd", "auc_baseline"]
    assert imp.loc[0, "feature"] == "signal"
    assert imp.loc[0, "importance_mean"] > 0.2
    assert (imp["importance_mean"].iloc[1:].abs() < 0.05).all()
    assert imp["importance_mean"].is_monotonic_decreasing
    from sklearn.metrics import roc_auc_score
    assert imp["auc_baseline"].nunique() == 1
    assert imp.loc[0, "auc_baseline"] == pytest.approx(roc_auc_score(y, model.predict_proba(X)[:, 1]))
    again = permutation_importance_auc(model, X, y, n_repeats=10, seed=0)
    pd.testing.assert_frame_equal(imp, again)


def test_permutation_importance_validation(fitted):
    model, X, y = fitted
    with pytest.raises(ValueError, match="DataFrame"):
        permutation_importance_auc(model, X.to_numpy(), y)
    with pytest.raises(ValueError, match="single class"):
        permutation_importance_auc(model, X, np.zeros(len(y), int))
    with pytest.raises(ValueError, match="rows"):
        permutation_importance_auc(model, X.iloc[:50], y)
    with pytest.raises(ValueError, match="n_repeats"):
        permutation_importance_auc(model, X, y, n_repeats=0)
    one = permutation_importance_auc(model, X, y, n_repeats=1)
    assert one["importance_sd"].isna().all()


def test_permutation_importance_keeps_the_combat_batch_column_fixed():
    """A ComBat model needs its batch column: passed unpermuted, never reported as a feature."""
    from acceflow.models.harmonisation import ComBat
    X, y = _data(n=120)
    sites = np.repeat(["a", "b"], 60)
    full = pd.concat([pd.DataFrame({"cohort": sites}), X], axis=1)
    model = Pipeline([("combat", ComBat(batch="cohort")), ("clf", LogisticRegression())]).fit(full, y)
    with pytest.raises(ValueError, match="site column"):
        permutation_importance_auc(model, X, y)  # the batch column is missing
    imp = permutation_importance_auc(model, X, y, n_repeats=5, seed=0, fixed=full[["cohort"]])
    assert set(imp["feature"]) == set(X.columns) and imp.loc[0, "feature"] == "signal"
    from sklearn.metrics import roc_auc_score
    assert imp.loc[0, "auc_baseline"] == pytest.approx(roc_auc_score(y, model.predict_proba(full)[:, 1]))
    with pytest.raises(ValueError, match="one row per row"):
        permutation_importance_auc(model, X, y, fixed=full[["cohort"]].iloc[:10])


def test_acceflow_coefficients_matches_model_module(fitted):
    model, X, _ = fitted
    coefs = acceflow_coefficients(model, list(X.columns))
    assert coefs == fitted_coefficients(model, list(X.columns))[0]
    assert list(coefs) == list(X.columns)
    # a constant column is dropped by the pipeline and gets 0; the others stay aligned
    Xc = X.assign(const=1.0)[["const", *X.columns]]
    m = _small_model().fit(Xc, fitted[2])
    c = acceflow_coefficients(m, list(Xc.columns))
    assert c["const"] == 0.0 and c["signal"] == pytest.approx(coefs["signal"], rel=1e-6)


def test_acceflow_coefficients_bare_pipeline_and_errors():
    X, y = _data(n=60)
    pipe = Pipeline([("drop_constant", VarianceThreshold()), ("scale", StandardScaler()),
                     ("classifier", LogisticRegression())]).fit(X.assign(c=0.0), y)
    c = acceflow_coefficients(pipe, [*X.columns, "c"])
    assert c["c"] == 0.0 and c["signal"] > 0
    with pytest.raises(ValueError, match="coef_fn"):
        acceflow_coefficients(LogisticRegression().fit(X, y), list(X.columns))
    dummy = Pipeline([("classifier", DummyClassifier())]).fit(X, y)
    with pytest.raises(ValueError, match="no coefficients"):
        acceflow_coefficients(dummy, list(X.columns))
    with pytest.raises(ValueError, match="pass coef_fn"):
        acceflow_coefficients(pipe, list(X.columns))  # one feature name short


def test_bootstrap_coefficients_selection_stability():
    X, y = _data()
    t = bootstrap_coefficients(X, y, _small_model, n_boot=20, seed=0)
    assert list(t.columns) == ["feature", "coefficient", "ci_low", "ci_high", "selected_fraction", "n_boot"]
    assert list(t["feature"]) == list(X.columns)
    t = t.set_index("feature")
    assert t.loc["signal", "selected_fraction"] == 1.0
    assert t.loc["signal", "ci_low"] > 0 and t.loc["signal", "ci_low"] <= t.loc["signal", "coefficient"] \
        <= t.loc["signal", "ci_high"]
    # a lasso tuned by cross-validated AUC is not selection-consistent: it keeps some noise
    # features in a good share of the replicates (about 35-40% here), never in all of them
    noise = t.drop(index="signal")
    assert noise["selected_fraction"].max() <= 0.6
    assert noise["selected_fraction"].mean() < 0.5
    assert (t["n_boot"] == 20).all()
    full = fitted_coefficients(_small_model().fit(X, y), list(X.columns))[0]
    assert t["coefficient"].to_dict() == pytest.approx(full)


def test_bootstrap_coefficients_custom_coef_fn_and_determinism():
    X, y = _data(n=60, n_noise=2, seed=4)

    def coef_fn(m):  # sparse dict: only the non-zero coefficients
        return {f: c for f, c in zip(X.columns, m.coef_[0]) if c != 0}

    def make():
        return LogisticRegression(l1_ratio=1.0, solver="liblinear", C=0.05)

    a = bootstrap_coefficients(X.to_numpy(), y, make, n_boot=10, seed=3, coef_fn=coef_fn)
    b = bootstrap_coefficients(X.to_numpy(), y, make, n_boot=10, seed=3, coef_fn=coef_fn)
    pd.testing.assert_frame_equal(a, b)
    assert set(a["feature"]) <= set(X.columns)
    assert ((a["selected_fraction"] >= 0) & (a["selected_fraction"] <= 1)).all()
    # array input without coef_fn: columns are named x0, x1, ...
    c = bootstrap_coefficients(X.to_numpy(), y, lambda: build_model(Cs=[1.0], inner_folds=3), n_boot=3)
    assert list(c["feature"]) == ["x0", "x1", "x2"]


def test_bootstrap_coefficients_validation():
    X, y = _data(n=30, n_noise=1)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_coefficients(X, y, _small_model, n_boot=-1)
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_coefficients(X, y, _small_model, alpha=0)
    with pytest.raises(ValueError, match="coef_fn"):
        bootstrap_coefficients(X, y, _small_model, coef_fn="coef_")
    with pytest.raises(ValueError, match="single class"):
        bootstrap_coefficients(X, np.ones(30, int), _small_model)
    with pytest.raises(ValueError, match="no coefficients"):
        bootstrap_coefficients(X, y, lambda: Pipeline([("classifier", DummyClassifier())]), n_boot=2)
