"""Tests for acceflow.metrics.calibration."""

import json

import numpy as np
import pytest
from scipy import optimize
from scipy.special import expit, logit
from skmisc.loess import loess

from acceflow.metrics.calibration import (
    binned_calibration,
    calibration_curve_loess,
    calibration_errors,
    calibration_intercept_slope,
    calibration_summary,
    spiegelhalter_z,
)


@pytest.fixture(scope="module")
def calibrated():
    rng = np.random.default_rng(2024)
    p = rng.beta(2, 5, 5000)
    y = (rng.uniform(size=p.size) < p).astype(int)
    return y, p


def test_calibrated_model_intercept_0_slope_1(calibrated):
    y, p = calibrated
    r = calibration_intercept_slope(y, p)
    assert r["calibration_intercept_ci_low"] < 0 < r["calibration_intercept_ci_high"]
    assert r["calibration_slope_ci_low"] < 1 < r["calibration_slope_ci_high"]
    assert abs(r["calibration_intercept"]) < 0.1
    assert abs(r["calibration_slope"] - 1) < 0.1


def test_overconfident_model_has_slope_half(calibrated):
    y, p = calibrated
    overconfident = expit(2 * logit(p))
    r = calibration_intercept_slope(y, overconfident)
    assert 0.4 < r["calibration_slope"] < 0.6
    assert r["calibration_slope_ci_high"] < 1
    # and its calibration curve departs clearly from the diagonal
    assert calibration_errors(y, overconfident)["ici"] > 3 * calibration_errors(y, p)["ici"]


def test_intercept_and_slope_agree_with_direct_ml_fit():
    y = np.array([0, 0, 1, 1, 0, 1, 0, 1, 1, 0, 0, 1])
    p = np.array([0.2, 0.3, 0.6, 0.8, 0.55, 0.4, 0.1, 0.7, 0.35, 0.45, 0.25, 0.9])
    lp = logit(p)

    def nll(eta):  # negative Bernoulli log-likelihood on the logit scale
        return np.sum(np.logaddexp(0, eta) - y * eta)

    a = optimize.minimize_scalar(lambda a: nll(a + lp)).x
    ab = optimize.minimize(lambda t: nll(t[0] + t[1] * lp), [0.0, 1.0], method="BFGS",
                           options={"gtol": 1e-10}).x
    r = calibration_intercept_slope(y, p)
    assert r["calibration_intercept"] == pytest.approx(a, abs=1e-6)
    assert r["calibration_slope"] == pytest.approx(ab[1], abs=1e-5)


def test_ici_equals_direct_loess_computation(calibrated):
    y, p = calibrated
    y, p = y[:800], p[:800]
    fit = loess(p, y.astype(float), span=0.75, degree=2, family="gaussian")
    fit.fit()
    diff = np.abs(np.clip(fit.predict(p).values, 0, 1) - p)
    e = calibration_errors(y, p)
    assert e["ici"] == pytest.approx(diff.mean(), rel=1e-12)
    assert e["e50"] == pytest.approx(np.median(diff), rel=1e-12)
    assert e["e90"] == pytest.approx(np.quantile(diff, 0.9), rel=1e-12)
    assert e["emax"] == pytest.approx(diff.max(), rel=1e-12)
    assert e["ici"] <= e["emax"]


def test_loess_curve_recovers_known_miscalibration():
    # true risk is p/2 everywhere: the smoothed observed rate should be close to p/2
    rng = np.random.default_rng(7)
    p = rng.uniform(0.1, 0.9, 20000)
    y = rng.uniform(size=p.size) < p / 2
    obs = calibration_curve_loess(y, p)
    assert np.abs(obs - p / 2).mean() < 0.02
    assert calibration_errors(y, p)["ici"] == pytest.approx(np.mean(p / 2), abs=0.02)


def test_spiegelhalter_near_zero_for_calibrated(calibrated):
    z, pval = spiegelhalter_z(*calibrated)
    assert abs(z) < 2
    assert pval > 0.05


def test_summary_is_json_ready_and_consistent(calibrated):
    y, p = calibrated
    s = calibration_summary(y, p)
    assert all(type(v) is float for k, v in s.items() if k != "calibration_note")
    assert s["calibration_note"] == ""
    json.dumps(s)
    prev = y.mean()
    assert s["n"] == 5000 and s["n_events"] == y.sum()
    assert s["brier"] == pytest.approx(np.mean((p - y) ** 2))
    assert s["brier_scaled"] == pytest.approx(1 - s["brier"] / (prev * (1 - prev)))
    for key in ["calibration_intercept", "calibration_slope_ci_high", "ici", "e90",
                "spiegelhalter_z", "spiegelhalter_p", "mean_predicted", "observed_rate"]:
        assert key in s


def test_summary_survives_loess_failure():
    p = np.repeat([0.1, 0.5, 0.9], 50)
    y = np.tile([0, 1], 75)
    with pytest.warns(RuntimeWarning, match="NaN"):
        s = calibration_summary(y, p)
    assert np.isnan(s["ici"])
    assert np.isfinite(s["calibration_slope"])


