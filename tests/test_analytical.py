"""Agreement, stable-feature selection, segmentation agreement and ComBat (acceflow.analytical)."""
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from conftest import REPO
from scipy.spatial import cKDTree

from acceflow.metrics.agreement import (
    agreement_table,
    bland_altman,
    lins_ccc,
    repeatability_coefficient,
    within_subject_sd,
)
from acceflow.metrics.icc import ICC_FORM_BY_DESIGN, icc_table, resolve_icc_form, select_stable
from acceflow.metrics.segmentation import segmentation_agreement
from acceflow.models.harmonisation import ComBat, site_effect, site_effect_table

# ------------------------------------------------------------------------------ agreement


def test_wsd_rc_and_wcv_known_answers():
    pairs = np.array([[10.0, 12.0], [20.0, 20.0], [30.0, 27.0]])
    # variances: 2, 0, 4.5 -> wSD^2 = 6.5/3
    assert within_subject_sd(pairs) == pytest.approx(np.sqrt(6.5 / 3))
    assert repeatability_coefficient(pairs) == pytest.approx(1.96 * np.sqrt(2) * np.sqrt(6.5 / 3))
    long = pd.DataFrame({"case_id": [1, 1, 2, 2, 3, 3], "repeat": ["s1", "s2"] * 3, "f": pairs.ravel()})
    row = agreement_table(long, ["f"]).iloc[0]
    cv2 = np.array([2 / 11 ** 2, 0.0, 4.5 / 28.5 ** 2])  # (SD_i / mean_i)^2
    assert row["wcv"] == pytest.approx(np.sqrt(cv2.mean()))
    assert row["wsd"] == pytest.approx(np.sqrt(6.5 / 3)) and row["n_subjects"] == 3


def test_bland_altman_known_answer_and_direction():
    x, y = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 2.0, 5.0, 5.0])  # d = 1, 0, 2, 1
    ba = bland_altman(x, y)
    sd = np.std([1, 0, 2, 1], ddof=1)
    assert ba["bias"] == pytest.approx(1.0) and ba["sd"] == pytest.approx(sd)
    assert ba["loa_low"] == pytest.approx(1 - 1.959964 * sd, rel=1e-6)
    assert ba["loa_high"] == pytest.approx(1 + 1.959964 * sd, rel=1e-6)
    long = pd.DataFrame({"case_id": np.repeat([1, 2, 3, 4], 2), "repeat": ["scan2", "scan1"] * 4,
                         "f": np.c_[y, x].ravel()})  # rows out of order: scan2 - scan1 still
    assert agreement_table(long, ["f"]).iloc[0]["ba_bias"] == pytest.approx(1.0)


def test_lins_ccc_known_answers_and_ci():
    assert lins_ccc([1, 2, 3, 4], [2, 3, 4, 5])[0] == pytest.approx(2.5 / 3.5)
    assert lins_ccc([1, 2, 3, 4], [2, 4, 6, 8])[0] == pytest.approx(2 * 2.5 / (1.25 + 5 + 6.25))
    # Lin (1989) z-transform CI, checked against the formula written out independently
    rng = np.random.default_rng(3)
    x = rng.normal(10, 2, 40)
    y = x + rng.normal(0.3, 0.8, 40)
    ccc, lo, hi = lins_ccc(x, y)
    mx, my, sx2, sy2 = x.mean(), y.mean(), x.var(), y.var()
    sxy = ((x - mx) * (y - my)).mean()
    r = sxy / np.sqrt(sx2 * sy2)
    u = (mx - my) / (sx2 * sy2) ** 0.25
    var = ((1 - r**2) * ccc**2 / ((1 - ccc**2) * r**2) + 2 * ccc**3 * (1 - ccc) * u**2 / (r * (1 - ccc**2) ** 2)
           - ccc**4 * u**4 / (2 * r**2 * (1 - ccc**2) ** 2)) / 38
    assert lo == pytest.approx(np.tanh(np.arctanh(ccc) - 1.959964 * np.sqrt(var)), rel=1e-6)
    assert hi == pytest.approx(np.tanh(np.arctanh(ccc) + 1.959964 * np.sqrt(var)), rel=1e-6)
    assert lo < ccc < hi and ccc < np.corrcoef(x, y)[0, 1]
    assert np.isnan(lins_ccc([1, 2], [1, 2])[0])


