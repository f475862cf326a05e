"""Tests for acceflow.metrics.discrimination (AUC, DeLong, bootstrap)."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from acceflow.metrics.discrimination import (
    _auc_rows,
    bootstrap_auc_ci,
    brier_score,
    delong_ci,
    delong_roc_variance,
    delong_test,
    log_loss,
    roc_curve_points,
)


def _psi(cases, controls):
    """Kernel psi(X, Y) = 1 if X > Y, 1/2 if X == Y, 0 otherwise; shape (m, n)."""
    x, y = cases[:, None], controls[None, :]
    return (x > y) + 0.5 * (x == y)


def _slow_delong(y, scores):
    """Direct O(m n) DeLong (1988): AUCs and covariance matrix of k markers."""
    v10, v01, aucs = [], [], []
    for s in scores:
        psi = _psi(s[y == 1], s[y == 0])
        aucs.append(psi.mean())
        v10.append(psi.mean(axis=1))  # structural component of each case
        v01.append(psi.mean(axis=0))  # structural component of each control
    v10, v01 = np.array(v10), np.array(v01)
    cov = np.cov(v10) / v10.shape[1] + np.cov(v01) / v01.shape[1]
    return np.array(aucs), np.atleast_2d(cov)


def _tied_data(seed, n=120):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    a = np.round(y * 0.8 + rng.normal(size=n), 1)  # rounding creates many ties
    b = np.round(0.5 * a + rng.normal(size=n), 1)
    return y, a, b


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_delong_equals_slow_direct(seed):
    y, a, _ = _tied_data(seed)
    auc, var = delong_roc_variance(y, a)
    slow_auc, slow_cov = _slow_delong(y, [a])
    assert auc == pytest.approx(slow_auc[0], abs=1e-12)
    assert var == pytest.approx(slow_cov[0, 0], rel=1e-10)
    assert auc == pytest.approx(roc_auc_score(y, a), abs=1e-12)


def test_hand_computed_example():
    # cases X = {0.35, 0.8}, controls Y = {0.1, 0.4}
    # psi: (0.35,0.1)=1 (0.35,0.4)=0 (0.8,0.1)=1 (0.8,0.4)=1  -> AUC = 3/4
    # V10 (cases):    0.35 -> 1/2, 0.8 -> 1      S10 = var([.5, 1], ddof=1) = 0.125
    # V01 (controls): 0.1 -> 1,   0.4 -> 1/2     S01 = 0.125
    # var = S10/m + S01/n = 0.125/2 + 0.125/2 = 0.125, SE = 0.35355
    # 95% CI = 0.75 -/+ 1.95996 * 0.35355 = [0.0570, 1.4430] -> truncated to [0.0570, 1]
    y, s = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    auc, var = delong_roc_variance(y, s)
    assert auc == pytest.approx(0.75)
    assert var == pytest.approx(0.125)
    auc, low, high = delong_ci(y, s)
    assert low == pytest.approx(0.75 - 1.959964 * np.sqrt(0.125), abs=1e-6)
    assert high == 1.0


def test_paired_test_matches_slow_covariance():
    y, a, b = _tied_data(3, n=200)
    res = delong_test(y, a, b)
    aucs, cov = _slow_delong(y, [a, b])
    se = np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    assert res["auc_a"] == pytest.approx(aucs[0])
    assert res["auc_b"] == pytest.approx(aucs[1])
    assert res["diff"] == pytest.approx(aucs[0] - aucs[1])
    assert res["se"] == pytest.approx(se, rel=1e-10)
    assert res["z"] == pytest.approx(res["diff"] / se, rel=1e-10)
    assert 0 <= res["p_value"] <= 1


def test_paired_test_identical_scores():
    y, a, _ = _tied_data(4)
    res = delong_test(y, a, a)
    assert res["diff"] == 0.0
    assert res["se"] == 0.0
    assert res["p_value"] == 1.0


def test_bootstrap_ci_contains_auc_and_is_deterministic():
    y, a, _ = _tied_data(5, n=150)
    r1 = bootstrap_auc_ci(y, a, n_boot=500, seed=42)
    r2 = bootstrap_auc_ci(y, a, n_boot=500, seed=42)
    assert r1 == r2
    auc, low, high = r1
    assert auc == pytest.approx(roc_auc_score(y, a))
    assert low < auc < high
    r3 = bootstrap_auc_ci(y, a, n_boot=500, seed=42, stratified=False)
    assert r3[1] < auc < r3[2]
    # the bootstrap width is of the same order as the DeLong one
    _, dl, dh = delong_ci(y, a)
    assert 0.7 < (high - low) / (dh - dl) < 1.3


def test_vectorised_row_auc_equals_sklearn():
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 2, (5, 40)).astype(bool)
    scores = np.round(rng.normal(size=(5, 40)), 1)
    expected = [roc_auc_score(lab, sc) for lab, sc in zip(labels, scores)]
    np.testing.assert_allclose(_auc_rows(labels, scores), expected, atol=1e-12)


def test_single_class_raises():
    with pytest.raises(ValueError, match="single class"):
        delong_roc_variance([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="single class"):
        bootstrap_auc_ci([1, 1, 1], [0.1, 0.2, 0.3])


def test_other_invalid_inputs_raise():
    with pytest.raises(ValueError, match="only 0 and 1"):
        delong_ci([0, 2, 1, 1], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match="same shape"):
        delong_ci([0, 0, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="finite"):
        delong_ci([0, 0, 1, 1], [0.1, np.nan, 0.3, 0.4])
    with pytest.raises(ValueError, match="at least 2 cases"):
        delong_ci([0, 0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="alpha"):
        delong_ci([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4], alpha=1.5)


def test_roc_points_brier_logloss():
    pts = roc_curve_points([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert list(pts.columns) == ["fpr", "tpr", "threshold"]
    assert np.trapezoid(pts["tpr"], pts["fpr"]) == pytest.approx(0.75)
    assert brier_score([0, 1, 1], [0.0, 1.0, 0.5]) == pytest.approx(0.25 / 3)
    assert log_loss([0, 1], [0.5, 0.5]) == pytest.approx(np.log(2))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        brier_score([0, 1], [0.2, 1.2])


# --- bootstrap by multiplicities: same replicates and CIs as the previous (re-ranking) code -------

def _reference_bootstrap(y_true, y_score, n_boot, alpha=0.05, seed=0, stratified=True, chunk_elements=2_000_000):
    """The implementation of bootstrap_auc_ci before issue 21, kept verbatim as the reference.

    Returns the replicate AUCs (NaN ones dropped) and (auc, low, high)."""
    from scipy import stats

    y, s = np.asarray(y_true, int), np.asarray(y_score, float)

    def auc_rows(labels, scores):
        labels = np.broadcast_to(labels, scores.shape)
        ranks = stats.rankdata(scores, axis=1)
        m = labels.sum(axis=1).astype(float)
        n = scores.shape[1] - m
        with np.errstate(invalid="ignore", divide="ignore"):
            auc = ((ranks * labels).sum(axis=1) - m * (m + 1) / 2) / (m * n)
        auc[(m == 0) | (n == 0)] = np.nan
        return auc

    def counts(idx, n):
        b = idx.shape[0]
        return np.bincount((idx + n * np.arange(b)[:, None]).ravel(), minlength=b * n).reshape(b, n)

    def auc_from_counts(pos, neg, idx_pos, idx_neg):
        order = np.argsort(neg, kind="stable")
        neg_sorted = neg[order]
        lo = np.searchsorted(neg_sorted, pos, side="left")
        hi = np.searchsorted(neg_sorted, pos, side="right")
        w = counts(idx_pos, pos.size)
        v = counts(idx_neg, neg.size)[:, order]
        cum = np.zeros((v.shape[0], v.shape[1] + 1))
        np.cumsum(v, axis=1, out=cum[:, 1:])
        below, upto = cum[:, lo], cum[:, hi]
        return (w * (below + 0.5 * (upto - below))).sum(axis=1) / (pos.size * neg.size)

    rng = np.random.default_rng(seed)
    pos, neg = s[y == 1], s[y == 0]
    chunk = max(1, chunk_elements // s.size)
    out = []
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        if stratified:
            out.append(auc_from_counts(pos, neg, rng.integers(0, pos.size, (b, pos.size)),
                                       rng.integers(0, neg.size, (b, neg.size))))
        else:
            idx = rng.integers(0, s.size, (b, s.size))
            out.append(auc_rows(y[idx].astype(bool), s[idx]))
    boot = np.concatenate(out)
    boot = boot[np.isfinite(boot)]
    low, high = np.percentile(boot, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return boot, (float(auc_rows(y.astype(bool), s[None, :])[0]), float(low), float(high))


def _replicates(y, s, n_boot, seed, stratified, compiled=False):
    """Replicate AUCs of the current bootstrap_auc_ci (NaN ones dropped), numpy or numba engine."""
    from acceflow.metrics import discrimination as d

    boot = d._bootstrap_replicates(np.asarray(y, int), np.asarray(s, float), n_boot, seed, stratified,
                                   compiled=compiled)
    return boot[np.isfinite(boot)]


def test_int32_draws_are_the_int64_stream():
    # the speed-up draws int32 indices; numpy must give the same values and leave the generator
    # in the same state as the default int64 draws of the previous code
    for n in (7, 1000, 7001, 2**20 + 3):
        a, b = np.random.default_rng(n), np.random.default_rng(n)
        np.testing.assert_array_equal(a.integers(0, n, (3, 500)), b.integers(0, n, (3, 500), dtype=np.int32))
        assert a.integers(0, 2**40) == b.integers(0, 2**40)


@pytest.mark.parametrize("case", [
    # (n, number of cases, score rounding: None = continuous, else decimals -> many ties)
    (60, 20, 1), (60, 45, 1), (300, 90, None), (301, 200, 2), (2500, 700, None), (2500, 1800, 1),
])
@pytest.mark.parametrize("stratified", [True, False])
@pytest.mark.parametrize("compiled", [False, True], ids=["numpy", "numba"])
def test_bootstrap_equals_previous_implementation(case, stratified, compiled, monkeypatch):
    n, m, decimals = case
    rng = np.random.default_rng(n + m)
    y = np.r_[np.ones(m, int), np.zeros(n - m, int)][rng.permutation(n)]
    s = rng.normal(0.8 * y, 1.0)
    if decimals is not None:
        s = np.round(s, decimals)
    n_boot = 450  # several chunks for the larger n (chunk = 2e6 // n replicates)
    ref_boot, ref = _reference_bootstrap(y, s, n_boot, seed=11, stratified=stratified,
                                         chunk_elements=100_000)
    from acceflow.metrics import discrimination as d

    # the engine bootstrap_auc_ci picks by size: all numpy, or the numba kernels from any size
    monkeypatch.setattr(d, "_KERNEL_MIN_ELEMENTS", 0 if compiled else 10**18)
    with monkeypatch.context() as mp:
        mp.setattr(d, "_BOOT_CHUNK_ELEMENTS", 100_000)
        new = bootstrap_auc_ci(y, s, n_boot=n_boot, seed=11, stratified=stratified)
        new_boot = _replicates(y, s, n_boot, 11, stratified, compiled)
    assert new_boot.shape == ref_boot.shape
    np.testing.assert_allclose(new_boot, ref_boot, rtol=0, atol=1e-12)
    np.testing.assert_allclose(new, ref, rtol=0, atol=1e-12)
    # default chunking too
    np.testing.assert_allclose(bootstrap_auc_ci(y, s, n_boot=60, seed=3, stratified=stratified),
                               _reference_bootstrap(y, s, 60, seed=3, stratified=stratified)[1],
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("y, s", [
    ([0, 1], [0.3, 0.7]),                      # tiny: one case, one control
    ([1, 0], [0.5, 0.5]),                      # tiny, tied
    ([0, 0, 1], [0.2, 0.9, 0.4]),              # one case: many one-class joint replicates
    ([1, 1, 1, 1, 0], [1, 2, 2, 3, 2]),        # one control, tied with two cases
    ([0, 1, 0, 1, 0, 1, 1], [2, 2, 2, 2, 2, 2, 2]),  # all tied: every replicate AUC is 1/2
    ([1, 0, 1, 0, 0, 1, 0, 0], [5, 1, 3, 3, 2, 9, 9, 0]),  # ties across classes, both directions
])
@pytest.mark.parametrize("stratified", [True, False])
@pytest.mark.parametrize("compiled", [False, True], ids=["numpy", "numba"])
def test_bootstrap_small_tied_and_one_class_replicates(y, s, stratified, compiled):
    y, s = np.asarray(y, int), np.asarray(s, float)
    ref_boot, _ = _reference_bootstrap(y, s, 300, seed=5, stratified=stratified)
    boot = _replicates(y, s, 300, 5, stratified, compiled)
    # the same replicates survive (one-class joint replicates are dropped by both) with equal AUCs
    assert boot.shape == ref_boot.shape
    np.testing.assert_allclose(boot, ref_boot, rtol=0, atol=1e-12)
    if not stratified and y.sum() == 1:
        assert boot.size < 300  # the one-case cohort does produce one-class replicates here
    if np.unique(s).size == 1:
        assert (boot == 0.5).all()


def test_bootstrap_draws_overlapped_in_a_thread_give_the_same_replicates(monkeypatch):
    # the compiled engine draws chunk k+1 in a worker thread while it scores chunk k: the
    # generator is still consumed in one order, so the replicates are those drawn sequentially
    from acceflow.metrics import discrimination as d

    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 500)
    s = np.round(rng.normal(0.6 * y, 1.0), 1)
    monkeypatch.setattr(d, "_BOOT_CHUNK_ELEMENTS", 5_000)  # 10 replicates per chunk: 40 chunks

    def replicates(stratified, overlap):
        with monkeypatch.context() as mp:
            mp.setattr(d, "_overlap_draws", lambda: overlap)
            return _replicates(y, s, 400, 8, stratified, compiled=True)

    for stratified in (True, False):
        overlapped = replicates(stratified, True)
        np.testing.assert_array_equal(overlapped, replicates(stratified, False))
        ref = _reference_bootstrap(y, s, 400, seed=8, stratified=stratified, chunk_elements=5_000)[0]
        np.testing.assert_allclose(overlapped, ref, rtol=0, atol=1e-12)


def test_bootstrap_engine_switches_at_the_documented_size(monkeypatch):
    from acceflow.metrics import discrimination as d

    calls = []
    real = d._twice_u_compiled
    monkeypatch.setattr(d, "_twice_u_compiled", lambda *a, **k: calls.append(1) or real(*a, **k))
    y = np.r_[np.ones(500, int), np.zeros(500, int)]
    s = np.arange(1000.0) % 37
    bootstrap_auc_ci(y, s, n_boot=9_999)  # 9,999,000 < 1e7 replicate x case values: numpy
    assert not calls
    bootstrap_auc_ci(y, s, n_boot=10_000)  # 1e7: the compiled kernels
    assert calls


@pytest.mark.parametrize("compiled", [False, True], ids=["numpy", "numba"])
def test_bootstrap_replicates_equal_sklearn_on_the_resamples(compiled):
    rng = np.random.default_rng(21)
    y = rng.integers(0, 2, 400)
    s = np.round(rng.normal(0.7 * y, 1.0), 1)
    for stratified in (True, False):
        boot = _replicates(y, s, 5, seed=9, stratified=stratified, compiled=compiled)
        # redraw the same resamples and score them with scikit-learn
        g = np.random.default_rng(9)
        pos, neg = s[y == 1], s[y == 0]
        if stratified:
            ip, ineg = g.integers(0, pos.size, (5, pos.size)), g.integers(0, neg.size, (5, neg.size))
            lab = np.r_[np.ones(pos.size), np.zeros(neg.size)]
            expected = [roc_auc_score(lab, np.r_[pos[i], neg[j]]) for i, j in zip(ip, ineg)]
        else:
            idx = g.integers(0, s.size, (5, s.size))
            expected = [roc_auc_score(y[i], s[i]) for i in idx]
        np.testing.assert_allclose(boot, expected, rtol=0, atol=1e-12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), n=st.integers(2, 40), levels=st.integers(1, 6), stratified=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_bootstrap_engines_agree_on_random_tied_cohorts(data, n, levels, stratified, seed):
    # random small cohorts whose scores take only `levels` values (ties everywhere, often a single
    # case or control, many one-class joint replicates): numba kernels, numpy engine and the
    # re-ranking reference give the same replicate AUCs
    y = np.array(data.draw(st.lists(st.integers(0, 1), min_size=n, max_size=n).filter(lambda v: 0 < sum(v) < n)))
    s = np.array(data.draw(st.lists(st.integers(0, levels - 1), min_size=n, max_size=n)), float)
    compiled = _replicates(y, s, 50, seed, stratified, compiled=True)
    np.testing.assert_array_equal(compiled, _replicates(y, s, 50, seed, stratified, compiled=False))
    np.testing.assert_allclose(compiled, _reference_bootstrap(y, s, 50, seed=seed, stratified=stratified)[0],
                               rtol=0, atol=1e-12)
