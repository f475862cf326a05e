"""Calibration band and hierarchy level, recalibration, decision-curve bootstrap bands."""
import numpy as np
import pandas as pd
import pytest

from acceflow.metrics.calibration import calibration_curve_band, calibration_level, calibration_summary
from acceflow.metrics.decision_curve import decision_curve, decision_curve_ci
from acceflow.models.recalibration import fit_recalibration, recalibrate_cv


def _sim(n=2000, seed=0, scale=1.0, shift=0.0):
    rng = np.random.default_rng(seed)
    lp = rng.normal(-0.8, 1.2, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-lp))).astype(int)
    return y, 1 / (1 + np.exp(-(scale * lp + shift)))


def test_calibrated_model_reaches_moderate_and_overconfident_does_not():
    y, p = _sim(n=1000, seed=1)
    band = calibration_curve_band(y, p, n_boot=100, seed=1)
    assert (band["observed_ci_low"] <= band["observed_ci_high"]).all() and band["n_boot_used"].iloc[0] >= 95
    level, evidence = calibration_level(calibration_summary(y, p), band)
    assert level == "moderate" and "slope" in evidence
    y2, p2 = _sim(scale=2.0)
    level2, _ = calibration_level(calibration_summary(y2, p2))
    assert level2 in ("none", "mean")
    y3, p3 = _sim(shift=1.0)  # systematic over-prediction
    assert calibration_level(calibration_summary(y3, p3))[0] == "none"


def test_recalibration_repairs_miscalibration_out_of_fold():
    y, p = _sim(shift=1.0, scale=0.6)
    summary, preds = recalibrate_cv(y, p, folds=5, seed=0)
    s = summary.set_index("method")
    assert abs(s.loc["original", "calibration_intercept"]) > 0.3
    assert abs(s.loc["logistic", "calibration_intercept"]) < 0.15
    assert abs(s.loc["logistic", "calibration_slope"] - 1) < 0.2
    assert s.loc["logistic", "ici"] < s.loc["original", "ici"]
    assert list(preds.columns) == ["original", "recalibrated_intercept", "recalibrated_logistic",
                                   "recalibrated_isotonic"]
    with pytest.raises(ValueError, match="unknown"):
        fit_recalibration(y, p, "platt_magic")


def test_logistic_recalibration_of_constant_predictions_says_why():
    y = np.array([0, 1, 0, 1, 0, 0])
    with pytest.raises(ValueError, match="all 6 predictions are 0.3"):
        fit_recalibration(y, np.full(6, 0.3), "logistic")
    # the intercept update still works: it moves the constant to the observed rate (2/6)
    assert fit_recalibration(y, np.full(6, 0.3), "intercept")(np.array([0.3]))[0] == pytest.approx(1 / 3, abs=1e-6)


def test_decision_curve_bands_bracket_the_curve():
    y, p = _sim(n=800)
    t = np.array([0.1, 0.2, 0.3, 0.5])
    curve = decision_curve(y, p, t)
    ci = decision_curve_ci(y, p, t, n_boot=300, seed=0)
    assert (ci["net_benefit_model_ci_low"] <= curve["net_benefit_model"] + 1e-12).all()
    assert (curve["net_benefit_model"] <= ci["net_benefit_model_ci_high"] + 1e-12).all()
    assert (ci["net_benefit_all_ci_low"] <= curve["net_benefit_all"]).all()
    again = decision_curve_ci(y, p, t, n_boot=300, seed=0)
    pd.testing.assert_frame_equal(ci, again)


def test_decision_curve_ci_replicates_match_a_loop():
    """The vectorised replicate net benefit equals decision_curve on the resampled cases."""
    y, p = _sim(n=50, seed=4)
    t = np.array([0.2, 0.4])
    rng = np.random.default_rng(7)
    idx = rng.integers(0, 50, (1, 50))
    loop = decision_curve(y[idx[0]], p[idx[0]], t)["net_benefit_model"].to_numpy()
    ci = decision_curve_ci(y, p, t, n_boot=1, seed=7)  # one replicate: the band collapses onto it
    np.testing.assert_allclose(ci["net_benefit_model_ci_low"], loop, atol=1e-12)


