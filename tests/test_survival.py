"""Survival-outcome library: concordance, time-dependent AUC, penalised Cox, groups, KM, log-rank."""
import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.datasets import load_regression_dataset, load_rossi
from lifelines.utils import concordance_index
from scipy.stats import spearmanr
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from acceflow.metrics.survival import (
    _concordance_sums,
    assign_risk_groups,
    c_index_ci,
    check_survival,
    harrell_c,
    hazard_ratio_per_sd,
    km_by_group,
    km_risk_at,
    logrank,
    risk_cutoffs,
    risk_groups,
    time_dependent_auc,
    uno_c,
)
from acceflow.models.cox import PenalizedCox, fit_cox, survival_y

# Tiny censored example used for the hand computations below (times in days).
#   case   A  B  C  D  E  F
T6 = np.array([1, 2, 3, 4, 5, 6], dtype=float)
E6 = np.array([1, 0, 1, 1, 0, 1])
R6 = np.array([5, 3, 2, 4, 2, 0], dtype=float)


@pytest.fixture(scope="module")
def rossi():
    return load_rossi()


@pytest.fixture(scope="module")
def rossi_lp(rossi):
    cph = CoxPHFitter().fit(rossi, "week", "arrest")
    return cph.predict_log_partial_hazard(rossi).to_numpy()


# --- validation ------------------------------------------------------------------------------


def test_check_survival_returns_typed_arrays():
    t, e = check_survival([3, 4.5, 10], [True, False, 1])
    assert t.dtype == float and e.dtype == int
    assert e.tolist() == [1, 0, 1]


@pytest.mark.parametrize(
    "time, event, message",
    [
        ([5, 0, 7], [1, 0, 1], r"time must be positive \(days\); case index 1 has time 0"),
        ([5, -2, 7], [1, 0, 1], r"case index 1 has time -2"),
        ([5, np.nan, 7], [1, 0, 1], r"time must be finite \(days\); case index 1 has time nan"),
        ([5, 6, 7], [1, 0, 2], r"event must be 0 \(censored\) or 1 \(event\); case index 2 has event 2"),
        ([5, 6, 7], [0, 0, 0], r"all 3 cases are censored"),
        ([5, 6, 7], [1, 0], r"same shape as time"),
        ([], [], r"non-empty"),
    ],
)
def test_check_survival_errors(time, event, message):
    with pytest.raises(ValueError, match=message):
        check_survival(time, event)


def test_risk_must_match_and_be_finite():
    with pytest.raises(ValueError, match=r"risk must be finite; case index 0 has risk nan"):
        harrell_c([1, 2], [1, 1], [np.nan, 1.0])
    with pytest.raises(ValueError, match="one value per case"):
        uno_c([1, 2, 3], [1, 1, 0], [1.0, 2.0])


# --- Harrell's and Uno's C ------------------------------------------------------------------


def test_harrell_equals_lifelines_with_sign_convention(rossi, rossi_lp):
    t, e = rossi["week"], rossi["arrest"]
    c = harrell_c(t, e, rossi_lp)
    assert c == concordance_index(t, -rossi_lp, e)
    assert 0.6 < c < 0.7  # rossi's Cox model: about 0.64
    assert harrell_c(t, e, -rossi_lp) == pytest.approx(1 - c)


def test_internal_unit_weight_concordance_equals_lifelines_with_ties(rossi):
    # rossi has heavy ties in time (weeks, 318 censored at 52) and, with prio as the score, in risk
    t = rossi["week"].to_numpy(float)
    e = rossi["arrest"].to_numpy()
    r = rossi["prio"].to_numpy(float)
    ones = np.ones((1, t.size))
    num, den = _concordance_sums(t, e, r, ones, ones)
    assert num[0] / den[0] == pytest.approx(concordance_index(t, -r, e), abs=1e-12)


def test_uno_equals_harrell_without_censoring():
    d = load_regression_dataset()
    t = d["T"].to_numpy()
    e = np.ones(t.size, dtype=int)  # no censoring: G = 1, all IPCW weights are 1
    risk = (d["var1"] + d["var2"]).to_numpy()
    assert uno_c(t, e, risk) == pytest.approx(harrell_c(t, e, risk), abs=1e-12)
    coarse = np.round(risk)  # tied risk scores count 1/2 in both
    assert uno_c(t, e, coarse) == pytest.approx(harrell_c(t, e, coarse), abs=1e-12)


def test_uno_equals_harrell_without_censoring_tied_times(rossi):
    t = rossi["week"].to_numpy()
    e = np.ones(t.size, dtype=int)  # tied event days are not comparable in either
    r = rossi["prio"].to_numpy()
    assert uno_c(t, e, r) == pytest.approx(harrell_c(t, e, r), abs=1e-12)


