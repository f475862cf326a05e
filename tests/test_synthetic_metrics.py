"""The synthetic-data audit (acceflow.metrics.synthetic) on distributions with known answers."""
import numpy as np
import pytest
from scipy import stats

from acceflow.metrics import synthetic as S


def test_identical_samples_give_ks_zero_and_wasserstein_zero():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 3)) * [1, 10, 100]
    t = S.fidelity_table(X, X.copy(), ["a", "b", "c"])
    assert np.allclose(t["ks_statistic"], 0) and np.allclose(t["ks_pvalue"], 1) and np.allclose(t["ks_qvalue"], 1)
    assert np.allclose(t["wasserstein"], 0) and np.allclose(t["wasserstein_std"], 0)


@pytest.mark.parametrize("delta", [0.5, 2.0])
def test_wasserstein_of_a_shifted_normal_is_the_shift_in_units_and_in_sds(delta):
    """W1(N(0, s²), N(δ, s²)) = δ exactly; with samples, δ within sampling error. Quantile-matched samples
    make it exact: the shift of every order statistic is δ."""
    q = stats.norm.ppf((np.arange(1, 2001) - 0.5) / 2000)
    scale = 7.0  # units: W in units is δ·7, W / SD ≈ δ
    t = S.fidelity_table((q * scale)[:, None], ((q + delta) * scale)[:, None], ["x"])
    assert t.loc[0, "wasserstein"] == pytest.approx(delta * scale, rel=1e-9)
    assert t.loc[0, "wasserstein_std"] == pytest.approx(delta, rel=0.01)  # the SD of the quantile grid is ~0.999
    rng = np.random.default_rng(0)
    t = S.fidelity_table(rng.normal(size=(4000, 1)), rng.normal(delta, 1, size=(4000, 1)), ["x"])
    assert t.loc[0, "wasserstein"] == pytest.approx(delta, abs=0.06)
    assert t.loc[0, "ks_qvalue"] < 1e-6


def test_bh_qvalues_match_the_hand_computation():
    # p sorted: 0.01, 0.02, 0.03, 0.5 (m = 4): p·m/rank = 0.04, 0.04, 0.04, 0.5, monotone from the top
    assert np.allclose(S.bh_qvalues([0.03, 0.5, 0.01, 0.02]), [0.04, 0.5, 0.04, 0.04])


def test_mutual_information_sees_the_label_in_real_and_not_in_shuffled_synthetic():
    rng = np.random.default_rng(3)
    y = np.repeat([0, 1], 200)
    X = rng.normal(size=(400, 1)) + 3 * y[:, None]
    t = S.fidelity_table(X, X, ["x"], y, rng.permutation(y))
    assert t.loc[0, "mutual_information_real"] > 0.4  # near the bound log 2 = 0.69 for well-separated classes
    assert t.loc[0, "mutual_information_synthetic"] < 0.05


def test_correlation_comparison_hand_values():
    """Real: x, y perfectly rank-correlated (rho 1); synthetic: y reversed (rho -1). One pair: |Δρ| = 2,
    MAE 2, SDMetrics similarity 1 - 2/2 = 0; identical sets give MAE 0, similarity 1."""
    x = np.arange(10.0)
    real = np.c_[x, x ** 2]
    syn = np.c_[x, -x]
    c = S.correlation_comparison(real, syn)
    assert c["correlation_mae"] == pytest.approx(2.0) and c["correlation_similarity"] == pytest.approx(0.0)
    same = S.correlation_comparison(real, real)
    assert same["correlation_mae"] == 0 and same["correlation_similarity"] == 1


def test_detection_auc_is_half_for_one_distribution_and_near_one_for_separated_ones():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(300, 4)), rng.normal(size=(300, 4))
    assert abs(S.detection_auc(a, b, seed=1) - 0.5) < 0.08
    assert S.detection_auc(a, b + 3, seed=1) > 0.98


def test_a_copying_generator_is_flagged_as_memorised_and_a_fresh_sample_is_not():
    rng = np.random.default_rng(7)
    pool = rng.normal(size=(500, 5))
    train, holdout = pool[:400], pool[400:]
    copies = train[rng.integers(0, 400, 200)]
    m = S.memorisation(train, holdout, copies)
    assert m["dcr_synthetic_median"] == 0 and m["memorisation_ratio"] == 0
    assert m["share_too_close"] == 1.0 and m["n_exact_copies"] == 200
    fresh = S.memorisation(train, holdout, rng.normal(size=(200, 5)))
    assert 0.8 < fresh["memorisation_ratio"] < 1.25
    assert fresh["share_too_close"] < 0.15 and fresh["n_exact_copies"] == 0