def test_agreement_table_three_repeats_has_no_pairwise_statistics():
    long = pd.DataFrame({"case_id": np.repeat([1, 2, 3], 3), "repeat": ["a", "b", "c"] * 3,
                         "f": [1.0, 1.1, 0.9, 2.0, 2.2, 2.1, 3.0, 3.1, 2.8]})
    row = agreement_table(long, ["f"]).iloc[0]
    assert row["n_repeats"] == 3 and np.isfinite(row["wsd"]) and np.isnan(row["ccc"]) and np.isnan(row["ba_bias"])


# ---------------------------------------------------------------------------- ICC design / selection


def test_icc_form_follows_the_design_with_override():
    assert resolve_icc_form("auto", "test-retest") == "ICC(2,1)"
    assert resolve_icc_form("auto", "inter-reader") == "ICC(2,1)"
    assert resolve_icc_form("auto", "perturbation") == "ICC(1,1)"
    assert resolve_icc_form("ICC(3,k)", "perturbation") == "ICC(3,k)"
    assert resolve_icc_form("auto", "inter-reader-unlinked") == "ICC(1,1)"
    assert set(ICC_FORM_BY_DESIGN) == {"test-retest", "inter-reader", "inter-reader-unlinked", "perturbation"}
    with pytest.raises(ValueError):
        resolve_icc_form("auto", "phantom")


def test_select_stable_lists_every_dropped_feature_with_its_reason():
    rng = np.random.default_rng(0)
    truth = rng.normal(100, 20, 30)
    long = pd.DataFrame({"case_id": np.repeat(np.arange(30), 2), "repeat": ["s1", "s2"] * 30})
    long["good"] = np.repeat(truth, 2) + rng.normal(0, 1, 60)
    long["noisy"] = np.repeat(truth, 2) + rng.normal(0, 40, 60)
    long["const"] = 1.0
    t = icc_table(long, ["good", "noisy", "const"])
    kept, dropped = select_stable(t, 0.75)
    assert kept == ["good"] and dropped["feature"].tolist() == ["noisy", "const"]
    assert "lower bound" in dropped["reason"].iloc[0] and "undefined" in dropped["reason"].iloc[1]
    kept, dropped = select_stable(t, 0.75, max_wcv=1e-4)
    assert kept == [] and "wCV" in dropped.set_index("feature").loc["good", "reason"]


# ------------------------------------------------------------------------------ segmentation


def _cube(shift=0, size=20, spacing=(1.0, 1.0, 1.0)):
    a = np.zeros((size, size, size), np.uint8)
    a[5:15, 5:15, 5 + shift:15 + shift] = 1
    img = sitk.GetImageFromArray(a)
    img.SetSpacing(spacing)
    return img


def _brute_force_surface(mask: np.ndarray, spacing_zyx):
    from scipy import ndimage

    surf = mask & ~ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(3, 1))
    return np.argwhere(surf) * np.asarray(spacing_zyx)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 0.5, 1.5)])
