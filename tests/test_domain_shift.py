"""Domain shift: the MMD against hand computations and its Gaussian closed form, the permutation
test, the domain classifier before / after ComBat, and the per-site table (acceflow.metrics.domain_shift,
acceflow.models.domain_shift). Small samples: the file runs in a few seconds."""
import numpy as np
import pandas as pd
import pytest

from acceflow.metrics.domain_shift import gaussian_mmd2, median_bandwidth, mmd2_unbiased, mmd_test
from acceflow.models.domain_shift import DOMAIN_SHIFT_COLUMNS, domain_classifier_auc, domain_shift_table


def test_mmd_equals_the_hand_computation_on_two_points_each():
    # X = {0, 1}, Y = {2, 4}, h = 1: k = exp(-d^2 / 2)
    kxx, kyy = np.exp(-0.5), np.exp(-2.0)
    kxy = (np.exp(-2.0) + np.exp(-8.0) + np.exp(-0.5) + np.exp(-4.5)) / 4
    assert mmd2_unbiased([0, 1], [2, 4], bandwidth=1.0) == pytest.approx(kxx + kyy - 2 * kxy, abs=1e-14)
    # median heuristic: pairwise distances of {0, 1, 3} are 1, 3, 2 -> median 2
    assert median_bandwidth([[0.0], [1.0], [3.0]]) == 2.0


def test_mmd_is_about_zero_for_one_distribution_and_matches_the_gaussian_closed_form():
    rng = np.random.default_rng(0)
    same = mmd2_unbiased(rng.normal(size=(400, 3)), rng.normal(size=(400, 3)), bandwidth=2.0)
    assert abs(same) < 0.005 and gaussian_mmd2([0, 0, 0], [0, 0, 0], 1.0, 2.0) == 0.0
    for delta in (0.5, 1.0, 2.0):  # unbiased: the mean of 10 estimates within 4 standard errors of the truth
        est = [mmd2_unbiased(rng.normal(size=(300, 2)), rng.normal(size=(300, 2)) + [delta, 0.0], bandwidth=1.5)
               for _ in range(10)]
        expected = gaussian_mmd2([0, 0], [delta, 0], 1.0, 1.5)
        assert abs(np.mean(est) - expected) < 4 * np.std(est, ddof=1) / np.sqrt(10)
    assert gaussian_mmd2([0], [2], 1.0, 1.5) > gaussian_mmd2([0], [1], 1.0, 1.5) > 0


def test_permutation_test_tells_shifted_from_identical_distributions():
    rng = np.random.default_rng(1)
    shifted = mmd_test(rng.normal(size=(40, 4)), rng.normal(size=(50, 4)) + 1.0, n_permutations=200, seed=3)
    assert shifted["mmd2"] > 0.05 and shifted["p_value"] == pytest.approx(1 / 201)
    null = mmd_test(rng.normal(size=(40, 4)), rng.normal(size=(50, 4)), n_permutations=200, seed=3)
    assert null["p_value"] > 0.05 and abs(null["mmd2"]) < 0.05 and null["n_x"] == 40 and null["n_y"] == 50
    # the vectorised permutations give the same statistic as recomputing the estimate from the samples
    Z = np.vstack([rng.normal(size=(10, 2)), rng.normal(size=(12, 2))])
    h = median_bandwidth(Z)
    assert mmd_test(Z[:10], Z[10:], 0)["mmd2"] == pytest.approx(mmd2_unbiased(Z[:10], Z[10:], h), abs=1e-14)
    with pytest.raises(ValueError, match="at least 2 cases"):
        mmd2_unbiased([[1.0]], [[2.0], [3.0]])
    with pytest.raises(ValueError, match="missing"):
        mmd2_unbiased([[1.0], [np.nan]], [[2.0], [3.0]])


def _sites(rng, n=40, shift=(0.0, 3.0, -2.0), scale=(1.0, 2.0, 0.5), d=5):
    frames = []
    for s, (m, k) in enumerate(zip(shift, scale)):
        f = pd.DataFrame(rng.normal(size=(n, d)) * k + m, columns=[f"f{j}" for j in range(d)])
        f.insert(0, "cohort", f"site_{'ABC'[s]}")
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


