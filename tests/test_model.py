"""Model training, internal validation and the frozen-model file."""
import numpy as np
import pandas as pd
import pytest

from acceflow.models.persistence import load_model, save_model
from acceflow.models.pipeline import build_model, internal_validation
from acceflow.study.training import CohortError, predict_cohort, train


def _table(n=120, p=30, seed=0, signal=1.5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    logit = signal * X[:, 0] - 0.5
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(p)])
    df.insert(0, "case_id", [f"c{i}" for i in range(n)])
    df.insert(1, "cohort", np.where(np.arange(n) < 80, "A", "B"))
    df.insert(2, "y", np.where(y, "pos", "neg"))
    return df


CONFIG = {
    "seed": 1, "features": None, "clinical": [],
    "cohorts": {"train": ["A"], "external": ["B"]},
    "outcome": {"type": "binary", "column": "y", "positive": "pos"},
    "model": {"learner": "l1_logistic", "learners": None, "Cs": [0.03, 0.1, 0.3, 1.0], "inner_folds": 3,
              "scoring": "roc_auc", "include_clinical": False, "selection": "none", "n_select": 5,
              "correlation_threshold": None, "primary": "imaging", "comparators": "auto", "threshold": "youden",
              "threshold_target": None},
    "validation": {"cv_folds": 3, "cv_repeats": 2},
    "reproducibility": {"filter_model_features": True},
}


def test_l1_model_selects_the_informative_feature():
    df = _table(n=300)
    X, y = df.filter(like="f"), (df["y"] == "pos").astype(int).to_numpy()
    model = build_model(inner_folds=3, seed=0).fit(X, y)
    coef = model.best_estimator_.named_steps["classifier"].coef_[0]
    assert abs(coef[0]) == np.abs(coef).max() and coef[0] > 0


def test_nested_cv_on_noise_is_not_optimistic():
    """With no signal, out-of-fold AUC stays near 0.5 (every step is fitted inside the folds)."""
    from sklearn.metrics import roc_auc_score

    df = _table(n=100, p=200, signal=0.0, seed=3)
    X, y = df.filter(like="f"), (df["y"] == "pos").astype(int).to_numpy()
    oof, folds = internal_validation(X, y, lambda: build_model(inner_folds=3, seed=0), folds=3, repeats=1)
    assert abs(roc_auc_score(y, oof) - 0.5) < 0.15
    assert list(folds.columns) == ["repeat", "fold", "n", "n_events", "auc"] and len(folds) == 3


def test_train_is_deterministic_and_uses_stable_features():
    df = _table()
    m1, card, preds, folds = train(df, CONFIG, stable=["f0", "f1", "f2"])
    _, card2, preds2, _ = train(df, CONFIG, stable=["f0", "f1", "f2"])
    pd.testing.assert_frame_equal(preds, preds2)
    assert card["features"] == ["f0", "f1", "f2"] and "stable" in card["feature_selection"]
    assert card["n_train"] == 80 and card["validation"] == "external"
    assert set(preds.columns) == {"case_id", "outcome", "probability"} and len(preds) == 80
    ext = predict_cohort(m1, card, df, "B")
    assert len(ext) == 40 and ext["probability"].between(0, 1).all()


def test_single_class_training_cohort_is_refused():
    df = _table()
    df["y"] = "neg"
    with pytest.raises(CohortError, match="0 positive"):
        train(df, CONFIG)


def test_model_file_hash_is_checked(tmp_path):
    df = _table()
    model = build_model(inner_folds=3).fit(df.filter(like="f"), (df["y"] == "pos").astype(int))
    digest = save_model(model, tmp_path / "m.skops")
    assert load_model(tmp_path / "m.skops", digest) is not None
    with open(tmp_path / "m.skops", "ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(ValueError, match="differs from the model card"):
        load_model(tmp_path / "m.skops", digest)


def test_clinical_and_fusion_models_use_their_columns():
    df = _table()
    df["age"] = df["f0"] * 0.5 + np.random.default_rng(5).normal(size=len(df))
    config = {**CONFIG, "clinical": ["age"]}
    from acceflow.study.settings import model_names

    assert model_names(config) == ("imaging", ["clinical", "combined_early", "combined_late"])
    _, card_c, _, _ = train(df, config, kind="clinical")
    assert card_c["features"] == ["age"] and card_c["role"] == "comparator"
    _, card_e, _, _ = train(df, config, kind="combined_early")
    assert card_e["features"][-1] == "age" and len(card_e["features"]) == 31
    model_l, card_l, preds_l, _ = train(df, config, kind="combined_late")
    assert card_l["chosen"]["estimator"] == "StackingClassifier" and preds_l["probability"].between(0, 1).all()
    assert predict_cohort(model_l, card_l, df, "B")["probability"].between(0, 1).all()
    with pytest.raises(ValueError, match="clinical covariates"):
        model_names({**CONFIG, "model": {**CONFIG["model"], "primary": "clinical"}})


def test_saved_model_file_is_byte_reproducible(tmp_path):
    """Fit times are dropped from the file: the same data and seed give the same SHA-256."""
    digests = [save_model(train(_table(), CONFIG)[0], tmp_path / f"m{i}.skops") for i in range(2)]
    assert digests[0] == digests[1]
