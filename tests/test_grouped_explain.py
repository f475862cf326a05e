"""Explanations that respect correlated features (issue 19 part 6): correlation clusters, grouped
SHAP, grouped permutation importance, odds / hazard ratios per SD from an unpenalised refit."""
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from acceflow.models.grouped import (
    correlation_clusters,
    grouped_permutation_importance,
    grouped_shap,
    shap_summary,
    unpenalised_ratios,
)


def _twins(n=60, seed=0):
    rng = np.random.default_rng(seed)
    a, c = rng.normal(size=n), rng.normal(size=n)
    return pd.DataFrame({"a": a, "a_copy": a, "c": c})


def _tanh_model(wa, wb):
    """A non-additive model: the outside feature c interacts with the twins through tanh."""
    return lambda Z: 3 * np.tanh(wa * Z["a"] + wb * Z["a_copy"] + Z["c"]).to_numpy()


def test_correlation_clusters_join_twins_and_rank_identical_features():
    X = _twins()
    X["a_cubed"] = X["a"] ** 3  # Spearman rho 1 with a (monotone), Pearson < 1
    X["neg_c"] = -X["c"] + 1e-3 * np.random.default_rng(1).normal(size=len(X))
    table, tree = correlation_clusters(X, threshold=0.3)
    assert table["feature"].tolist() == ["a", "a_copy", "c", "a_cubed", "neg_c"]
    assert table["cluster"].tolist() == [1, 1, 2, 1, 2]  # |rho| joins negatively correlated features too
    assert table["cluster_size"].tolist() == [3, 3, 2, 3, 2]
    assert table.loc[0, "max_abs_rho"] == pytest.approx(1.0)
    assert tree.shape == (4, 4)
    apart, _ = correlation_clusters(X[["a", "c"]], threshold=0.3)
    assert apart["cluster"].tolist() == [1, 2] and apart["max_abs_rho"].isna().all()
    with pytest.raises(ValueError, match="cluster_threshold"):
        correlation_clusters(X, threshold=1.5)


def test_grouped_shap_splits_credit_within_the_group_and_not_outside():
    """Two perfectly correlated copies: whichever copy (or both) the model uses, the group's sum and the
    outside feature's value are the same, and equal to what the one-copy model gives its one copy;
    independent-feature SHAP moves credit to the outside feature when the model spreads its weight."""
    X = _twins()
    clusters, tree = correlation_clusters(X, 0.3)
    cases = X.iloc[:6]
    one = grouped_shap(_tanh_model(2, 0), cases, X, tree, clusters)
    other = grouped_shap(_tanh_model(0, 2), cases, X, tree, clusters)
    both = grouped_shap(_tanh_model(1, 1), cases, X, tree, clusters)
    # the one-copy model gives the unused copy nothing and its copy the whole group
    np.testing.assert_allclose(one[0]["a_copy"], 0, atol=1e-12)
    np.testing.assert_allclose(one[1][1], one[0]["a"], atol=1e-12)
    for values, groups, base in (other, both):
        np.testing.assert_allclose(groups[1], one[1][1], atol=1e-9)  # group sum = what one copy gets
        np.testing.assert_allclose(values["c"], one[0]["c"], atol=1e-9)  # nothing leaks outside the group
    np.testing.assert_allclose(both[0]["a"], both[0]["a_copy"], atol=1e-9)  # split evenly inside
    # efficiency: values sum to f(x) - E f over the background
    f = _tanh_model(1, 1)
    np.testing.assert_allclose(both[0].sum(axis=1) + both[2], f(cases), atol=1e-9)
    np.testing.assert_allclose(both[2], f(X).mean(), atol=1e-9)
    # independent-feature SHAP (exact Shapley values, same background): the outside feature's value changes
    import shap
    exact = shap.explainers.Exact(lambda Z: f(pd.DataFrame(Z, columns=X.columns)),
                                  shap.maskers.Independent(X.to_numpy(), max_samples=100))(cases.to_numpy())
    assert np.max(np.abs(exact.values[:, 2] - one[0]["c"].to_numpy())) > 0.01
    summary = shap_summary(*both[:2], clusters)
    assert summary["features"].tolist() in (["a, a_copy", "c"], ["c", "a, a_copy"])
    row = summary.set_index("cluster").loc[1]
    assert row["mean_abs_shap_group"] == pytest.approx(both[1][1].abs().mean())


