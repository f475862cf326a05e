"""Survival model training, metrics, and calibration / decision curves at a horizon."""
import numpy as np
import pandas as pd
import pytest

from acceflow.metrics.survival_utility import calibration_at, grouped_calibration_at, survival_decision_curve
from acceflow.study.survival_training import (
    default_horizons,
    predict_survival_cohort,
    survival_cohort_metrics,
    train_survival,
)


def _cohort(n=160, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    hazard = np.exp(0.9 * x[:, 0]) / 800.0
    t_event = rng.exponential(1 / hazard)
    t_cens = rng.uniform(200, 2500, n)
    df = pd.DataFrame(x, columns=["f0", "f1", "f2", "f3"])
    df.insert(0, "case_id", [f"c{i}" for i in range(n)])
    df.insert(1, "cohort", np.where(np.arange(n) < 110, "A", "B"))
    df["time"] = np.ceil(np.minimum(t_event, t_cens))
    df["event"] = (t_event <= t_cens).astype(int)
    return df


CONFIG = {"seed": 0, "cohorts": {"train": ["A"], "external": ["B"]},
          "outcome": {"type": "survival", "time": "time", "event": "event", "horizons": None},
          "model": {"cox_penalizers": [0.01, 0.1], "cox_l1_ratio": 0.0, "inner_folds": 3, "correlation_threshold": None},
          "validation": {"cv_folds": 3, "cv_repeats": 1}, "utility": {"horizon": None}}


def test_cox_model_ranks_by_the_true_hazard_and_validates():
    df = _cohort()
    model, card, preds, folds = train_survival(df, CONFIG, ["f0", "f1", "f2", "f3"], "4 features")
    assert abs(card["coefficients"]["f0"]) == max(abs(v) for v in card["coefficients"].values())
    assert card["coefficients"]["f0"] > 0 and card["horizons_days"] == default_horizons(preds["time"], preds["event"])
    assert set(preds.columns) == {"case_id", "time", "event", "risk", "risk_at_horizon"}
    ext = predict_survival_cohort(model, card, df, "B")
    m = survival_cohort_metrics(ext, card, n_boot=200)
    assert m["c_index"] > 0.65 and m["c_index_ci_low"] < m["c_index"] < m["c_index_ci_high"]
    assert m["hr_per_sd"] > 1 and 0 < m["uno_c"] < 1
    assert ext["risk_at_horizon"].between(0, 1).all()


def test_survival_calibration_of_true_risks():
    """Risks computed from the generating model are calibrated: O/E near 1, slope near 1."""
    rng = np.random.default_rng(3)
    n, t = 4000, 730.0
    lp = rng.normal(size=n)
    hazard = np.exp(lp) / 1500.0
    t_event = rng.exponential(1 / hazard)
    t_cens = rng.uniform(300, 3000, n)
    time, event = np.minimum(t_event, t_cens), (t_event <= t_cens).astype(int)
    risk = 1 - np.exp(-hazard * t)
    cal = calibration_at(time, event, risk, lp, t)
    assert cal["observed_expected_ratio"] == pytest.approx(1.0, abs=0.08)
    assert cal["calibration_slope_ci_low"] < 1 < cal["calibration_slope_ci_high"]
    assert cal["ici"] < 0.03
    groups = grouped_calibration_at(time, event, risk, t, n_groups=5)
    assert np.allclose(groups["observed"], groups["mean_predicted"], atol=0.05)
    # over-confident risks (linear predictor doubled) give a slope well below 1
    over = calibration_at(time, event, 1 - np.exp(-np.exp(2 * lp) / 1500.0 * t), 2 * lp, t)
    assert over["calibration_slope"] < 0.6


def test_survival_decision_curve_without_censoring_equals_binary_net_benefit():
    from acceflow.metrics.decision_curve import decision_curve

    rng = np.random.default_rng(1)
    time = rng.exponential(500, 300) + 1
    event = np.ones(300, int)
    risk = np.clip(1 - np.exp(-365 / 500) + rng.normal(0, 0.2, 300), 0.01, 0.99)
    thresholds = np.array([0.2, 0.4, 0.6])
    surv = survival_decision_curve(time, event, risk, 365.0, thresholds)
    binary = decision_curve((time <= 365).astype(int), risk, thresholds)
    np.testing.assert_allclose(surv["net_benefit_model"], binary["net_benefit_model"], atol=1e-12)
    np.testing.assert_allclose(surv["net_benefit_all"], binary["net_benefit_all"], atol=1e-12)


def test_partial_log_likelihood_matches_lifelines():
    from lifelines import CoxPHFitter

    from acceflow.study.survival_training import partial_log_likelihood

    df = _cohort(n=200, seed=4)
    df["time"] = df["time"] + np.arange(len(df)) * 1e-3  # no ties: Breslow = exact
    cph = CoxPHFitter().fit(df[["f0", "time", "event"]], "time", "event")
    lp = cph.params_["f0"] * df["f0"].to_numpy()
    assert partial_log_likelihood(df["time"], df["event"], lp) * df["event"].sum() == pytest.approx(
        cph.log_likelihood_, rel=1e-6)


def test_grouped_calibration_keeps_groups_whose_follow_up_ends_before_the_horizon():
    """Hand-made groups (predicted risks split in two halves): the low-risk half is followed past
    the horizon (KM by hand: deaths at 50 and 150 among 4 -> S(200) = 3/4 * 2/3 = 1/2); the high-risk
    half ends before it, censored (no KM estimate there: NaN and a note, the rule does not fail),
    or with a death (S = 0 from then on: observed risk 1)."""
    time = np.array([50, 150, 300, 400, 20, 60, 80, 90], float)
    risk = np.array([0.1, 0.1, 0.2, 0.2, 0.7, 0.8, 0.8, 0.9])
    censored_last = grouped_calibration_at(time, np.array([1, 1, 0, 0, 1, 1, 0, 0]), risk, 200, n_groups=2)
    assert censored_last["observed"].iloc[0] == pytest.approx(0.5)
    assert np.isnan(censored_last["observed"].iloc[1]) and "before the horizon 200" in censored_last["note"].iloc[1]
    assert censored_last["note"].iloc[0] == "" and list(censored_last["n"]) == [4, 4]
    death_last = grouped_calibration_at(time, np.array([1, 1, 0, 0, 1, 1, 0, 1]), risk, 200, n_groups=2)
    assert death_last["observed"].iloc[1] == pytest.approx(1.0) and death_last["note"].iloc[1] == ""
