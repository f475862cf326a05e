"""The synthetic stage's study logic (acceflow.study.synthetic) and SMOTE (acceflow.models.synthetic):
the split never touches an external cohort, synthetic cases enter training folds only, the audit
flags a copying generator, bad input names the fix."""
import numpy as np
import pandas as pd
import pytest

from acceflow.models.synthetic import smote_balance, smote_samples
from acceflow.study import synthetic as SS
from acceflow.study.settings import ConfigError, check_config, model_names, validate_config
from acceflow.study.training import train


def _table(seed=0, n_train=90, n_external=40):
    rng = np.random.default_rng(seed)

    def cohort(name, n):
        y = np.tile([0, 1, 1], n // 3 + 1)[:n]
        X = rng.normal(size=(n, 4)) + 1.0 * y[:, None] * np.array([1, 0.5, 0, 0])
        d = pd.DataFrame(X * [1, 10, 100, 1000], columns=["f0", "f1", "f2", "f3"])
        d.insert(0, "outcome", np.where(y == 1, "YES", "NO"))
        d.insert(0, "cohort", name)
        d.insert(0, "case_id", [f"{name}_{i}" for i in range(n)])
        return d

    return pd.concat([cohort("A", n_train), cohort("B", n_external)], ignore_index=True)


def _config(**synthetic):
    config = {"results": "r", "input": {"images": None, "features": "t.tsv"},
              "cohorts": {"column": "cohort", "train": ["A"], "external": ["B"]},
              "outcome": {"type": "binary", "column": "outcome", "positive": "YES"},
              "synthetic": {"enabled": True, **synthetic},
              "validation": {"cv_folds": 3, "cv_repeats": 1}, "model": {"Cs": [1.0], "inner_folds": 3}}
    validate_config(config)
    check_config(config)
    return config


def test_smote_cases_interpolate_within_their_class_in_the_features_units():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(20), np.ones(10)]
    X = np.c_[rng.normal(size=30) + 5 * y, rng.normal(size=30) * 1000]
    X_new, y_new = smote_samples(X, y, {0: 7, 1: 13}, seed=1)
    assert X_new.shape == (20, 2) and np.sum(y_new == 0) == 7 and np.sum(y_new == 1) == 13
    for c in (0, 1):  # an interpolation stays inside its class's bounding box
        real, new = X[y == c], X_new[y_new == c]
        assert (new >= real.min(axis=0) - 1e-9).all() and (new <= real.max(axis=0) + 1e-9).all()
    Xb, yb = smote_balance(pd.DataFrame(X, columns=["a", "b"]), y, seed=1)
    assert list(Xb.columns) == ["a", "b"] and np.sum(yb == 0) == np.sum(yb == 1) == 20
    with pytest.raises(ValueError, match="class 1 has 1 real cases; it needs at least 2"):
        smote_samples(X[:21], y[:21], {1: 3})


def test_the_split_holds_out_a_stratified_fraction_of_training_cases_and_never_an_external_case():
    table, config = _table(), _config(holdout_fraction=0.2, n_synthetic=60, class_ratio="balanced")
    split, syn = SS.generate(table, config)
    assert set(split["case_id"]) == set(table.loc[table["cohort"] == "A", "case_id"])  # B never enters
    assert (split["role"] == "holdout").sum() == 18
    assert split.groupby("role")["label"].mean().round(2).to_dict() == {"generator_train": 0.67, "holdout": 0.67}
    assert len(syn) == 60 and syn["label"].value_counts().to_dict() == {0: 30, 1: 30}
    assert list(syn.columns) == ["case_id", "label", "f0", "f1", "f2", "f3"] and syn["case_id"].str.startswith("syn_").all()
    # prevalence keeps the generator-training cases' class shares (48 of 72 positive)
    _, syn = SS.generate(table, _config())
    assert len(syn) == 72 and syn["label"].sum() == 48


def test_too_few_training_lesions_or_an_empty_class_name_the_minimum():
    table = _table(n_train=12)
    with pytest.raises(ConfigError, match=f"needs at least {SS.MIN_GENERATOR_CASES} per class"):
        SS.generate(table, _config())
    table = _table()
    table.loc[table["cohort"] == "A", "outcome"] = "NO"
    with pytest.raises(ConfigError, match="outcome class 1 has no case"):
        SS.generate(table, _config())


def test_the_audit_of_smote_and_of_a_copying_generator():
    table, config = _table(), _config()
    split, syn = SS.generate(table, config)
    out = SS.audit(table, split, syn, config)
    fid = out["fidelity"]
    assert set(fid["stratum"]) == {"all", "0", "1"} and len(fid) == 12
    assert {"ks_statistic", "ks_qvalue", "wasserstein", "wasserstein_std", "mutual_information_real",
            "mutual_information_synthetic"} <= set(fid.columns)
    s = out["summary"]
    assert s["n_generator_train"] == 72 and s["n_holdout"] == 18 and s["n_synthetic"] == 72
    assert s["share_synthetic_values_outside_real_range"] == 0  # SMOTE interpolates
    assert s["intensity_range"] == [] and s["intensity_share_within_real_range"] is None  # no first-order features
    assert len(out["distances"]) == 72 + 18 and len(out["correlations"]) == 6
    # a "generator" that returns copies of its training cases: memorised, by the stated rule
    train_ids = split.loc[split["role"] == "generator_train", "case_id"]
    real = table.set_index("case_id").loc[train_ids]
    copies = real[["f0", "f1", "f2", "f3"]].reset_index(drop=True)
    copies.insert(0, "label", (real["outcome"] == "YES").astype(int).to_numpy())
    copies.insert(0, "case_id", [f"syn_{i}" for i in range(len(copies))])
    s = SS.audit(table, split, copies, config)["summary"]
    assert s["memorised"] and s["share_too_close"] == 1 and s["n_exact_copies"] == 72 and s["memorisation_ratio"] == 0
    assert s["share_features_ks_pass"] == 1 and s["faithful"]  # copies are faithful; memorisation tells them apart