def test_segmentation_agreement_known_answers(spacing):
    a, b = _cube(0, spacing=spacing), _cube(2, spacing=spacing)
    res = segmentation_agreement(a, b)
    assert res["dice"] == pytest.approx(0.8) and res["jaccard"] == pytest.approx(800 / 1200)
    assert res["volume_a_ml"] == pytest.approx(1000 * np.prod(spacing) / 1000)
    pa = _brute_force_surface(sitk.GetArrayFromImage(a) > 0, spacing[::-1])
    pb = _brute_force_surface(sitk.GetArrayFromImage(b) > 0, spacing[::-1])
    dab, dba = cKDTree(pb).query(pa)[0], cKDTree(pa).query(pb)[0]
    assert res["hd95_mm"] == pytest.approx(max(np.percentile(dab, 95), np.percentile(dba, 95)))
    assert res["msd_mm"] == pytest.approx(np.r_[dab, dba].mean())
    assert res["hd95_mm"] <= 2 * spacing[0] + 1e-9  # the shift is 2 voxels along x
    same = segmentation_agreement(a, a)
    assert same["dice"] == 1.0 and same["hd95_mm"] == 0.0 and same["msd_mm"] == 0.0


def test_segmentation_agreement_refuses_different_grids():
    with pytest.raises(ValueError, match="same grid"):
        segmentation_agreement(_cube(0), _cube(0, spacing=(2.0, 1.0, 1.0)))


# ------------------------------------------------------------------------------------ ComBat


def test_combat_reproduces_neurocombat():
    """Reference: neuroCombat 0.2.12 (Fortin), parametric EB, no covariates, on this table."""
    ref = pd.read_csv(REPO / "tests/data/combat_neurocombat_reference.tsv", sep="\t")
    feats = [f"f{i}" for i in range(5)]
    out = ComBat(batch="site").fit_transform(ref[["site", *feats]])
    np.testing.assert_allclose(out[feats].to_numpy(), ref[[f"combat_{f}" for f in feats]].to_numpy(),
                               rtol=0, atol=1e-4 * ref[feats].abs().max().max())


def _neurocombat_mean_only(values, sites):
    """neuroCombat's parametric mean-only path (neuroCombat.py: standardize_across_features,
    fit_LS_model_and_find_priors, find_parametric_adjustments, adjust_data_final), no covariates,
    written out in numpy on a (samples x features) array."""
    levels = sorted(set(sites))
    design = np.column_stack([(sites == b).astype(float) for b in levels])
    n_sample, n_per = len(sites), design.sum(axis=0)
    B_hat = np.linalg.solve(design.T @ design, design.T @ values)         # site means
    grand_mean = (n_per / n_sample) @ B_hat
    var_pooled = ((values - design @ B_hat) ** 2).sum(axis=0) / n_sample
    s_data = (values - grand_mean) / np.sqrt(var_pooled)
    gamma_hat = np.linalg.solve(design.T @ design, design.T @ s_data)     # (sites x features)
    gamma_bar, t2 = gamma_hat.mean(axis=1), gamma_hat.var(axis=1, ddof=1)
    # postmean(g_hat, g_bar, n=1, d_star=1, t2) = (t2 * 1 * g_hat + 1 * g_bar) / (t2 * 1 + 1)
    gamma_star = (t2[:, None] * gamma_hat + gamma_bar[:, None]) / (t2[:, None] + 1)
    return (s_data - design @ gamma_star) * np.sqrt(var_pooled) + grand_mean


def test_combat_mean_only_follows_neurocombat_and_sva():
    """mean-only shrinks with n = 1 (neuroCombat / sva), not with the site size: sites of 5, 12 and 30 cases."""
    rng = np.random.default_rng(4)
    sizes = {"a": 5, "b": 12, "c": 30}
    sites = np.concatenate([[s] * n for s, n in sizes.items()])
    shift = np.concatenate([[loc] * n for loc, n in zip([0.0, 1.5, -1.0], sizes.values())])[:, None]
    values = rng.normal(size=(len(sites), 6)) + shift * rng.uniform(0.5, 1.5, 6) + np.arange(6) * 3
    X = pd.DataFrame(values, columns=[f"f{i}" for i in range(6)]).assign(site=sites)
    out = ComBat(batch="site", mean_only=True).fit_transform(X)
    expected = _neurocombat_mean_only(values, sites)
    np.testing.assert_allclose(out.to_numpy(), expected, rtol=0, atol=1e-10)
    # the old shrinkage with n = site size would differ visibly
    combat = ComBat(batch="site", mean_only=True).fit(X)
    z = (values - combat.alpha_) / combat.sigma_
    g_hat = np.array([z[sites == s].mean(axis=0) for s in sorted(sizes)])
    g_bar, t2 = g_hat.mean(axis=1), g_hat.var(axis=1, ddof=1)
    n = np.array(list(sizes.values()))[:, None]
    by_size = (t2[:, None] * n * g_hat + g_bar[:, None]) / (t2[:, None] * n + 1)
    assert np.abs(np.vstack([combat.gamma_[s] for s in sorted(sizes)]) - by_size).max() > 0.05