def test_uno_on_rossi(rossi, rossi_lp):
    t, e = rossi["week"], rossi["arrest"]
    c = uno_c(t, e, rossi_lp)
    assert 0 < c < 1
    assert 0.55 < c < 0.75
    assert 0 < uno_c(t, e, rossi_lp, tau=26) < 1
    with pytest.raises(ValueError, match=r"tau \(60 days\) exceeds the longest follow-up \(52 days\)"):
        uno_c(t, e, rossi_lp, tau=60)


def test_uno_hand_computed_with_censoring():
    # Censoring KM ("reverse" KM, events before censorings on the same day):
    #   day 2: 5 at risk (T >= 2), 1 censored -> G = 1 - 1/5 = 0.8
    #   day 5: 2 at risk (T >= 5), 1 censored -> G = 0.8 * (1 - 1/2) = 0.4
    # weights 1/G(T_i-)^2 of the events: A (day 1) 1, C (day 3) 1/0.64 = 1.5625, D (day 4) 1.5625,
    # F (day 6) 6.25 (no later case, so it never enters).
    # Comparable pairs (event i, T_j > T_i) and concordance (risk_i > risk_j; tie = 1/2):
    #   A (r=5) vs B, C, D, E, F -> 5 of 5               num 5        den 5
    #   C (r=2) vs D(4), E(2), F(0) -> 0 + 0.5 + 1 = 1.5  num 1.5*1.5625 = 2.34375, den 3*1.5625 = 4.6875
    #   D (r=4) vs E, F -> 2 of 2                          num 3.125    den 3.125
    # Uno's C = (5 + 2.34375 + 3.125) / (5 + 4.6875 + 3.125) = 10.46875 / 12.8125
    # Harrell's C (weights 1) = (5 + 1.5 + 2) / (5 + 3 + 2) = 0.85
    # tau = 3.5 keeps only A and C: (5 + 2.34375) / (5 + 4.6875) = 7.34375 / 9.6875
    assert uno_c(T6, E6, R6) == pytest.approx(10.46875 / 12.8125, abs=1e-12)
    assert harrell_c(T6, E6, R6) == pytest.approx(0.85, abs=1e-12)
    assert uno_c(T6, E6, R6, tau=3.5) == pytest.approx(7.34375 / 9.6875, abs=1e-12)


def _naive_bootstrap(t, e, r, stat, n_boot, seed, alpha=0.05):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, t.size, size=(n_boot, t.size))
    values = [stat(t[i], e[i], r[i]) for i in idx]
    return np.quantile(values, [alpha / 2, 1 - alpha / 2])


@pytest.mark.parametrize("method, stat", [("harrell", harrell_c), ("uno", uno_c)])
def test_c_index_ci_equals_naive_bootstrap(rossi, rossi_lp, method, stat):
    t = rossi["week"].to_numpy(float)
    e = rossi["arrest"].to_numpy()
    c, low, high = c_index_ci(t, e, rossi_lp, method=method, n_boot=40, seed=3)
    assert c == pytest.approx(stat(t, e, rossi_lp))
    expected = _naive_bootstrap(t, e, rossi_lp, stat, n_boot=40, seed=3)
    assert [low, high] == pytest.approx(expected.tolist(), abs=1e-12)
    assert low < c < high


def test_c_index_ci_reproducible_and_validated(rossi, rossi_lp):
    t, e = rossi["week"], rossi["arrest"]
    a = c_index_ci(t, e, rossi_lp, n_boot=200, seed=1)
    assert a == c_index_ci(t, e, rossi_lp, n_boot=200, seed=1)
    with pytest.raises(ValueError, match='method must be "harrell" or "uno"'):
        c_index_ci(t, e, rossi_lp, method="somers")
    with pytest.raises(ValueError, match="alpha must be"):
        c_index_ci(t, e, rossi_lp, alpha=1.5)


# --- time-dependent AUC ---------------------------------------------------------------------


def test_time_dependent_auc_without_censoring_equals_roc_auc():
    rng = np.random.default_rng(0)
    risk = rng.normal(size=300)
    t = rng.exponential(1000 * np.exp(-risk)) + 1.0
    e = np.ones(t.size, dtype=int)
    horizons = np.quantile(t, [0.2, 0.5, 0.8])
    auc = time_dependent_auc(t, e, risk, horizons)
    expected = [roc_auc_score(t <= h, risk) for h in horizons]
    np.testing.assert_allclose(auc, expected, atol=1e-12)
    tied = np.round(risk)  # tied scores between cases and controls count 1/2, as in roc_auc_score
    np.testing.assert_allclose(
        time_dependent_auc(t, e, tied, horizons), [roc_auc_score(t <= h, tied) for h in horizons], atol=1e-12
    )


