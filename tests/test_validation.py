"""Thresholds, 2x2 metrics with Wilson intervals, and Harrell's bootstrap optimism correction."""
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from statsmodels.stats.proportion import proportion_confint

from acceflow.metrics.discrimination import brier_score
from acceflow.metrics.validation import (
    DEFAULT_METRICS,
    auc_metric,
    calibration_slope_metric,
    optimism_corrected,
    stratified_bootstrap_indices,
    threshold_for_sensitivity,
    threshold_for_specificity,
    threshold_metrics,
    wilson_interval,
    youden_threshold,
)
from acceflow.models.pipeline import build_model

# Hand example: scores ascending, outcome 0 0 1 0 1 1.
Y = [0, 0, 1, 0, 1, 1]
P = [0.1, 0.2, 0.3, 0.4, 0.6, 0.8]


# ---------------------------------------------------------------------------- thresholds

def test_youden_hand_example_ties_go_to_lowest_threshold():
    # J at each threshold: 0.1 -> 0, 0.2 -> 1/3, 0.3 -> 2/3, 0.4 -> 1/3, 0.6 -> 2/3, 0.8 -> 1/3
    assert youden_threshold(Y, P) == 0.3


def test_youden_unique_maximum_and_perfect_separation():
    # J: 0.1 -> 0, 0.2 -> 1/3, 0.3 -> 2/3 (unique maximum), 0.35 -> 1/3, 0.4 -> 0, 0.9 -> 1/3
    assert youden_threshold([0, 0, 1, 1, 0, 1], [0.1, 0.2, 0.3, 0.35, 0.4, 0.9]) == 0.3
    assert youden_threshold([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9]) == 0.7


def test_youden_agrees_with_roc_curve_brute_force():
    from sklearn.metrics import roc_curve
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    p = np.round(rng.random(200) * 0.5 + 0.3 * y, 2)  # ties on purpose
    fpr, tpr, thr = roc_curve(y, p, drop_intermediate=False)
    j = tpr - fpr
    best = thr[j >= j.max() - 1e-12].min()
    assert youden_threshold(y, p) == pytest.approx(best)


def test_threshold_for_sensitivity_and_specificity():
    # sensitivity: 1 up to 0.3, 2/3 at 0.4 and 0.6, 1/3 at 0.8
    assert threshold_for_sensitivity(Y, P, 1.0) == 0.3
    assert threshold_for_sensitivity(Y, P, 0.6) == 0.6
    assert threshold_for_sensitivity(Y, P, 0.2) == 0.8
    # specificity: 0 at 0.1, 1/3 at 0.2, 2/3 at 0.3, 2/3 at 0.4, 1 from 0.6
    assert threshold_for_specificity(Y, P, 0.5) == 0.3
    assert threshold_for_specificity(Y, P, 0.9) == 0.6
    assert threshold_for_specificity(Y, P, 1.0) == 0.6
    # the chosen thresholds do reach their targets
    assert threshold_metrics(Y, P, threshold_for_specificity(Y, P, 0.9))["specificity"] >= 0.9


def test_threshold_for_specificity_above_every_prediction():
    thr = threshold_for_specificity([1, 0], [0.2, 0.9], 1.0)
    assert thr > 0.9 and thr == np.nextafter(0.9, 1)
    assert threshold_metrics([1, 0], [0.2, 0.9], thr)["specificity"] == 1.0


@pytest.mark.parametrize("target", [0, -0.1, 1.5, "a", float("nan")])
def test_threshold_target_validated(target):
    with pytest.raises(ValueError, match="target"):
        threshold_for_sensitivity(Y, P, target)
    with pytest.raises(ValueError, match="target"):
        threshold_for_specificity(Y, P, target)