def test_grouped_shap_fixed_column_per_case_and_bad_input():
    X = _twins(n=30)
    clusters, tree = correlation_clusters(X, 0.3)
    fixed = pd.DataFrame({"site": ["A", "B"] * 15})
    shift = {"A": 0.0, "B": 10.0}

    def predict(Z):  # a site-dependent offset: the batch column must reach the model, never be explained
        return Z["site"].map(shift).to_numpy() + Z["a"].to_numpy() + Z["c"].to_numpy()

    values, groups, base = grouped_shap(predict, X.iloc[:4], X, tree, clusters, fixed=fixed.iloc[:4])
    np.testing.assert_allclose(base, [0 + X["a"].mean() + X["c"].mean() + s for s in (0, 10, 0, 10)], atol=1e-9)
    np.testing.assert_allclose(values["c"], X["c"].iloc[:4] - X["c"].mean(), atol=1e-9)
    bad = X.copy()
    bad.iloc[2, 1] = np.nan
    with pytest.raises(ValueError, match="row 2 column 'a_copy'"):
        grouped_shap(predict, bad, X, tree, clusters)


def test_grouped_permutation_importance_of_noise_group_is_zero():
    rng = np.random.default_rng(3)
    n = 300
    s = rng.normal(size=n)
    noise = rng.normal(size=n)
    X = pd.DataFrame({"s1": s, "s2": s + 0.05 * rng.normal(size=n), "n1": noise,
                      "n2": noise + 0.05 * rng.normal(size=n)})
    y = (rng.random(n) < 1 / (1 + np.exp(-2 * s))).astype(int)
    clusters, _ = correlation_clusters(X, 0.3)
    assert clusters["cluster"].tolist() == [1, 1, 2, 2]

    def predict(Z):  # uses one signal copy only: single-feature permutation of s2 would show ~0
        return Z["s1"].to_numpy()

    imp = grouped_permutation_importance(predict, X, y, clusters, roc_auc_score, n_repeats=30, seed=0)
    assert imp["features"].tolist() == ["s1, s2", "n1, n2"]
    noise_row, signal_row = imp.iloc[1], imp.iloc[0]
    assert abs(noise_row["importance_mean"]) < 1e-12  # the model ignores the noise group: exactly no drop
    auc = roc_auc_score(y, X["s1"])
    assert signal_row["score_baseline"] == pytest.approx(auc)
    assert signal_row["importance_mean"] == pytest.approx(auc - 0.5, abs=0.05)  # permuted: AUC ~ 0.5
    again = grouped_permutation_importance(predict, X, y, clusters, roc_auc_score, n_repeats=30, seed=0)
    pd.testing.assert_frame_equal(imp, again)
    with pytest.raises(ValueError, match="n_repeats"):
        grouped_permutation_importance(predict, X, y, clusters, roc_auc_score, n_repeats=0)


def test_odds_ratio_per_sd_matches_statsmodels_by_hand():
    import statsmodels.api as sm
    rng = np.random.default_rng(5)
    n = 200
    X = pd.DataFrame({"volume_ml": rng.gamma(2.0, 10.0, n), "entropy": rng.normal(4, 0.5, n)})
    lp = -0.5 + 0.04 * X["volume_ml"] - 0.8 * X["entropy"] + 3.2
    y = (rng.random(n) < 1 / (1 + np.exp(-lp))).astype(int).to_numpy()
    X.iloc[3, 0] = np.nan  # median-imputed
    out = unpenalised_ratios(X, y=y, penalised={"volume_ml": 0.3, "entropy": -0.1})
    filled = X.fillna(X.median())
    z = (filled - filled.mean()) / filled.std(ddof=1)
    fit = sm.Logit(y, sm.add_constant(z)).fit(disp=0)
    ci = np.exp(fit.conf_int().loc[["volume_ml", "entropy"]].to_numpy())
    np.testing.assert_allclose(out["ratio"], np.exp(fit.params[["volume_ml", "entropy"]]), rtol=1e-8)
    np.testing.assert_allclose(out[["ci_low", "ci_high"]].to_numpy(), ci, rtol=1e-8)
    np.testing.assert_allclose(out["p_value"], fit.pvalues[["volume_ml", "entropy"]], rtol=1e-6)
    # per SD: the per-unit coefficient times the SD
    unit = sm.Logit(y, sm.add_constant(filled)).fit(disp=0).params
    assert out.loc[0, "coefficient"] == pytest.approx(unit["volume_ml"] * filled["volume_ml"].std(ddof=1))
    assert out["measure"].eq("odds ratio per SD").all() and out["note"].eq("").all()
    assert out["penalised_coefficient"].tolist() == [0.3, -0.1]
    assert out["converged"].all() and out["n"].eq(n).all() and out["n_events"].eq(y.sum()).all()