def test_time_dependent_auc_hand_computed_with_censoring():
    # At t = 4: cases = events on or before day 4: A (day 1), C (day 3), D (day 4);
    # controls = T > 4: E (r=2), F (r=0). Weights 1/G(T_i) with the censoring KM above:
    # G(1) = 1, G(3) = G(4) = 0.8 -> weights 1, 1.25, 1.25.
    #   A (r=5): beats E and F -> 2;  C (r=2): ties E (0.5), beats F -> 1.5;  D (r=4): 2
    # AUC = (1*2 + 1.25*1.5 + 1.25*2) / ((1 + 1.25 + 1.25) * 2) = 6.375 / 7
    assert time_dependent_auc(T6, E6, R6, [4])[0] == pytest.approx(6.375 / 7, abs=1e-12)
    with pytest.raises(ValueError, match="horizon 0.5 days has no case"):
        time_dependent_auc(T6, E6, R6, [0.5])
    with pytest.raises(ValueError, match="horizon 6 days has no control"):
        time_dependent_auc(T6, E6, R6, [3, 6])


def test_time_dependent_auc_rossi(rossi, rossi_lp):
    auc = time_dependent_auc(rossi["week"], rossi["arrest"], rossi_lp, [13, 26, 39])
    assert auc.shape == (3,)
    assert ((auc > 0.55) & (auc < 0.85)).all()


# --- Cox ------------------------------------------------------------------------------------


def test_penalized_cox_pipeline_matches_coxphfitter(rossi):
    X = rossi.drop(columns=["week", "arrest"])
    y = survival_y(rossi["week"], rossi["arrest"])
    model = make_pipeline(StandardScaler(), PenalizedCox(penalizer=0.05)).fit(X, y)
    lp = model.predict(X)
    assert lp.shape == (len(rossi),)

    Xs = pd.DataFrame(StandardScaler().fit_transform(X), columns=X.columns)
    cph = fit_cox(Xs, rossi["week"], rossi["arrest"], penalizer=0.05)
    reference = cph.predict_log_partial_hazard(Xs).to_numpy()
    assert spearmanr(lp, reference).statistic == pytest.approx(1.0)
    np.testing.assert_allclose(lp, reference, atol=1e-8)

    cox = model[-1]
    Z = model[:-1].transform(X)
    surv = cox.predict_survival(Z, 20.0)  # 20 is a training time: step and lifelines agree there
    expected = cph.predict_survival_function(Xs, times=[20.0]).to_numpy()[0]
    np.testing.assert_allclose(surv, expected, atol=1e-10)
    np.testing.assert_allclose(cox.predict_risk_at(Z, 20.0), 1 - surv)
    assert cox.predict_survival(Z, [10.0, 20.0, 52.0]).shape == (len(rossi), 3)
    assert (np.diff(cox.predict_survival(Z, [10.0, 20.0, 52.0]), axis=1) <= 0).all()
    assert cox.score(Z, y) == pytest.approx(harrell_c(rossi["week"], rossi["arrest"], lp))
    with pytest.raises(ValueError, match="beyond the longest training follow-up"):
        cox.predict_survival(Z, 60.0)


def test_penalized_cox_y_formats_and_clone(rossi):
    X = rossi[["age", "prio", "fin"]].to_numpy(float)
    two_col = rossi[["week", "arrest"]].to_numpy(float)
    sks = np.array(
        list(zip(rossi["arrest"].astype(bool), rossi["week"].astype(float))),
        dtype=[("Status", bool), ("Survival_in_days", float)],
    )
    a = PenalizedCox(penalizer=0.1).fit(X, two_col)
    b = clone(a).fit(X, sks)
    frame = rossi.rename(columns={"week": "time", "arrest": "event"})[["event", "time"]]
    c = clone(a).fit(X, frame)
    np.testing.assert_allclose(a.coef_, b.coef_)
    np.testing.assert_allclose(a.coef_, c.coef_)
    assert a.feature_columns_ == ["x0", "x1", "x2"]
    with pytest.raises(ValueError, match=r"y must be a structured array"):
        PenalizedCox().fit(X, rossi["week"].to_numpy())
    with pytest.raises(ValueError, match="l1_ratio must be in"):
        PenalizedCox(l1_ratio=2).fit(X, two_col)


def test_fit_cox_validation(rossi):
    X = rossi[["age", "prio"]].astype(float).copy()
    X.iloc[5, 1] = np.nan
    with pytest.raises(ValueError, match=r"case index 5 has nan in column 'prio'"):
        fit_cox(X, rossi["week"], rossi["arrest"])
    with pytest.raises(ValueError, match="constant columns"):
        fit_cox(rossi[["age"]].assign(k=1.0), rossi["week"], rossi["arrest"])