def test_thresholds_need_both_classes_and_valid_scores():
    with pytest.raises(ValueError, match="single class"):
        youden_threshold([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="same shape"):
        youden_threshold([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="finite"):
        youden_threshold([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError, match="only 0 and 1"):
        youden_threshold([0, 2], [0.1, 0.2])


# ---------------------------------------------------------------------------- 2x2 metrics

def test_wilson_interval_hand_computation():
    # 8/10, z = 1.959964: centre = (8 + z^2/2)/(10 + z^2), half = z/(10 + z^2) sqrt(8*2/10 + z^2/4)
    z = 1.959963984540054
    centre = (8 + z**2 / 2) / (10 + z**2)
    half = z / (10 + z**2) * math.sqrt(8 * 2 / 10 + z**2 / 4)
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(centre - half, abs=1e-12) and high == pytest.approx(centre + half, abs=1e-12)
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)
    ref = proportion_confint(8, 10, alpha=0.05, method="wilson")
    assert (low, high) == pytest.approx(ref, abs=1e-12)
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == pytest.approx(1.0)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    with pytest.raises(ValueError, match="successes <= n"):
        wilson_interval(3, 2)


def test_threshold_metrics_counts_and_intervals():
    # 10 cases (8 above threshold) and 10 controls (3 above threshold)
    y = [1] * 10 + [0] * 10
    p = [0.9] * 8 + [0.1] * 2 + [0.8] * 3 + [0.2] * 7
    r = threshold_metrics(y, p, 0.5)
    assert (r["tp"], r["fn"], r["fp"], r["tn"], r["n"]) == (8, 2, 3, 7, 20)
    assert r["threshold"] == 0.5
    assert r["sensitivity"] == 0.8 and r["specificity"] == 0.7
    assert r["ppv"] == pytest.approx(8 / 11) and r["npv"] == pytest.approx(7 / 9)
    assert (round(r["sensitivity_ci_low"], 3), round(r["sensitivity_ci_high"], 3)) == (0.490, 0.943)
    for name, (num, den) in {"specificity": (7, 10), "ppv": (8, 11), "npv": (7, 9)}.items():
        ref = proportion_confint(num, den, alpha=0.05, method="wilson")
        assert (r[f"{name}_ci_low"], r[f"{name}_ci_high"]) == pytest.approx(ref, abs=1e-12)
    # the boundary is inclusive: prob == threshold counts as positive
    assert threshold_metrics(y, p, 0.9)["tp"] == 8
    # alpha changes the width
    r90 = threshold_metrics(y, p, 0.5, alpha=0.10)
    assert r90["sensitivity_ci_low"] > r["sensitivity_ci_low"]


def test_threshold_metrics_zero_denominators_are_nan():
    r = threshold_metrics([0, 0, 0], [0.1, 0.2, 0.3], 0.5)  # no case, nobody positive
    assert (r["tp"], r["fp"], r["tn"], r["fn"]) == (0, 0, 3, 0)
    for name in ("sensitivity", "ppv"):
        assert math.isnan(r[name]) and math.isnan(r[f"{name}_ci_low"]) and math.isnan(r[f"{name}_ci_high"])
    assert r["specificity"] == 1.0 and r["npv"] == 1.0


def test_threshold_metrics_validation():
    with pytest.raises(ValueError, match="threshold"):
        threshold_metrics(Y, P, float("nan"))
    with pytest.raises(ValueError, match="threshold"):
        threshold_metrics(Y, P, "high")
    with pytest.raises(ValueError, match="alpha"):
        threshold_metrics(Y, P, 0.5, alpha=1.5)


# ---------------------------------------------------------------------------- bootstrap

def test_stratified_bootstrap_keeps_class_counts():
    y = np.r_[np.ones(7, int), np.zeros(13, int)]
    rng = np.random.default_rng(0)
    for _ in range(5):
        idx = stratified_bootstrap_indices(y, rng)
        assert idx.shape == (20,) and y[idx].sum() == 7
    with pytest.raises(ValueError, match="Generator"):
        stratified_bootstrap_indices(y, 0)


def _noise(n=100, p=15, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, p)), columns=[f"f{i}" for i in range(p)])
    return X, np.r_[np.ones(n // 2, int), np.zeros(n - n // 2, int)]


def test_optimism_on_pure_noise_is_large():
    X, y = _noise()
    t = optimism_corrected(X, y, lambda: build_model(Cs=[1.0], inner_folds=3), {"auc": auc_metric},
                           n_boot=30, seed=0).set_index("metric")
    auc = t.loc["auc"]
    assert auc["apparent"] > 0.65  # over-fitted
    assert auc["optimism"] > 0.1
    assert abs(auc["corrected"] - 0.5) < 0.1
    assert auc["corrected"] == pytest.approx(auc["apparent"] - auc["optimism"])
    assert (auc["n_boot"], auc["n_failed"]) == (30, 0)


def test_optimism_near_zero_for_a_strong_single_feature():
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"x": rng.normal(size=150)})
    y = (rng.random(150) < 1 / (1 + np.exp(-2.5 * X["x"]))).astype(int).to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no replicate may fail here
        t = optimism_corrected(X, y, lambda: build_model(Cs=[1.0], inner_folds=3), n_boot=20,
                               seed=0).set_index("metric")
    assert list(t.index) == list(DEFAULT_METRICS) == ["auc", "brier", "calibration_slope"]
    assert t.loc["auc", "apparent"] > 0.85
    assert abs(t.loc["auc", "optimism"]) < 0.02
    assert abs(t.loc["brier", "optimism"]) < 0.01
    assert abs(t.loc["calibration_slope", "optimism"]) < 0.2
    assert list(t.columns) == ["apparent", "optimism", "corrected", "n_boot", "n_failed"]