def test_separation_gives_a_note_not_absurd_numbers():
    rng = np.random.default_rng(0)
    x = rng.normal(size=60)
    X = pd.DataFrame({"x": x, "z": rng.normal(size=60)})
    y = (x > 0).astype(int)  # x separates the outcome perfectly
    out = unpenalised_ratios(X, y=y)
    assert out["ratio"].isna().all() and out["ci_high"].isna().all()
    assert out["note"].str.contains("separation|beyond|converge").all()
    few = unpenalised_ratios(X.iloc[:12], y=np.r_[np.ones(2), np.zeros(10)].astype(int))
    assert few["ratio"].isna().all() and few["note"].str.contains("2 events").all()
    with pytest.raises(ValueError, match="either y"):
        unpenalised_ratios(X, y=y, time=np.ones(60), event=y)


def test_hazard_ratio_per_sd_matches_lifelines_by_hand():
    from lifelines import CoxPHFitter
    from lifelines.datasets import load_rossi
    rossi = load_rossi()
    X = rossi[["age", "prio"]].astype(float)
    out = unpenalised_ratios(X, time=rossi["week"], event=rossi["arrest"])
    df = ((X - X.mean()) / X.std(ddof=1)).assign(week=rossi["week"], arrest=rossi["arrest"])
    cph = CoxPHFitter().fit(df, "week", "arrest")
    np.testing.assert_allclose(out["ratio"], np.exp(cph.params_[["age", "prio"]]), rtol=1e-6)
    np.testing.assert_allclose(out["ci_low"], cph.summary.loc[["age", "prio"], "exp(coef) lower 95%"], rtol=1e-6)
    assert out["measure"].eq("hazard ratio per SD").all()
    assert out.loc[0, "ratio"] < 1 < out.loc[1, "ratio"]  # older: fewer re-arrests; more priors: more


def _study_table(n=90, seed=2, survival=False):
    rng = np.random.default_rng(seed)
    size = rng.normal(size=n)
    table = pd.DataFrame({"case_id": [f"c{i:03d}" for i in range(n)],
                          "cohort": np.where(np.arange(n) < 60, "site_A", "site_B"),
                          "volume": size, "diameter": size + 0.05 * rng.normal(size=n),
                          "entropy": rng.normal(size=n), "noise": rng.normal(size=n)})
    if survival:
        table["time"] = np.round(rng.exponential(400 * np.exp(-0.8 * size)) + 1)
        table["event"] = (rng.random(n) < 0.8).astype(int)
    else:
        table["outcome"] = (rng.random(n) < 1 / (1 + np.exp(-1.5 * size))).astype(int)
    return table


SETTINGS = {"cluster_threshold": 0.3, "max_evals": 60, "max_background": 30, "max_cases": 20}


def test_explain_model_binary_tables_and_dossier_block(tmp_path):

    from acceflow.models.pipeline import build_model, fitted_coefficients
    from acceflow.report.explain_section import grouped_explanations
    from acceflow.report.view import ResultsView
    from acceflow.study.explanations import EXPLAIN_TABLES, explain_model
    from acceflow.study.results import Results

    table = _study_table()
    feats = ["volume", "diameter", "entropy", "noise"]
    train = table[table["cohort"] == "site_A"]
    model = build_model(Cs=[1.0], inner_folds=3).fit(train[feats], train["outcome"])
    coefs, _ = fitted_coefficients(model, feats)
    card = {"model": "imaging", "features": feats, "coefficients": coefs, "training_cohorts": ["site_A"],
            "outcome": {"type": "binary", "column": "outcome", "positive": 1}, "harmonisation": {"method": "none"}}
    out = explain_model(model, card, table, ["train", "site_B"], SETTINGS, seed=1, n_repeats=3)
    assert set(out) == set(EXPLAIN_TABLES)
    clusters = out["FEATURE_CLUSTERS"].set_index("feature")["cluster"]
    assert clusters["volume"] == clusters["diameter"] != clusters["entropy"]
    shap_values, groups = out["SHAP_VALUES"], out["SHAP_GROUPS"]
    assert len(shap_values) == 20 * 4 and len(groups) == 20 * 3
    # per case, the SHAP values sum to the log-odds minus the base value (efficiency)
    per_case = shap_values.groupby("case_id")["shap"].sum()
    first = groups.drop_duplicates("case_id").set_index("case_id")
    np.testing.assert_allclose(per_case[first.index], first["output"] - first["base_value"], atol=1e-8)
    p = model.predict_proba(train[feats].iloc[:20])[:, 1]
    np.testing.assert_allclose(first["output"], np.log(p / (1 - p)), atol=1e-8)
    imp = out["GROUPED_IMPORTANCE"]
    assert set(imp["cohort"]) == {"train", "site_B"} and imp["score"].eq("ROC AUC").all()
    size_row = imp[(imp["cohort"] == "train") & imp["features"].eq("volume, diameter")].iloc[0]
    assert size_row["importance_mean"] == imp[imp["cohort"] == "train"]["importance_mean"].max()
    ratios = out["REFIT_RATIOS"]
    selected = [f for f in feats if abs(coefs[f]) > 1e-8]
    assert ratios["feature"].tolist() == selected and ratios["n_selected"].eq(len(selected)).all()
    # the dossier block shows what was written, with the misattribution sentence
    for name, frame in out.items():
        path = tmp_path / getattr(Results, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, sep="\t", index=False)
    (tmp_path / Results.MODEL_CARD).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / Results.MODEL_CARD).write_text(__import__("json").dumps(card))
    html = grouped_explanations(ResultsView(tmp_path, {}, ["train", "site_B"]))
    assert "Independent-feature SHAP misattributes credit between correlated features" in html
    assert "unpenalised refit on the " + str(len(selected)) + " selected features" in html
    assert "volume (+1 correlated)" in html or "diameter (+1 correlated)" in html
    assert grouped_explanations(ResultsView(tmp_path / "none", {}, ["train"])) == ""