# --- groups, KM, log-rank, HR ---------------------------------------------------------------


def test_risk_groups_use_training_cutoffs():
    rng = np.random.default_rng(0)
    train = rng.normal(size=200)
    cut = risk_cutoffs(train, (0.5,))
    assert cut[0] == pytest.approx(np.median(train))
    groups_train = risk_groups(train, train)
    assert set(groups_train.tolist()) == {0, 1} and groups_train.sum() == 100
    high_cohort = train.max() + 1 + rng.uniform(size=50)  # all riskier than any training case
    assert (risk_groups(train, high_cohort) == 1).all()
    assert (risk_groups(train, high_cohort, quantiles=(1 / 3, 2 / 3)) == 2).all()
    assert assign_risk_groups([cut[0]], cut).tolist() == [0]  # on the cut-off: lower group
    with pytest.raises(ValueError, match="strictly increasing probabilities"):
        risk_groups(train, train, quantiles=(0.7, 0.3))
    with pytest.raises(ValueError, match="tied cut-offs"):
        risk_cutoffs(np.r_[np.zeros(90), np.ones(10)], (0.3, 0.6))


def _two_groups(n=120, hr=5.0, seed=0):
    rng = np.random.default_rng(seed)
    g = np.repeat([0, 1], n // 2)
    t_event = rng.exponential(1000 / np.where(g == 1, hr, 1.0))
    t_cens = rng.uniform(200, 2000, size=n)
    return np.minimum(t_event, t_cens) + 0.5, (t_event <= t_cens).astype(int), g


def test_km_by_group_and_logrank_separated_groups():
    t, e, g = _two_groups()
    km = km_by_group(t, e, g)
    assert sorted(km) == [0, 1]
    for label in (0, 1):
        m = g == label
        kmf = KaplanMeierFitter().fit(t[m], e[m])
        assert km[label]["n"] == m.sum() and km[label]["events"] == e[m].sum()
        table = km[label]["table"]
        assert list(table.columns) == ["time", "survival", "ci_lower", "ci_upper", "at_risk", "events", "censored"]
        np.testing.assert_allclose(table["survival"], kmf.survival_function_.iloc[:, 0])
        assert (table["ci_lower"] <= table["survival"] + 1e-12).all()
        assert (table["ci_upper"] >= table["survival"] - 1e-12).all()
        med = km[label]["median"]
        assert (med is None and np.isinf(kmf.median_survival_time_)) or med == kmf.median_survival_time_
    assert km[1]["median"] < km[0]["median"]
    res = logrank(t, e, g)
    assert res["test"] == "logrank_test" and res["df"] == 1
    assert res["p_value"] < 1e-6
    three = logrank(t, e, np.where(t > np.median(t), 2, g))
    assert three["test"] == "multivariate_logrank_test" and three["df"] == 2
    with pytest.raises(ValueError, match="at least two groups"):
        logrank(t, e, np.zeros(t.size))


def test_hazard_ratio_per_sd(rossi, rossi_lp):
    t, e = rossi["week"], rossi["arrest"]
    res = hazard_ratio_per_sd(t, e, rossi_lp)
    assert res["hr"] > 1 and res["ci_low"] > 1 and res["p_value"] < 1e-4
    assert res["sd"] == pytest.approx(np.std(rossi_lp, ddof=1))
    # external cohorts are scaled by the training SD: twice the SD -> log HR doubles
    doubled = hazard_ratio_per_sd(t, e, rossi_lp, sd=2 * res["sd"])
    assert np.log(doubled["hr"]) == pytest.approx(2 * np.log(res["hr"]), rel=1e-6)
    with pytest.raises(ValueError, match="sd must be a positive finite number"):
        hazard_ratio_per_sd(t, e, rossi_lp, sd=0)


def test_km_risk_at():
    t = np.arange(1, 21, dtype=float)
    e = np.ones(20, dtype=int)
    risk, low, high = km_risk_at(t, e, 5.5)
    assert risk == pytest.approx(5 / 20) and low < risk < high
    rossi = load_rossi()
    kmf = KaplanMeierFitter().fit(rossi["week"], rossi["arrest"])
    risk, low, high = km_risk_at(rossi["week"], rossi["arrest"], 26)
    assert risk == pytest.approx(1 - kmf.survival_function_.loc[26.0].iloc[0])
    assert low == pytest.approx(1 - kmf.confidence_interval_.loc[26.0].iloc[1])
    assert high == pytest.approx(1 - kmf.confidence_interval_.loc[26.0].iloc[0])
    with pytest.raises(ValueError, match="beyond the longest follow-up"):
        km_risk_at(rossi["week"], rossi["arrest"], 100)
