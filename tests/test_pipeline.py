"""Selection steps and learners of acceflow.models.pipeline."""
import numpy as np
import pandas as pd
import pytest

from acceflow.models.pipeline import (
    LEARNERS,
    CorrelationFilter,
    MRMRSelector,
    build_search,
    chosen_learner,
    learner_grid,
)


def _data(n=160, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8))
    X[:, 1] = X[:, 0] + 0.05 * rng.normal(size=n)  # near-duplicate of feature 0
    y = (X[:, 0] + X[:, 2] + 0.5 * rng.normal(size=n) > 0).astype(int)
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(8)]), y


def test_correlation_filter_drops_one_of_a_correlated_pair():
    X, _ = _data()
    keep = CorrelationFilter(0.9).fit(X).get_support()
    assert keep[0] != keep[1] and keep[2:].all()
    assert CorrelationFilter(1.0).fit(X).get_support().all()


def test_mrmr_prefers_relevant_and_non_redundant_features():
    X, y = _data()
    sel = MRMRSelector(k=2).fit(X, y)
    chosen = set(np.flatnonzero(sel.get_support()))
    assert 2 in chosen and len(chosen & {0, 1}) == 1  # one of the duplicated pair, plus f2


@pytest.mark.parametrize("learner", LEARNERS)
def test_every_learner_fits_and_predicts_probabilities(learner):
    X, y = _data()
    model = build_search((learner,), Cs=[0.1, 1.0], inner_folds=3, seed=0).fit(X, y)
    p = model.predict_proba(X)[:, 1]
    assert p.shape == (len(y),) and ((p >= 0) & (p <= 1)).all()
    assert chosen_learner(model)["estimator"]


def test_search_chooses_among_learners_deterministically():
    X, y = _data()
    a = build_search(("l1_logistic", "gradient_boosting"), Cs=[0.1, 1.0], inner_folds=3, seed=1).fit(X, y)
    b = build_search(("l1_logistic", "gradient_boosting"), Cs=[0.1, 1.0], inner_folds=3, seed=1).fit(X, y)
    assert chosen_learner(a) == chosen_learner(b)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_unknown_learner_and_selection_are_refused():
    with pytest.raises(ValueError, match="unknown"):
        learner_grid("deep_magic", [1.0], 0)
    with pytest.raises(ValueError, match="unknown"):
        build_search(selection="psychic")


def test_selection_outside_cv_leaks_and_the_nested_pipeline_does_not():
    """Pure noise: choosing features on all cases before CV inflates the AUC; nested CV does not."""
    from sklearn.feature_selection import SelectKBest, f_classif
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from acceflow.models.pipeline import internal_validation

    rng = np.random.default_rng(11)
    X = pd.DataFrame(rng.normal(size=(60, 1000)))
    X.columns = [f"f{i}" for i in range(1000)]
    y = np.r_[np.zeros(30, int), np.ones(30, int)]
    leaked = SelectKBest(f_classif, k=10).fit(X, y).transform(X)  # fitted on every case: the leak
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    leaky_auc = roc_auc_score(y, cross_val_predict(LogisticRegression(), leaked, y, cv=cv, method="predict_proba")[:, 1])
    oof, _ = internal_validation(X, y, lambda: build_search(("l1_logistic",), Cs=[0.1, 1.0], inner_folds=3, seed=0,
                                                            selection="univariate", n_select=10),
                                 folds=5, repeats=1, seed=0)
    nested_auc = roc_auc_score(y, oof)
    assert leaky_auc > 0.8, leaky_auc
    assert abs(nested_auc - 0.5) < 0.15, nested_auc