def test_domain_classifier_auc_before_and_after_combat():
    rng = np.random.default_rng(2)
    data = _sites(rng)
    feats = [c for c in data if c.startswith("f")]
    before = domain_classifier_auc(data[feats], data["cohort"], 5, seed=0)
    assert before["auc"] > 0.95 and before["n_sites"] == 3 and set(before["per_site"]) == {"site_A", "site_B", "site_C"}
    null = domain_classifier_auc(rng.normal(size=(80, 5)), ["a"] * 40 + ["b"] * 40, 5, seed=0)
    assert 0.3 < null["auc"] < 0.7
    with pytest.raises(ValueError, match="site 'b' has 1 case"):
        domain_classifier_auc(rng.normal(size=(5, 2)), ["a"] * 4 + ["b"], 5)

    perf = {"internal": 0.80, "site_B": 0.70, "site_C": 0.75}
    table, summary = domain_shift_table(data, feats, "radiomics", train_sites=["site_A"], performance=perf,
                                        n_permutations=100, cv_folds=5, seed=0)
    assert list(table.columns) == DOMAIN_SHIFT_COLUMNS and list(table["site"]) == ["site_A", "site_B", "site_C"]
    # ComBat removes a pure location/scale site effect: the site can no longer be told from the features
    assert summary["domain_auc_before"] > 0.95 and summary["domain_auc_after"] < 0.7
    ext = table.set_index("site").loc[["site_B", "site_C"]]
    assert (ext["mmd2_before"] > 0.1).all() and (ext["mmd_p_before"] < 0.05).all()
    assert (ext["mmd2_after"] < ext["mmd2_before"]).all()
    assert ext["performance_drop"].tolist() == pytest.approx([-0.10, -0.05])
    train = table.set_index("site").loc["site_A"]
    assert train["reference"] == "no other training site" and np.isnan(train["mmd2_before"])
    assert summary["drop_vs_mmd"]["spearman_rho"] is None and "at least 3" in summary["drop_vs_mmd"]["note"]


def test_dossier_shows_the_domain_shift_and_names_the_dann_target_images(tmp_path):
    import json

    from fake_results import make_results

    from acceflow.report.dossier import build_dossier
    from acceflow.runtime import write_json

    config = make_results(tmp_path, comparators=("deep", "deep_dann"))
    data = _sites(np.random.default_rng(4), n=20, shift=(0.0, 2.0), scale=(1.0, 1.0))
    data["cohort"] = data["cohort"].replace({"site_A": "train_site", "site_B": "site_B"})
    table, summary = domain_shift_table(data, [c for c in data if c.startswith("f")], "radiomics",
                                        train_sites=["train_site"], performance={"internal": 0.8, "site_B": 0.7},
                                        n_permutations=50, seed=1)
    table.to_csv(tmp_path / "analytical/domain_shift.tsv", sep="\t", index=False)
    write_json({"assessed": True, "reason": None, "feature_sets": {"radiomics": {**summary, "assessed": True}}},
               tmp_path / "analytical/domain_shift.json")
    card_path = tmp_path / "clinical/model/comparators/deep_dann/model_card.json"
    card = json.loads(card_path.read_text())
    card["domain_adaptation"] = {"method": "DANN (Ganin et al. 2016)", "target_cohorts": ["site_B"],
                                 "target_cases": {"site_B": 20}, "sites": ["site_A", "site_B"]}
    card["training_history"] = [{"epoch": 1, "train_loss": 1.0, "lambda": 0.46, "domain_loss": 0.69,
                                 "domain_accuracy": 0.55}]
    write_json(card, card_path)
    build_dossier(tmp_path, config, ["train", "site_B"], tmp_path / "d.html", tmp_path / "s.json")
    html = (tmp_path / "d.html").read_text()
    assert 'id="domain-shift"' in html and "Domain-classifier AUC before ComBat" in html
    assert f"{summary['domain_auc_before']:.3f}" in html and "site_B (external)" in html
    assert 'id="dann"' in html and "images (never the outcomes) of site_B (20 cases)" in html
    assert "AUC deep_dann" in html and "λ = 0.46" in html and "Figure not drawn" not in html