def test_band_of_a_model_with_three_distinct_predictions_is_nan_not_an_error():
    rng = np.random.default_rng(0)
    p = rng.choice([0.2, 0.3, 0.5], 200)
    y = (rng.random(200) < p).astype(int)
    with pytest.warns(RuntimeWarning, match="no calibration curve"):
        band = calibration_curve_band(y, p, n_boot=10)
    assert band["observed"].isna().all() and (band["n_boot_used"] == 0).all()
    assert calibration_level({
        "calibration_intercept": 0.0, "calibration_intercept_ci_low": -0.1, "calibration_intercept_ci_high": 0.1,
        "calibration_slope": 1.0, "calibration_slope_ci_low": 0.8, "calibration_slope_ci_high": 1.2,
        "ici": float("nan")}, band)[0] == "weak"


def test_isotonic_recalibration_reports_steps_and_range_not_an_intercept():
    # hand-made PAV: outcomes sorted by p are 0,1,0,1,1 -> levels 0, 1/2, 1/2, 1, 1 -> 3 steps (0 and 1 kept
    # inside the map's bounds 1e-6 and 1 - 1e-6)
    iso = fit_recalibration(np.array([0, 1, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4, 0.5]), "isotonic")
    assert iso.n_steps == 3
    np.testing.assert_allclose(iso(np.array([0.1, 0.25, 0.45])), [1e-6, 0.5, 1 - 1e-6])
    # a small cohort whose out-of-fold isotonic probabilities pile up at the bounds: the old table printed
    # a calibration intercept of -1.1e15 for them (IRLS diverging on logits of +-13.8)
    rng = np.random.default_rng(13)
    lp = rng.normal(-1.2, 1.5, 60)
    y = (rng.random(60) < 1 / (1 + np.exp(-lp))).astype(int)
    p = 1 / (1 + np.exp(-(lp + rng.normal(0, 0.5, 60))))
    summary, preds = recalibrate_cv(y, p, folds=5, seed=0)
    iso_row = summary.set_index("method").loc["isotonic"]
    for key in ("calibration_intercept", "calibration_slope", "calibration_intercept_ci_low",
                "calibration_slope_ci_high"):
        assert np.isnan(iso_row[key])
    assert "not applicable" in iso_row["note"]
    assert 1 <= iso_row["n_steps_min"] <= iso_row["n_steps_max"] <= 60
    q = preds["recalibrated_isotonic"].to_numpy()
    assert iso_row["recalibrated_low"] == q.min() >= 1e-6 and iso_row["recalibrated_high"] == q.max() <= 1 - 1e-6
    ref = calibration_summary(y, q)
    assert iso_row["ici"] == pytest.approx(ref["ici"]) and iso_row["brier"] == pytest.approx(ref["brier"])
    # every reported figure is finite or NaN-with-a-note: nothing like 1e15
    numbers = summary.select_dtypes("number").to_numpy(dtype=float)
    assert np.nanmax(np.abs(numbers)) < 1e3


def test_intercept_update_matches_the_observed_rate_even_with_extreme_predictions():
    # known answer: the ML intercept update makes the mean recalibrated probability equal the event rate on
    # the cases it was fitted on; with a prediction of exactly 0 for an event (logit -744 once unclipped)
    # statsmodels' IRLS diverges to an intercept of about -2e13, the score-equation solver does not
    rng = np.random.default_rng(3)
    p = rng.uniform(0.05, 0.95, 200)
    p[:2], p[2] = 1.0, 0.0
    y = (rng.uniform(size=p.size) < p).astype(int)
    y[2] = 1
    update = fit_recalibration(y, p, "intercept")
    assert update(p).mean() == pytest.approx(y.mean(), abs=1e-9)
