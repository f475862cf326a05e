"""Tests for acceflow.metrics.decision_curve."""

import numpy as np
import pandas as pd
import pytest

from acceflow.metrics.decision_curve import (
    decision_curve,
    net_benefit,
    net_benefit_treat_all,
    useful_threshold_range,
)

# 10 patients, 3 events (prevalence 0.3)
Y = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
P = np.array([0.9, 0.7, 0.15, 0.5, 0.3, 0.25, 0.1, 0.05, 0.12, 0.2])


def test_hand_worked_example_at_pt_020():
    # pt = 0.2, odds w = 0.2 / 0.8 = 0.25. Treated (prob >= 0.2): 0.9, 0.7 (events) and
    # 0.5, 0.3, 0.25, 0.2 (non-events; 0.2 counts because of ">="): TP = 2, FP = 4.
    # NB_model = 2/10 - 4/10 * 0.25 = 0.1
    # NB_all   = 0.3 - 0.7 * 0.25 = 0.125
    # standardized NB = 0.1 / 0.3; avoided per 100 = (0.1 - 0.125) / 0.25 * 100 = -10
    dc = decision_curve(Y, P, [0.2])
    row = dc.iloc[0]
    assert row["net_benefit_model"] == pytest.approx(0.1)
    assert row["net_benefit_all"] == pytest.approx(0.125)
    assert row["net_benefit_none"] == 0
    assert row["standardized_net_benefit_model"] == pytest.approx(1 / 3)
    assert row["net_interventions_avoided_per_100"] == pytest.approx(-10)
    # pt = 0.6: treated 0.9, 0.7 only: NB = 0.2 - 0 = 0.2
    assert net_benefit(Y, P, 0.6)[0] == pytest.approx(0.2)


def test_treat_all_identity():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 57)
    t = np.linspace(0.01, 0.99, 50)
    prev = y.mean()
    np.testing.assert_allclose(net_benefit_treat_all(y, t), prev - (1 - prev) * t / (1 - t))
    # treating everyone through the model (prob = 1 for all) gives the same curve
    np.testing.assert_allclose(net_benefit(y, np.ones(y.size), t), net_benefit_treat_all(y, t))


def test_perfect_classifier_net_benefit_is_prevalence():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 200)
    dc = decision_curve(y, y.astype(float))
    np.testing.assert_allclose(dc["net_benefit_model"], y.mean())
    np.testing.assert_allclose(dc["standardized_net_benefit_model"], 1.0)
    assert useful_threshold_range(dc) == (0.01, 0.99)


def test_vectorised_equals_loop():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    p = np.round(rng.uniform(size=300), 2)  # ties with grid thresholds
    t = np.round(np.arange(1, 100) / 100, 2)
    loop = []
    for pt in t:
        treat = p >= pt
        tp, fp = np.sum(treat & (y == 1)), np.sum(treat & (y == 0))
        loop.append(tp / y.size - fp / y.size * pt / (1 - pt))
    np.testing.assert_allclose(net_benefit(y, p, t), loop, atol=1e-15)
    dc = decision_curve(y, p)
    np.testing.assert_array_equal(dc["threshold"], t)
    assert list(dc.columns) == [
        "threshold", "net_benefit_model", "net_benefit_all", "net_benefit_none",
        "standardized_net_benefit_model", "net_interventions_avoided_per_100",
    ]


def test_useful_range_widest_run_and_none():
    curve = pd.DataFrame({
        "threshold": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7],
        "net_benefit_model": [0.30, 0.25, 0.10, 0.20, 0.18, 0.15, 0.0],
        "net_benefit_all":   [0.30, 0.20, 0.15, 0.10, 0.00, -0.1, -0.3],
    })
    # useful at 0.2 (run of 1) and 0.4-0.6 (run of 3); 0.1 is a tie, 0.7 is NB = 0
    assert useful_threshold_range(curve) == (0.4, 0.6)
    never = curve.assign(net_benefit_model=-1.0)
    assert useful_threshold_range(never) == (None, None)
    with pytest.raises(ValueError, match="missing columns"):
        useful_threshold_range(curve.drop(columns="net_benefit_all"))


@pytest.mark.parametrize("bad", [0.0, 1.0, 1.2, -0.1, np.nan])
def test_thresholds_outside_open_interval_raise(bad):
    with pytest.raises(ValueError, match=r"strictly inside \(0, 1\)"):
        decision_curve(Y, P, [0.2, bad])


def test_single_class_raises():
    with pytest.raises(ValueError, match="single class"):
        decision_curve(np.zeros(5), np.full(5, 0.2))
