"""Tests for acceflow.metrics.icc."""


import numpy as np
import pandas as pd
import pingouin
import pytest
from scipy import stats

from acceflow.metrics.icc import icc_table, koo_li_band, stable_features, within_subject_cv

# Shrout & Fleiss (1979), Table 1: 6 targets rated by 4 judges
SF = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]],
              dtype=float)
SF_PUBLISHED = {"ICC(1,1)": 0.17, "ICC(2,1)": 0.29, "ICC(3,1)": 0.71,
                "ICC(1,k)": 0.44, "ICC(2,k)": 0.62, "ICC(3,k)": 0.91}


def _long(wide, name="score"):
    n, k = wide.shape
    return pd.DataFrame({"case_id": np.repeat(np.arange(1, n + 1), k),
                         "repeat": np.tile(np.arange(1, k + 1), n), name: wide.ravel()})


def _mean_squares(x):
    n, k = x.shape
    grand = x.mean()
    ss_rows = k * ((x.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((x.mean(axis=0) - grand) ** 2).sum()
    ss_err = ((x - grand) ** 2).sum() - ss_rows - ss_cols
    msr = ss_rows / (n - 1)
    msw = (ss_cols + ss_err) / (n * (k - 1))
    mse = ss_err / ((n - 1) * (k - 1))
    return msr, msw, mse


@pytest.mark.parametrize("form", list(SF_PUBLISHED))
def test_shrout_fleiss_table2(form):
    t = icc_table(_long(SF), ["score"], form=form)
    assert t.loc[0, "icc_form"] == form
    assert round(t.loc[0, "icc"], 2) == SF_PUBLISHED[form]
    assert t.loc[0, "n_subjects"] == 6 and t.loc[0, "n_repeats"] == 4
    assert t.loc[0, "ci_low"] < t.loc[0, "icc"] < t.loc[0, "ci_high"]


def test_ci_full_precision_matches_mcgraw_wong_f_intervals():
    n, k = SF.shape
    msr, msw, mse = _mean_squares(SF)
    q = stats.f.ppf
    # ICC(1,1): F = MSR/MSW on (n-1, n(k-1)) df
    f1 = msr / msw
    fl, fu = f1 / q(0.975, n - 1, n * (k - 1)), f1 * q(0.975, n * (k - 1), n - 1)
    expected1 = [(fl - 1) / (fl + k - 1), (fu - 1) / (fu + k - 1)]
    # ICC(3,1): F = MSR/MSE on (n-1, (n-1)(k-1)) df
    f3 = msr / mse
    fl, fu = f3 / q(0.975, n - 1, (n - 1) * (k - 1)), f3 * q(0.975, (n - 1) * (k - 1), n - 1)
    expected3 = [(fl - 1) / (fl + k - 1), (fu - 1) / (fu + k - 1)]
    for form, expected in [("ICC(1,1)", expected1), ("ICC(3,1)", expected3)]:
        row = icc_table(_long(SF), ["score"], form=form).iloc[0]
        np.testing.assert_allclose([row["ci_low"], row["ci_high"]], expected, rtol=1e-10)
    # not rounded to pingouin's default 2 decimals ...
    row = icc_table(_long(SF), ["score"], form="ICC(2,1)").iloc[0]
    assert any(abs(v - round(v, 2)) > 1e-9 for v in (row["ci_low"], row["ci_high"]))
    # ... equal to pingouin's unrounded interval, and pingouin's options are restored
    assert pingouin.options["round.column.CI95"] == 2
    saved = dict(pingouin.options)
    pingouin.options["round.column.CI95"] = None
    try:
        ref = pingouin.intraclass_corr(_long(SF), "case_id", "repeat", "score")
    finally:
        pingouin.options.clear()
        pingouin.options.update(saved)
    ci = ref.loc[ref["Type"].isin(["ICC(A,1)", "ICC2"]), "CI95"].iloc[0]
    np.testing.assert_allclose([row["ci_low"], row["ci_high"]], ci, rtol=1e-12)


def test_wcv_known_answer():
    # subject 1: (9, 11) -> mean 10, SD sqrt(2), CV^2 = 0.02
    # subject 2: (19, 21) -> mean 20, SD sqrt(2), CV^2 = 0.005
    # wCV = sqrt((0.02 + 0.005) / 2) = sqrt(0.0125)
    df = _long(np.array([[9.0, 11.0], [19.0, 21.0]]), "f")
    assert within_subject_cv(df, "f") == pytest.approx(np.sqrt(0.0125))
    # a third subject without its second repeat is ignored
    df3 = pd.concat([df, pd.DataFrame({"case_id": [3], "repeat": [1], "f": [5.0]})])
    assert within_subject_cv(df3, "f") == pytest.approx(np.sqrt(0.0125))


def test_incomplete_subjects_are_dropped():
    base = _long(SF)
    extra = pd.DataFrame({"case_id": [7, 7, 7, 8, 8, 8, 8], "repeat": [1, 2, 3, 1, 2, 3, 4],
                          "score": [1.0, 2.0, 3.0, 4.0, np.nan, 5.0, 6.0]})
    t = icc_table(pd.concat([base, extra]), ["score"], form="ICC(3,1)")
    ref = icc_table(base, ["score"], form="ICC(3,1)")
    assert t.loc[0, "n_subjects"] == 6
    assert t.loc[0, "icc"] == pytest.approx(ref.loc[0, "icc"])


def test_zero_variance_feature_is_nan_and_not_stable():
    df = _long(SF).assign(const=3.0)
    t = icc_table(df, ["score", "const"], form="ICC(3,1)", threshold=0.5)
    const = t.set_index("feature").loc["const"]
    assert np.isnan(const["icc"]) and np.isnan(const["ci_low"])
    assert not const["stable"]
    assert const["koo_li_band"] == "undefined"
    assert list(t.columns[:9]) == ["feature", "icc_form", "icc", "ci_low", "ci_high", "wcv",
                                   "n_subjects", "n_repeats", "stable"]


def test_stable_features_and_bands():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(30, 1))
    df = _long(truth + 0.05 * rng.normal(size=(30, 2)), "good")
    df["noise"] = rng.normal(size=len(df))
    t = icc_table(df, ["good", "noise"])
    assert stable_features(t) == ["good"]
    assert [koo_li_band(x) for x in (0.2, 0.5, 0.75, 0.9, 0.91)] == \
        ["poor", "moderate", "good", "good", "excellent"]


def test_invalid_inputs_raise():
    df = _long(SF)
    with pytest.raises(ValueError, match="form must be one of"):
        icc_table(df, ["score"], form="ICC(4,1)")
    with pytest.raises(ValueError, match="lacks columns"):
        icc_table(df, ["nope"])
    with pytest.raises(ValueError, match="must occur once"):
        icc_table(pd.concat([df, df.iloc[:1]]), ["score"])
    with pytest.raises(ValueError, match="at least 2 repeats"):
        icc_table(df[df["repeat"] == 1], ["score"])


def test_many_features_in_one_table():
    """200 features x 30 subjects (timing belongs to benchmarks, not tests)."""
    rng = np.random.default_rng(1)
    n, k, n_feat = 30, 2, 200
    truth = rng.normal(size=(n, 1, n_feat))
    values = (truth + 0.3 * rng.normal(size=(n, k, n_feat))).reshape(n * k, n_feat)
    df = pd.DataFrame(values, columns=[f"f{i}" for i in range(n_feat)])
    df.insert(0, "repeat", np.tile(np.arange(k), n))
    df.insert(0, "case_id", np.repeat(np.arange(n), k))
    t = icc_table(df, list(df.columns[2:]))
    assert len(t) == n_feat and t["icc"].between(0.5, 1).all()
    # true ICC = 1 / (1 + 0.3^2) = 0.917; every estimate lies near it
    assert abs(t["icc"].median() - 1 / 1.09) < 0.05


# ------------------------------------------------------------ ICC(2,k) interval: psych's, said so (issue 15)

# McGraw & Wong (1996), Table 6: 10 targets, 2 raters; R's output for it (DescTools::ICC, recorded in
# f_ICC.m by R. P. Matthew, 2018): ICC2 0.720 [0.228, 0.922], ICC2k 0.837 [0.371, 0.959]
MW6 = np.array([[103, 119], [82, 65], [116, 106], [102, 102], [99, 105], [98, 100], [104, 107], [62, 85],
                [97, 101], [107, 110]], dtype=float)


def _psych_icc2_limits(x, alpha=0.05):
    """psych::ICC's ICC(2,1) interval (Fleiss & Shrout 1978), as in its source (``L3``, ``U3``)."""
    n, k = x.shape
    msb, _, mse = _mean_squares(x)
    msj = n * ((x.mean(axis=0) - x.mean()) ** 2).sum() / (k - 1)
    icc2 = (msb - mse) / (msb + (k - 1) * mse + k * (msj - mse) / n)
    fj = msj / mse
    vn = (k - 1) * (n - 1) * (k * icc2 * fj + n * (1 + (k - 1) * icc2) - k * icc2) ** 2
    vd = (n - 1) * k**2 * icc2**2 * fj**2 + (n * (1 + (k - 1) * icc2) - k * icc2) ** 2
    v = vn / vd
    fu, fl = stats.f.ppf(1 - alpha / 2, n - 1, v), stats.f.ppf(1 - alpha / 2, v, n - 1)
    low = n * (msb - fu * mse) / (fu * (k * msj + (k * n - k - n) * mse) + n * msb)
    high = n * (fl * msb - mse) / (k * msj + (k * n - k - n) * mse + n * fl * msb)
    return low, high, msb, msj, mse


@pytest.mark.parametrize("data", [SF, MW6], ids=["shrout_fleiss", "mcgraw_wong_table6"])
def test_icc2k_interval_is_psych_spearman_brown_step_up(data):
    n, k = data.shape
    low, high, *_ = _psych_icc2_limits(data)
    row2 = icc_table(_long(data), ["score"], form="ICC(2,1)").iloc[0]
    np.testing.assert_allclose([row2["ci_low"], row2["ci_high"]], [low, high], rtol=1e-10)
    rowk = icc_table(_long(data), ["score"], form="ICC(2,k)").iloc[0]
    step_up = [k * b / (1 + (k - 1) * b) for b in (low, high)]  # psych: L3k <- L3 * nj/(1 + L3 * (nj - 1))
    np.testing.assert_allclose([rowk["ci_low"], rowk["ci_high"]], step_up, rtol=1e-10)


def test_icc2_forms_equal_rs_printed_output_on_mcgraw_wong_table6():
    got = {f: icc_table(_long(MW6), ["score"], form=f).iloc[0] for f in ("ICC(2,1)", "ICC(2,k)")}
    assert [round(float(got["ICC(2,1)"][c]), 3) for c in ("icc", "ci_low", "ci_high")] == [0.720, 0.228, 0.922]
    assert [round(float(got["ICC(2,k)"][c]), 3) for c in ("icc", "ci_low", "ci_high")] == [0.837, 0.371, 0.959]


@pytest.mark.parametrize("data", [SF, MW6], ids=["shrout_fleiss", "mcgraw_wong_table6"])
def test_icc2k_interval_equals_mcgraw_wong_table7_written_their_way(data):
    """McGraw & Wong's ICC(A,k) interval (Table 7: its own v and F for the average measure) gives the same
    numbers as psych's step-up, so the docstring may cite both."""
    n, k = data.shape
    msr, _, mse = _mean_squares(data)
    msc = n * ((data.mean(axis=0) - data.mean()) ** 2).sum() / (k - 1)
    icc2k = (msr - mse) / (msr + (msc - mse) / n)
    c, d = icc2k / (n * (1 - icc2k)), 1 + icc2k * (n - 1) / (n * (1 - icc2k))
    v = (c * msc + d * mse) ** 2 / ((c * msc) ** 2 / (k - 1) + (d * mse) ** 2 / ((n - 1) * (k - 1)))
    fl, fu = stats.f.ppf(0.975, n - 1, v), stats.f.ppf(0.975, v, n - 1)
    mw = [n * (msr - fl * mse) / (fl * (msc - mse) + n * msr), n * (fu * msr - mse) / (msc - mse + n * fu * msr)]
    row = icc_table(_long(data), ["score"], form="ICC(2,k)").iloc[0]
    assert row["icc"] == pytest.approx(icc2k, rel=1e-12)
    np.testing.assert_allclose([row["ci_low"], row["ci_high"]], mw, rtol=1e-10)


# ----------------------------------------------------------------------------- unlinked readers (issue 15)

def test_auto_form_for_unlinked_readers_is_one_way():
    from acceflow.metrics.icc import icc_form_warning, resolve_icc_form

    assert resolve_icc_form("auto", "inter-reader-unlinked") == "ICC(1,1)"
    assert resolve_icc_form("auto", "inter-reader") == "ICC(2,1)"  # linked readers unchanged
    assert icc_form_warning(resolve_icc_form("auto", "inter-reader-unlinked"), "inter-reader-unlinked") == ""
    assert icc_form_warning("ICC(1,k)", "inter-reader-unlinked") == ""
    for form in ("ICC(2,1)", "ICC(3,1)", "ICC(2,k)", "ICC3"):
        msg = icc_form_warning(form, "inter-reader-unlinked")
        assert "not the same people" in msg and "ICC(1,1)" in msg
    assert icc_form_warning("ICC(2,1)", "inter-reader") == ""


def test_unlinked_readers_are_numbered_within_subject_and_give_the_one_way_icc():
    from acceflow.metrics.icc import unlinked_repeats

    # Shrout & Fleiss' 6 targets, each read by 4 of 12 readers (different ones per target)
    rng = np.random.default_rng(0)
    long = pd.DataFrame([{"case_id": i + 1, "repeat": f"R{r:02d}", "score": SF[i, j]}
                         for i in range(6) for j, r in enumerate(rng.choice(12, 4, replace=False))])
    # by reader id, listwise deletion leaves almost no complete subject
    assert icc_table(long, ["score"], form="ICC(1,1)").loc[0, "n_subjects"] < 2
    numbered = unlinked_repeats(long)
    assert sorted(numbered["repeat"].unique()) == ["1", "2", "3", "4"]
    t = icc_table(numbered, ["score"], form="ICC(1,1)").iloc[0]
    assert t["n_subjects"] == 6 and round(t["icc"], 2) == SF_PUBLISHED["ICC(1,1)"]  # 0.17, Shrout & Fleiss
