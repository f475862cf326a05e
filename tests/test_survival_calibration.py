"""Survival calibration at a horizon read from the Breslow step function (R's survfit.coxph), issue 15."""
import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter

from acceflow.metrics.survival_utility import _rcs_basis, breslow_survival_at, calibration_at


def _hand_breslow(time, event, lp, t):
    """R's survfit.coxph Breslow estimator by hand: H0(t) = sum_{event times t_i <= t} d_i / sum_{T_j >= t_i} exp(lp_j)
    on uncentred lp (R centres on the means; S(t | x) does not depend on it), S = exp(-H0 exp(lp))."""
    h0 = sum(1.0 / np.exp(lp[time >= ti]).sum() for ti, di in zip(time, event) if di and ti <= t)
    return np.exp(-h0 * np.exp(lp))


def test_breslow_step_function_by_hand_on_six_cases():
    # untied times (Efron = Breslow), one covariate; t = 5.5 lies between the event times 5 and 7
    df = pd.DataFrame({"x": [0.5, -1.0, 1.2, 0.0, -0.4, 0.8], "T": [2.0, 3.0, 5.0, 7.0, 8.0, 9.0],
                       "E": [1, 0, 1, 1, 0, 1]})
    cph = CoxPHFitter().fit(df, "T", "E")
    b = float(cph.params_["x"])
    x, T = df["x"].to_numpy(), df["T"].to_numpy()
    # H0(5.5) = 1 / sum_{T >= 2} e^{b x} + 1 / sum_{T >= 5} e^{b x}: events at 2 and 5 (3 is censored)
    h0 = 1 / np.exp(b * x).sum() + 1 / np.exp(b * x[T >= 5]).sum()
    expected = np.exp(-h0 * np.exp(b * x))
    got = breslow_survival_at(cph, df[["x"]], 5.5)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got, _hand_breslow(T, df["E"].to_numpy(), b * x, 5.5), atol=1e-12)
    # a step function: the same value just after 5 and just before 7; lifelines interpolates instead
    np.testing.assert_allclose(breslow_survival_at(cph, df[["x"]], 5.0), got, atol=1e-12)
    np.testing.assert_allclose(breslow_survival_at(cph, df[["x"]], 6.999), got, atol=1e-12)
    interpolated = cph.predict_survival_function(df[["x"]], times=[5.5]).to_numpy()[0]
    assert np.max(np.abs(interpolated - got)) > 1e-3
    assert np.all(breslow_survival_at(cph, df[["x"]], 1.0) == 1.0)  # before the first event


def test_ici_at_horizon_equals_r_step_function_convention():
    rng = np.random.default_rng(5)
    n, t = 150, 365.0
    lp_true = rng.normal(0, 0.8, n)
    time = np.round(rng.exponential(700 * np.exp(-lp_true)) + rng.uniform(0, 1e-3, n), 6) + 1
    cens = rng.uniform(200, 1500, n)
    event = (time <= cens).astype(int)
    time = np.minimum(time, cens)
    assert len(np.unique(time[event == 1])) == event.sum()  # untied event times
    risk_t = 1 - np.exp(-(t / 700) * np.exp(0.8 * lp_true + 0.2))  # a mis-calibrated model's risks
    out = calibration_at(time, event, risk_t, lp_true, t)
    # the reference: the same spline Cox fit, its S(t) read by hand from the Breslow step function
    cll = np.log(-np.log(1 - risk_t))
    basis = _rcs_basis(cll, np.quantile(cll, [0.1, 0.5, 0.9]))
    df = pd.DataFrame(basis, columns=["s0", "s1"]).assign(T=time, E=event)
    cph = CoxPHFitter().fit(df, "T", "E")  # R: coxph(Surv(T, E) ~ s0 + s1), unpenalised
    observed = 1 - _hand_breslow(time, event, basis @ cph.params_.to_numpy(), t)
    diff = np.abs(risk_t - observed)
    assert out["ici"] == pytest.approx(diff.mean(), abs=1e-6)
    assert out["e50"] == pytest.approx(np.median(diff), abs=1e-6)
    assert out["e90"] == pytest.approx(np.quantile(diff, 0.9), abs=1e-6)
    assert out["emax"] == pytest.approx(diff.max(), abs=1e-6)
    assert out["n_prob_at_bounds"] == 0
    # lifelines' interpolated curve, which the figure used to come from, is measurably off
    interpolated = 1 - cph.predict_survival_function(df, times=[t]).to_numpy()[0]
    assert abs(np.abs(risk_t - interpolated).mean() - out["ici"]) > 1e-5


def test_risk_of_exactly_0_or_1_is_counted_at_the_horizon():
    rng = np.random.default_rng(2)
    n = 80
    time = rng.exponential(400, n) + 1
    event = (rng.uniform(size=n) < 0.7).astype(int)
    risk = rng.uniform(0.05, 0.9, n)
    risk[0], risk[1] = 0.0, 1.0
    out = calibration_at(time, event, risk, np.log(-np.log1p(-np.clip(risk, 1e-6, 1 - 1e-6))), 365.0)
    assert out["n_prob_at_bounds"] == 2
    assert out["mean_predicted"] == pytest.approx(risk.mean())
