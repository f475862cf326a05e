"""Random-effects pooling (acceflow.metrics.meta_analysis) against a published worked example.

The example: the 13 BCG vaccine trials of Colditz et al. (1994, JAMA 271:698-702), the data set
``dat.bcg`` of R's metafor (Viechtbauer 2010, J Stat Softw 36(3)). Their DerSimonian–Laird
random-effects meta-analysis of the log risk ratio, as published by Stata's ``metan`` and
checked by metafor's own test suite (tests/testthat/test_misc_metan_vs_rma.uni_with_dat.bcg.r):
log RR −0.7141 [−1.0644, −0.3638], τ² 0.3088, I² 92.1173%, fixed-effect Q 152.2330; RR 0.4896
[0.3449, 0.6950].
"""

import numpy as np
import pytest
from scipy import stats

from acceflow.metrics.meta_analysis import logit_auc, pool_auc, random_effects

# trial: tpos, tneg (vaccinated TB+ / TB-), cpos, cneg (control)
BCG = np.array([
    [4, 119, 11, 128], [6, 300, 29, 274], [3, 228, 11, 209], [62, 13536, 248, 12619],
    [33, 5036, 47, 5761], [180, 1361, 372, 1079], [8, 2537, 10, 619], [505, 87886, 499, 87892],
    [29, 7470, 45, 7232], [17, 1699, 65, 1600], [186, 50448, 141, 27197], [5, 2493, 3, 2338],
    [27, 16886, 29, 17825]], dtype=float)


def bcg_log_rr():
    a, b, c, d = BCG.T  # metafor's escalc(measure = "RR")
    return np.log((a / (a + b)) / (c / (c + d))), 1 / a - 1 / (a + b) + 1 / c - 1 / (c + d)


def test_dersimonian_laird_matches_the_published_bcg_meta_analysis():
    y, v = bcg_log_rr()
    r = random_effects(y, v)
    assert r["k"] == 13 and r["method"] == "DerSimonian-Laird" and r["q_df"] == 12
    assert r["estimate"] == pytest.approx(-0.7141, abs=5e-5)
    assert r["ci_low"] == pytest.approx(-1.0644, abs=5e-5)
    assert r["ci_high"] == pytest.approx(-0.3638, abs=5e-5)
    assert r["estimate"] / r["se"] == pytest.approx(-3.9952, abs=5e-4)
    assert r["tau2"] == pytest.approx(0.3088, abs=5e-5)
    assert 100 * r["i2"] == pytest.approx(92.1173, abs=5e-4)
    assert r["q"] == pytest.approx(152.2330, abs=5e-4)
    assert np.exp([r["estimate"], r["ci_low"], r["ci_high"]]) == pytest.approx([0.4896, 0.3449, 0.6950], abs=5e-5)


def test_prediction_interval_by_hand():
    # Higgins, Thompson & Spiegelhalter (2009), eq. 12: mu +/- t_{k-2, 0.975} sqrt(tau^2 + SE(mu)^2)
    y, v = bcg_log_rr()
    r = random_effects(y, v)
    half = stats.t.ppf(0.975, 11) * np.sqrt(0.3088 + (0.7141 / 3.9952) ** 2)  # 2.200985 * 0.58374
    assert r["pi_low"] == pytest.approx(-0.7141 - half, abs=2e-3)
    assert r["pi_high"] == pytest.approx(-0.7141 + half, abs=2e-3)
    assert half == pytest.approx(1.2848, abs=1e-3) and r["pi_note"] == ""


def test_three_sites_by_hand():
    # y = (0, 1, 2), v = 0.1 each: weights 10, mean 1, Q = 10 * 2 = 20, c = 30 - 300/30 = 20,
    # tau2 = (20 - 2) / 20 = 0.9, random-effects SE = sqrt(1 / (3 / 1.0)) = sqrt(1/3)
    r = random_effects([0.0, 1.0, 2.0], [0.1, 0.1, 0.1])
    assert r["q"] == pytest.approx(20) and r["tau2"] == pytest.approx(0.9) and r["i2"] == pytest.approx(0.9)
    assert r["estimate"] == pytest.approx(1.0) and r["se"] == pytest.approx(np.sqrt(1 / 3))
    half = 12.7062047361747 * np.sqrt(0.9 + 1 / 3)  # t(0.975, 1 df)
    assert (r["pi_low"], r["pi_high"]) == pytest.approx((1 - half, 1 + half))


def test_homogeneous_sites_truncate_tau2_at_zero():
    # Q = 0.002 < df = 2: DerSimonian-Laird's tau2 is 0 (statsmodels' raw moment estimate is -0.0999)
    r = random_effects([0.5, 0.51, 0.49], [0.1, 0.1, 0.1])
    assert r["tau2"] == 0 and r["i2"] == 0
    assert r["se"] == pytest.approx(np.sqrt(0.1 / 3)) and r["estimate"] == pytest.approx(0.5)


def test_two_sites_have_no_prediction_interval():
    r = random_effects([0.2, 0.8], [0.05, 0.05])
    assert np.isnan(r["pi_low"]) and np.isnan(r["pi_high"]) and "at least three" in r["pi_note"]
    assert r["k"] == 2 and np.isfinite(r["tau2"])


def test_logit_auc_delta_method_by_hand():
    lg, var = logit_auc([0.8, 0.5], [0.05, 0.1])
    assert lg == pytest.approx([np.log(4), 0.0])
    assert var == pytest.approx([0.05 ** 2 / 0.16 ** 2, 0.01 / 0.0625])


def test_pool_auc_back_transforms():
    r = pool_auc([0.7, 0.8, 0.75], [0.04, 0.05, 0.03])
    expit = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    assert r["scale"] == "logit" and r["pooled"] == pytest.approx(expit(r["estimate"]))
    assert r["pooled_ci_low"] < r["pooled"] < r["pooled_ci_high"]
    assert r["pooled_pi_low"] <= r["pooled_ci_low"] and r["pooled_pi_high"] >= r["pooled_ci_high"]


@pytest.mark.parametrize("auc, se, match", [([1.0, 0.7], [0.0, 0.05], "perfect separation"),
                                            ([0.7, 0.8], [0.05, 0.0], "positive"),
                                            ([0.7], [0.05, 0.04], "same length")])
def test_bad_input_is_named(auc, se, match):
    with pytest.raises(ValueError, match=match):
        pool_auc(auc, se)