def test_precision_recall_catch_mode_collapse_and_off_support_samples():
    rng = np.random.default_rng(11)
    real = rng.normal(size=(400, 2))
    same = S.precision_recall(real, rng.normal(size=(400, 2)))
    assert same["precision"] > 0.9 and same["recall"] > 0.9
    # mode collapse: every synthetic case near one point of the real support -> precision high, recall low
    collapsed = S.precision_recall(real, rng.normal(scale=0.05, size=(400, 2)))
    assert collapsed["precision"] > 0.9 and collapsed["recall"] < 0.2
    # off support: far away -> precision 0
    assert S.precision_recall(real, rng.normal(size=(400, 2)) + 20)["precision"] == 0


def test_frechet_distance_matches_the_closed_form_and_monai():
    """Two Gaussians' Fréchet distance with the samples' own moments: ||Δμ||² + tr(Σ1 + Σ2 − 2(Σ1Σ2)^½); with
    equal diagonal covariances s² I it is ||Δμ||² (sample moments: checked against MONAI's get_fid_score)."""
    torch = pytest.importorskip("torch")
    from monai.metrics.fid import get_fid_score

    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(500, 3)), rng.normal(size=(500, 3)) * 2 + 1
    ours = S.frechet_distance(a, b)
    theirs = float(get_fid_score(torch.from_numpy(b), torch.from_numpy(a)))
    assert ours == pytest.approx(theirs, rel=1e-8)
    # population values: Δμ = 1 per dim (3), Σ1 = I, Σ2 = 4I: 3 + 3·(1 + 4 − 2·2) = 6
    assert ours == pytest.approx(6.0, rel=0.15)
    assert S.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_a_shuffled_label_generator_fails_label_invariance():
    rng = np.random.default_rng(13)
    y = np.repeat([0, 1], 150)
    X = rng.normal(size=(300, 6)) + 2 * y[:, None]
    y_fresh = np.repeat([0, 1], 150)
    fresh = rng.normal(size=(300, 6)) + 2 * y_fresh[:, None]
    faithful = S.label_invariance(X, y, fresh, y_fresh)
    assert (faithful["share_rejected"] <= 1 / 6).all()
    shuffled = S.label_invariance(X, y, fresh, rng.permutation(y_fresh))
    assert (shuffled["share_rejected"] == 1).all()
    assert list(shuffled["stratum"]) == ["0", "1"]


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="missing or infinite"):
        S.fidelity_table([[1.0], [np.nan]], [[1.0], [2.0]], ["x"])
    with pytest.raises(ValueError, match="same columns"):
        S.detection_auc(np.zeros((10, 2)), np.zeros((10, 3)))
    lab = S.label_invariance(np.zeros((4, 1)), [0, 0, 1, 1], np.zeros((3, 1)), [0, 0, 0])
    assert lab.set_index("stratum").loc["1", "note"].startswith("class 1: 2 real and 0 synthetic")


def test_intensity_range_known_answer():
    # real lesions: class 0 span 0..100 HU, class 1 span 20..300 HU
    r = S.intensity_range([0, 10, 20, 50], [80, 100, 300, 250], [0, 0, 1, 1],
                          [5, -10, 30, 40], [90, 60, 310, 200], [0, 0, 1, 1]).set_index("stratum")
    assert list(r.index) == ["all", "0", "1"]
    assert (r.loc["all", "real_low"], r.loc["all", "real_high"]) == (0, 300)
    assert (r.loc["all", "synthetic_low"], r.loc["all", "synthetic_high"]) == (-10, 310)
    assert r.loc["0", "share_within"] == 0.5  # -10 is darker than any real class-0 lesion
    assert r.loc["1", "share_within"] == 0.5  # 310 is brighter than any real class-1 lesion
    assert r.loc["all", "share_within"] == 0.5
    assert r.loc["1", "n_synthetic"] == 2
    with pytest.raises(ValueError, match="same length"):
        S.intensity_range([0], [1, 2], [0], [0], [1], [0])