def test_explain_model_survival_uses_linear_predictor_and_hazard_ratios():
    from acceflow.models.cox import survival_y
    from acceflow.study.explanations import explain_model
    from acceflow.study.survival_training import build_survival_search

    table = _study_table(survival=True)
    feats = ["volume", "entropy", "noise"]
    train = table[table["cohort"] == "site_A"]
    model = build_survival_search(penalizers=[0.05], inner_folds=3).fit(
        train[feats], survival_y(train["time"], train["event"]))
    coefs = dict(zip(feats, model.best_estimator_[-1].coef_))
    card = {"features": feats, "coefficients": coefs, "training_cohorts": ["site_A"],
            "outcome": {"type": "survival", "time": "time", "event": "event"}}
    out = explain_model(model, card, table, ["train"], SETTINGS, n_repeats=2)
    groups = out["SHAP_GROUPS"].drop_duplicates("case_id")
    np.testing.assert_allclose(groups["output"], model.predict(train[feats].iloc[:20]), atol=1e-8)
    assert out["GROUPED_IMPORTANCE"]["score"].eq("Harrell's C").all()
    ratios = out["REFIT_RATIOS"].set_index("feature")
    assert ratios["measure"].eq("hazard ratio per SD").all()
    assert ratios.loc["volume", "ratio"] > 1.5 and ratios.loc["volume", "ci_low"] > 1  # larger lesions: worse


@pytest.mark.integration
def test_demo_run_writes_grouped_explanations_and_shows_them(demo_run):
    """The explain rule of the demo DAG (primary model and clinical comparator), read from the session's run."""
    from acceflow.study.results import Results, path_in

    _, _, results = demo_run
    card = __import__("json").loads(path_in(results, Results.MODEL_CARD).read_text())
    for model, features in ((None, card["features"]), ("clinical", ["age", "sex", "lesion_grade"])):
        clusters = pd.read_csv(path_in(results, Results.FEATURE_CLUSTERS, model), sep="\t")
        assert clusters["feature"].tolist() == features
        values = pd.read_csv(path_in(results, Results.SHAP_VALUES, model), sep="\t")
        groups = pd.read_csv(path_in(results, Results.SHAP_GROUPS, model), sep="\t")
        assert len(values) == 60 * len(features) and len(groups) == 60 * clusters["cluster"].nunique()
        first = groups.drop_duplicates("case_id").set_index("case_id")
        np.testing.assert_allclose(values.groupby("case_id")["shap"].sum()[first.index],
                                   first["output"] - first["base_value"], atol=1e-6)
        importance = pd.read_csv(path_in(results, Results.GROUPED_IMPORTANCE, model), sep="\t")
        assert set(importance["cohort"]) == {"train", "site_B", "site_C"}
        ratios = pd.read_csv(path_in(results, Results.REFIT_RATIOS, model), sep="\t")
        assert ratios["measure"].eq("odds ratio per SD").all()
    assert (results / "report/figures/grouped_shap.png").is_file()
    html = (results / "report/dossier.html").read_text()
    assert 'id="explanations"' in html and "Independent-feature SHAP misattributes" in html