def test_the_audit_reads_the_lesions_intensity_range_per_modality():
    table, config = _table(), _config()
    rng = np.random.default_rng(3)
    lo = rng.uniform(-100, 0, len(table))
    table["PET_original_firstorder_Minimum"], table["PET_original_firstorder_Maximum"] = lo, lo + 200
    split, syn = SS.generate(table, config)
    syn["PET_original_firstorder_Maximum"] += 1000  # every synthetic lesion brighter than any real one
    s = SS.audit(table, split, syn, config)["summary"]
    rows = {(r["image"], r["stratum"]): r for r in s["intensity_range"]}
    assert set(rows) == {("PET", "all"), ("PET", "0"), ("PET", "1")}
    assert rows[("PET", "all")]["share_within"] == 0 and s["intensity_share_within_real_range"] == 0
    assert rows[("PET", "all")]["synthetic_high"] > 1000 > rows[("PET", "all")]["real_high"]


def test_synthetic_cases_enter_training_folds_only_and_comparators_are_named():
    table, config = _table(), _config()
    assert model_names(config) == ("imaging", ["synthetic_tstr", "synthetic_augmented", "smote_augmented"])
    seen = []

    def spy(X, y):  # records what each fit is given
        seen.append(set(X.index))
        return X, y

    _, _, predictions, folds = train(table, config, None, kind="imaging", augment=spy)
    n = 90
    # each fit of the search (3 inner training folds, then its refit) is augmented from its own real cases:
    # 3 outer training folds of 60, then the final model on all 90
    assert [len(s) for s in seen] == [40, 40, 40, 60] * 3 + [60, 60, 60, 90]
    refits = [seen[i] for i in (3, 7, 11, 15)]
    for k, outer in enumerate(refits):
        inner = seen[4 * k: 4 * k + 3]
        assert all(s < outer for s in inner)
        # the inner validation folds are real cases of the outer training fold, each validated once
        assert set().union(*[outer - s for s in inner]) == outer
    # the out-of-fold predictions cover the real cases only, each test fold disjoint from its training fold
    assert len(predictions) == n and predictions["case_id"].str.startswith("A_").all()
    tested = [set(range(n)) - s for s in refits[:3]]
    assert set().union(*tested) == set(range(n)) and all(len(t) == 30 for t in tested)
    _, split_syn = SS.generate(table, config)
    model, card, predictions, _ = SS.train_arm(table, split_syn, config, None, "synthetic_tstr")
    assert card["model"] == "synthetic_tstr" and card["role"] == "comparator" and "optimistic" in card["synthetic"]
    assert len(predictions) == n and card["n_train"] == n


def test_the_synthetic_stage_refuses_what_it_cannot_do():
    with pytest.raises(ConfigError, match="binary outcomes"):
        cfg = _config()
        cfg["outcome"] = {"type": "survival", "time": "t", "event": "e"}
        model_names(cfg)
    with pytest.raises(ConfigError, match="ComBat"):
        cfg = _config()
        cfg["model"]["harmonisation"] = "combat"
        model_names(cfg)


def test_the_dossier_section_shows_the_audit_the_verdicts_with_their_rules_and_the_comparison(tmp_path):
    """The section reads the audit rule's files (written here by the library, as the rule writes them) and a
    comparison table; it is left out when the stage did not run."""
    import json

    from acceflow.report.synthetic_section import synthetic_section
    from acceflow.report.view import ResultsView
    from acceflow.study.results import Results, fill

    table, config = _table(), _config()
    view = ResultsView(tmp_path, config, ["train", "B"])
    assert synthetic_section(view) is None
    split, syn = SS.generate(table, config)
    out = SS.audit(table, split, syn, config)
    for key, template in (("fidelity", Results.SYNTHETIC_FIDELITY), ("correlations", Results.SYNTHETIC_CORRELATIONS),
                          ("distances", Results.SYNTHETIC_DISTANCES)):
        (tmp_path / template).parent.mkdir(parents=True, exist_ok=True)
        out[key].to_csv(tmp_path / template, sep="\t", index=False)
    (tmp_path / Results.SYNTHETIC_SUMMARY).write_text(json.dumps(out["summary"]))
    comparison = pd.DataFrame({"model": ["imaging", "synthetic_augmented"], "arm": ["TRTR (real only)", "real + synthetic"],
                               "n": [40, 40], "n_events": [26, 26], "auc": [0.70, 0.80], "auc_ci_low": [0.5, 0.6],
                               "auc_ci_high": [0.9, 0.95], "reference": ["imaging", "imaging"],
                               "auc_difference": [np.nan, 0.10], "difference_se": [np.nan, 0.04], "z": [np.nan, 2.5],
                               "p_value": [np.nan, 0.012]})
    path = tmp_path / fill(Results.SYNTHETIC_COMPARISON, cohort="B")
    path.parent.mkdir(parents=True, exist_ok=True)
    comparison.to_csv(path, sep="\t", index=False)
    section = synthetic_section(ResultsView(tmp_path, config, ["train", "B"]))
    html = section.html
    assert section.id == "synthetic" and "Synthetic data (analytical validity)" in html
    assert "<td>Memorised</td><td>yes</td>" in html.replace("\n", "")  # SMOTE sits near its training cases
    assert "<td>Helpful</td><td>yes</td>" in html.replace("\n", "")  # external AUC up with p 0.012 < 0.05
    assert html.count("<img") == 2 and "5th percentile of holdout distances" in html