def _sites(rng, n=40):
    sites = np.repeat(["a", "b", "c"], n)
    loc = np.repeat([0.0, 4.0, -3.0], n)[:, None]
    scale = np.repeat([1.0, 2.0, 0.5], n)[:, None]
    X = pd.DataFrame(rng.normal(size=(3 * n, 6)) * scale + loc + np.arange(6) * 10,
                     columns=[f"f{i}" for i in range(6)])
    X.insert(0, "cohort", sites)
    return X


def test_combat_frozen_parameters_and_unseen_site_policy():
    rng = np.random.default_rng(1)
    X = _sites(rng)
    train = X[X["cohort"].isin(["a", "b"])]
    cb = ComBat().fit(train)
    first = cb.transform(train)
    cb.fit(train)  # refit gives the same frozen parameters; transform of a subset uses them
    np.testing.assert_allclose(cb.transform(train.iloc[:5]).to_numpy(), first.iloc[:5].to_numpy())
    with pytest.raises(ValueError, match="not in the training data"):
        cb.transform(X)
    cb_self = ComBat(unseen="self").fit(train)
    out = cb_self.transform(X)
    assert cb_self.fallback_sites_ == ["c"]
    for f in ["f0", "f3"]:
        means = out.groupby(X["cohort"])[f].mean()
        sds = out.groupby(X["cohort"])[f].std()
        assert means.max() - means.min() < 0.6 and sds.max() / sds.min() < 1.5
    with pytest.raises(ValueError, match="at least"):
        ComBat(unseen="self", min_cases=5).fit(train).transform(X[X["cohort"] == "c"].iloc[:3])


def test_combat_in_a_pipeline_is_refitted_per_fold():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import Pipeline

    rng = np.random.default_rng(2)
    X = _sites(rng, 30)
    y = (X["f1"] - X.groupby("cohort")["f1"].transform("mean") > 0).astype(int)
    pipe = Pipeline([("harmonise", ComBat(unseen="self")), ("clf", LogisticRegression())])
    scores = cross_val_score(pipe, X, y, cv=3, scoring="roc_auc")
    assert np.all(scores > 0.8)


def test_site_effect_before_and_after():
    rng = np.random.default_rng(4)
    X = _sites(rng)
    h, p, k = site_effect(X["f0"], X["cohort"])
    assert k == 3 and p < 1e-6
    table = site_effect_table(X, ["f0", "f1"], "cohort", train_sites=["a", "b"])
    assert (table["kw_p_before"] < 1e-6).all() and (table["kw_p_after"] > 1e-3).all()


# ------------------------------------------------------------------------------ perturbation


def _perturbation_settings(**given):
    """The perturbation keys of the complete reproducibility.perturbation section (schema defaults)."""
    from acceflow.imaging.perturb import SETTING_KEYS
    from acceflow.study.settings import section_settings

    section = section_settings("reproducibility", {"perturbation": given})["perturbation"]
    return {k: section[k] for k in SETTING_KEYS}