def test_optimism_deterministic_for_a_seed():
    X, y = _noise(n=60, p=5, seed=2)

    def run(seed):
        return optimism_corrected(X, y, lambda: LogisticRegression(solver="liblinear"),
                                  {"auc": auc_metric, "brier": brier_score},
                                  n_boot=8, seed=seed)

    a, b, c = run(5), run(5), run(6)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["optimism"], c["optimism"])


def test_optimism_counts_failed_replicates():
    X, y = _noise(n=40, p=3)
    calls = {"n": 0}

    def flaky(y_true, prob):
        calls["n"] += 1
        # call 1 is the apparent fit, then two calls per replicate: replicates 2, 4, 6 fail
        if calls["n"] % 4 == 0:
            raise ValueError("boom")
        return 0.0

    with pytest.warns(RuntimeWarning, match="flaky 3/6"):
        t = optimism_corrected(X, y, lambda: LogisticRegression(),
                               {"flaky": flaky, "nan": lambda yt, p: float("nan"), "auc": auc_metric},
                               n_boot=6, seed=0)
    t = t.set_index("metric")
    assert (t.loc["flaky", "n_boot"], t.loc["flaky", "n_failed"]) == (3, 3)
    assert t.loc["nan", "n_boot"] == 0 and math.isnan(t.loc["nan", "corrected"])
    assert (t.loc["auc", "n_boot"], t.loc["auc", "n_failed"]) == (6, 0)


def test_optimism_input_validation():
    X, y = _noise(n=20, p=2)
    make = LogisticRegression
    with pytest.raises(ValueError, match="rows"):
        optimism_corrected(X.iloc[:10], y, make)
    with pytest.raises(ValueError, match="single class"):
        optimism_corrected(X, np.ones(20, int), make)
    with pytest.raises(ValueError, match="n_boot"):
        optimism_corrected(X, y, make, n_boot=0)
    with pytest.raises(ValueError, match="metrics"):
        optimism_corrected(X, y, make, metrics={})
    with pytest.raises(ValueError, match="not callable"):
        optimism_corrected(X, y, make, metrics={"auc": 0.5})
    with pytest.raises(ValueError, match="make_model"):
        optimism_corrected(X, y, "logistic")
    with pytest.raises(ValueError, match="predict_proba"):
        from sklearn.linear_model import LinearRegression
        optimism_corrected(X, y, LinearRegression, n_boot=1)


def test_auc_metric_matches_sklearn():
    from sklearn.metrics import roc_auc_score
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 50)
    p = np.round(rng.random(50), 1)  # ties
    assert auc_metric(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    with pytest.raises(ValueError, match="single class"):
        auc_metric([1, 1], [0.2, 0.3])


def test_calibration_slope_metric_nan_under_separation():
    assert math.isnan(calibration_slope_metric([0, 0, 0, 1, 1, 1], [0.1, 0.2, 0.3, 0.6, 0.7, 0.8]))
    assert calibration_slope_metric([0, 0, 1, 1, 0, 1], [0.2, 0.3, 0.6, 0.8, 0.55, 0.4]) == pytest.approx(
        2.125, abs=1e-3)