def test_binned_calibration(calibrated):
    y, p = calibrated
    t = binned_calibration(y, p, n_bins=10)
    assert len(t) == 10 and t["n"].sum() == 5000
    assert (t["mean_predicted"].diff().dropna() > 0).all()
    row = t.iloc[3]
    k, n, z = row["n_events"], row["n"], 1.959964
    ph = k / n
    centre = (ph + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * np.sqrt(ph * (1 - ph) / n + z**2 / (4 * n**2))
    assert row["observed_ci_low"] == pytest.approx(centre - half, abs=1e-6)
    assert row["observed_ci_high"] == pytest.approx(centre + half, abs=1e-6)


def test_invalid_inputs_raise():
    with pytest.raises(ValueError, match="single class"):
        calibration_intercept_slope([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        calibration_summary([0, 1, 1], [0.1, 0.2, 1.3])


# ----------------------------------------------------------------- extreme predictions (issue 15)

def test_slope_with_extreme_prediction_is_the_unclipped_glm_of_r():
    """R: glm(y ~ qlogis(p), family = binomial). Two prediction values make the model saturated, so the
    MLE is known by hand: slope = (logit(3/4) - logit(1/4)) / (qlogis(0.9999999994) - qlogis(0.2))."""
    import statsmodels.api as sm

    p = np.array([0.2] * 4 + [0.9999999994] * 4)
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    r = calibration_intercept_slope(y, p)
    hand = (logit(0.75) - logit(0.25)) / (np.log(0.9999999994 / (1 - 0.9999999994)) - logit(0.2))
    assert r["calibration_slope"] == pytest.approx(hand, abs=1e-6)
    assert r["calibration_slope"] == pytest.approx(0.0971347, abs=1e-6)  # 2.1972246 / (21.2340914 + 1.3862944)
    clipped = (logit(0.75) - logit(0.25)) / (logit(1 - 1e-8) - logit(0.2))  # the old clip gave 0.1109
    assert abs(r["calibration_slope"] - clipped) > 0.01
    assert r["n_prob_at_bounds"] == 0.0
    # and on a realistic cohort with one near-certain prediction: statsmodels GLM on the unclipped logit
    rng = np.random.default_rng(7)
    q = rng.beta(2, 3, 300)
    q[0] = 0.9999999994
    yy = (rng.uniform(size=q.size) < q).astype(int)
    ref = sm.GLM(yy, sm.add_constant(logit(q)), family=sm.families.Binomial()).fit()
    off = sm.GLM(yy, np.ones((q.size, 1)), family=sm.families.Binomial(), offset=logit(q)).fit()
    got = calibration_intercept_slope(yy, q)
    assert got["calibration_slope"] == pytest.approx(ref.params[1], abs=1e-6)
    assert got["calibration_intercept"] == pytest.approx(off.params[0], abs=1e-6)


def test_probabilities_at_exactly_0_or_1_are_counted_and_kept_finite():
    from acceflow.metrics.calibration import PROB_CEIL, PROB_FLOOR, finite_logit

    lp, n = finite_logit([0.0, 0.3, 1.0, 0.9999999994])
    assert n == 2 and np.isfinite(lp).all()
    assert lp[0] == logit(PROB_FLOOR) and lp[2] == logit(PROB_CEIL) and lp[3] == logit(0.9999999994)
    rng = np.random.default_rng(3)
    p = rng.uniform(0.05, 0.95, 200)
    p[:2], p[2] = 1.0, 0.0
    y = (rng.uniform(size=p.size) < p).astype(int)
    s = calibration_summary(y, p)
    assert s["n_prob_at_bounds"] == 3.0
    assert np.isfinite([s["calibration_slope"], s["calibration_intercept"]]).all()
    json.dumps(s)


def test_intercept_is_the_root_of_its_score_where_irls_diverges():
    """statsmodels' IRLS returned an intercept of -2e13 here (a prediction of exactly 0 for an event, logit
    -744); the ML estimate solves sum(y - expit(a + logit p)) = 0, a plain number."""
    rng = np.random.default_rng(3)
    p = rng.uniform(0.05, 0.95, 200)
    p[:2], p[2] = 1.0, 0.0
    y = (rng.uniform(size=p.size) < p).astype(int)
    r = calibration_intercept_slope(y, p)
    from acceflow.metrics.calibration import finite_logit

    lp = finite_logit(p)[0]
    a = r["calibration_intercept"]
    assert abs(np.sum(y - expit(a + lp))) < 1e-9 and abs(a) < 1
    assert r["calibration_note"] == ""


def test_separation_gives_nan_and_a_note_not_a_huge_number():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    with pytest.warns(RuntimeWarning, match="slope not estimable"):
        r = calibration_intercept_slope(y, p)
    assert np.isnan(r["calibration_slope"]) and np.isnan(r["calibration_slope_ci_low"])
    assert "separate" in r["calibration_note"]
    assert r["calibration_intercept"] == pytest.approx(0.0, abs=1e-9)  # symmetric: mean calibration exact


def test_calibration_level_says_not_estimable_instead_of_nan():
    from acceflow.metrics.calibration import calibration_level

    s = {"calibration_intercept": 0.01, "calibration_intercept_ci_low": -0.2, "calibration_intercept_ci_high": 0.3,
         "calibration_slope": float("nan"), "calibration_slope_ci_low": float("nan"),
         "calibration_slope_ci_high": float("nan"), "ici": 0.02}
    level, evidence = calibration_level(s)
    assert level == "mean" and "slope not estimable" in evidence and "nan" not in evidence