def test_perturbations_are_reproducible_and_change_what_they_should(sphere_case):
    from acceflow.imaging.perturb import PERTURBATIONS, estimate_noise_sd, perturb_scan

    image, mask = sphere_case
    s = _perturbation_settings()
    assert estimate_noise_sd(image) == pytest.approx(5.0, rel=0.15)  # the fixture's noise SD is 5
    n0 = int(sitk.GetArrayFromImage(mask).sum())
    img1, msk1, d1 = perturb_scan(image, mask, PERTURBATIONS, 1, seed=3, scan_id="x", **s)
    img1b, msk1b, _ = perturb_scan(image, mask, PERTURBATIONS, 1, seed=3, scan_id="x", **s)
    _, _, d2 = perturb_scan(image, mask, PERTURBATIONS, 2, seed=3, scan_id="x", **s)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img1), sitk.GetArrayFromImage(img1b))
    assert d1 != d2 and abs(d1["rotation_deg"]) <= 15 and abs(d1["volume_fraction"]) <= 0.2
    n1 = int(sitk.GetArrayFromImage(msk1).sum())
    assert 0.6 * n0 < n1 < 1.4 * n0
    _, grown, d = perturb_scan(image, mask, ["volume"], 1, seed=0, scan_id="x",
                               **_perturbation_settings(volume_fraction=0.3))
    assert abs(d["volume_fraction"]) <= 0.3
    assert int(sitk.GetArrayFromImage(grown).sum()) == pytest.approx(n0 * (1 + d["volume_fraction"]), rel=0.02)
    with pytest.raises(ValueError, match="unknown perturbation"):
        perturb_scan(image, mask, ["zoom"], 1, **s)
    # no defaults in the library: the settings are complete or refused, naming what is missing
    with pytest.raises(ValueError, match="perturbation settings lacks contour_sd_mm, contour_corr_mm"):
        perturb_scan(image, mask, ["volume"], 1, rotation_deg=15, volume_fraction=0.2)


# ------------------------------------------------------------------------------ model


def test_model_with_combat_records_it_and_applies_it_to_unseen_sites():
    from acceflow.study.training import predict_cohort, train

    rng = np.random.default_rng(5)
    n = 60
    cohort = np.repeat(["a", "b", "c"], n)
    z = rng.normal(size=3 * n)
    shift = np.repeat([0.0, 3.0, -2.0], n)
    table = pd.DataFrame({"case_id": [f"c{i}" for i in range(3 * n)], "cohort": cohort,
                          "outcome": (z + rng.normal(0, 0.7, 3 * n) > 0).astype(int),
                          "f1": z + shift, "f2": rng.normal(size=3 * n) + shift})
    config = {"seed": 1, "features": None, "clinical": [],
              "cohorts": {"train": ["a", "b"], "external": ["c"]},
              "outcome": {"type": "binary", "column": "outcome", "positive": 1},
              "reproducibility": {"filter_model_features": True},
              "model": {"learner": "l1_logistic", "include_clinical": False, "Cs": [0.1, 1.0], "inner_folds": 3,
                        "scoring": "roc_auc", "harmonisation": "combat", "harmonisation_unseen": "error",
                        "learners": None, "selection": "none", "n_select": 10, "correlation_threshold": None,
                        "primary": "imaging", "comparators": "auto", "threshold": "youden", "threshold_target": None},
              "validation": {"cv_folds": 3, "cv_repeats": 1}}
    model, card, preds, _ = train(table, config)
    assert card["pipeline"][0] == "harmonise: ComBat" and card["harmonisation"]["training_sites"] == ["a", "b"]
    assert card["features"] == ["f1", "f2"] and preds["probability"].between(0, 1).all()
    with pytest.raises(ValueError, match="not in the training data"):
        predict_cohort(model, card, table, "c")
    config["model"]["harmonisation_unseen"] = "self"
    model, card, _, _ = train(table, config)
    out = predict_cohort(model, card, table, "c")
    from sklearn.metrics import roc_auc_score
    assert roc_auc_score(out["outcome"], out["probability"]) > 0.75
