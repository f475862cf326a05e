"""Internal-external cross-validation (acceflow.study.internal_external): the refit per held-out site,
the skip of a site with too few events, the pooling, the config checks, and the demo DAG's files."""
import json

import numpy as np
import pandas as pd
import pytest

from fake_results import make_results

from acceflow.metrics.discrimination import delong_roc_variance
from acceflow.metrics.meta_analysis import pool_auc
from acceflow.report.dossier import build_dossier
from acceflow.runtime import write_json
from acceflow.study.internal_external import hold_out_site, pool_sites, site_config, site_columns
from acceflow.study.results import Results, path_in
from acceflow.study.settings import ConfigError, check_config, internal_external_sites, with_defaults


def _table(seed=0):
    """Sites A and B (60 cases each, one informative feature) and C (30 cases, 3 events)."""
    rng = np.random.default_rng(seed)
    parts = []
    for site, n, shift in (("A", 60, 0.0), ("B", 60, 0.5), ("C", 30, 0.0)):
        X = rng.normal(size=(n, 4)) + shift
        y = rng.random(n) < 1 / (1 + np.exp(-(2.0 * (X[:, 0] - shift))))
        if site == "C":
            y = np.zeros(n, bool)
            y[:3] = True
        df = pd.DataFrame(X, columns=[f"f{i}" for i in range(4)])
        df.insert(0, "case_id", [f"{site}{i}" for i in range(n)])
        df.insert(1, "cohort", site)
        df.insert(2, "y", np.where(y, "pos", "neg"))
        parts.append(df)
    return pd.concat(parts, ignore_index=True)


def _config(**validation):
    return with_defaults({"seed": 1, "cohorts": {"train": ["A"], "external": ["B", "C"]}, "clinical": [],
                          "outcome": {"type": "binary", "column": "y", "positive": "pos"},
                          "model": {"Cs": [0.1, 1.0], "inner_folds": 3},
                          "validation": {"cv_folds": 3, "cv_repeats": 1, "internal_external": True, **validation}})


def test_each_site_is_held_out_and_the_model_refitted_on_the_others():
    table, config = _table(), _config()
    assert internal_external_sites(config) == ["A", "B", "C"]
    assert site_config(config, "A")["cohorts"]["train"] == ["B", "C"]
    row, preds = hold_out_site(table, config, None, "A")
    assert row["status"] == "validated" and row["training_sites"] == "B+C" and row["n_train"] == 90
    assert row["n"] == 60 and len(preds) == 60 and set(preds["case_id"]) == set(table["case_id"][:60])
    # the row's AUC and SE are DeLong's on the refitted model's predictions of the held-out site
    auc, var = delong_roc_variance(preds["outcome"], preds["probability"])
    assert row["auc"] == pytest.approx(auc) and row["auc_se"] == pytest.approx(np.sqrt(var)) and auc > 0.75
    # the calibration SE is the Wald interval's: (high - low) / (2 * 1.959964)
    half = (row["calibration_slope_ci_high"] - row["calibration_slope_ci_low"]) / 2
    assert row["calibration_slope_se"] == pytest.approx(half / 1.959963985)


def test_a_site_with_too_few_events_is_skipped_with_the_reason():
    row, preds = hold_out_site(_table(), _config(), None, "C")
    assert row["status"] == "skipped" and preds.empty
    assert "3 events and 27 non-events" in row["reason"] and "at least 5 events and 5 non-events" in row["reason"]
    assert "validation.internal_external_min_events" in row["reason"]


def test_a_site_whose_refit_is_impossible_is_skipped_not_fatal():
    # without A, B + C keep too few events for model.min_events = 60: the refit's CohortError is the reason
    config = _config()
    config["model"]["min_events"] = 60
    row, preds = hold_out_site(_table(), config, None, "A")
    assert row["status"] == "skipped" and "refit without A failed" in row["reason"] and "min_events" in row["reason"]


def test_pooling_of_site_rows_by_hand():
    sites, pooled = pool_sites(_hand_rows(), "binary")
    assert list(sites.columns) == site_columns("binary") and len(sites) == 4
    expected = pool_auc([0.70, 0.80, 0.75], [0.05, 0.04, 0.06])
    assert pooled["pooled_auc"] == pytest.approx(expected["pooled"]) and pooled["k"] == 3 == pooled["auc_k"]
    assert pooled["pooled_auc_pi_low"] == pytest.approx(expected["pooled_pi_low"])
    assert pooled["tau2"] == pooled["auc_tau2"] and pooled["method"] == "DerSimonian-Laird"
    # calibration intercepts identical: Q = 0, tau2 = 0, fixed-effect SE = 0.2 / sqrt(3)
    assert pooled["calibration_intercept_tau2"] == 0 and pooled["pooled_calibration_intercept"] == pytest.approx(0.1)
    assert pooled["pooled_calibration_intercept_ci_high"] == pytest.approx(0.1 + 1.959964 * 0.2 / np.sqrt(3), abs=1e-6)
    assert pooled["sites_skipped"] == {"D": "too few to hold out: 2 events and 10 non-events"}
    assert sites.set_index("site")["pooled"].to_dict()["D"] == "no: skipped"


def _hand_rows():
    rows = [dict(site=s, status="validated", reason="", n=n, n_events=ev, auc=a, auc_se=se, auc_ci_low=a - 2 * se,
                 auc_ci_high=min(1, a + 2 * se), calibration_slope=b, calibration_slope_se=bs,
                 calibration_slope_ci_low=b - 1.96 * bs, calibration_slope_ci_high=b + 1.96 * bs,
                 calibration_intercept=0.1, calibration_intercept_se=0.2, calibration_intercept_ci_low=-0.29,
                 calibration_intercept_ci_high=0.49, training_sites="others", n_train=100, n_events_train=40)
            for s, n, ev, a, se, b, bs in (("A", 80, 30, 0.70, 0.05, 0.8, 0.2), ("B", 60, 20, 0.80, 0.04, 1.1, 0.25),
                                           ("C", 50, 25, 0.75, 0.06, 0.9, 0.3))]
    return rows + [dict(site="D", status="skipped", n=12, n_events=2,
                        reason="too few to hold out: 2 events and 10 non-events")]


def test_two_sites_say_why_there_is_no_prediction_interval():
    rows = [dict(site=s, status="validated", auc=a, auc_se=0.05) for s, a in (("A", 0.7), ("B", 0.8))]
    _, pooled = pool_sites(rows, "binary")
    assert pooled["pooled_auc_pi_low"] != pooled["pooled_auc_pi_low"] and "at least three" in pooled["auc_pi_note"]


def test_dossier_shows_the_table_pooling_heterogeneity_and_forest_plots(tmp_path):
    config = make_results(tmp_path)
    sites, pooled = pool_sites(_hand_rows(), "binary")
    path_in(tmp_path, Results.IECV_SITE_METRICS).parent.mkdir(parents=True)
    sites.to_csv(path_in(tmp_path, Results.IECV_SITE_METRICS), sep="\t", index=False)
    write_json(pooled, path_in(tmp_path, Results.IECV_POOLED))
    cohorts = ["train", *config["cohorts"]["external"]]
    build_dossier(tmp_path, config, cohorts, tmp_path / "report/dossier.html", tmp_path / "report/summary.json")
    html = (tmp_path / "report/dossier.html").read_text(encoding="utf-8")
    section = html[html.index('id="internal-external"'):]
    assert f"{pooled['pooled_auc']:.3f}" in section and f"{pooled['pooled_auc_pi_low']:.3f}" in section
    assert f"I² = {100 * pooled['auc_i2']:.0f}%" in section and "prediction interval" in section
    assert "too few to hold out: 2 events and 10 non-events" in section
    for m in ("auc", "calibration_slope", "calibration_intercept"):
        assert (tmp_path / f"report/figures/internal_external_{m}.png").is_file()
        assert f"report/figures/internal_external_{m}.png" in section


def test_fewer_than_two_sites_is_a_config_error_naming_the_key():
    config = _config()
    config["cohorts"]["external"] = []
    with pytest.raises(ConfigError, match=r"validation.internal_external needs at least two sites.*\(A\)"):
        check_config({**config, "input": {**config["input"], "features": "table.tsv"}})


def test_combat_without_unseen_self_is_a_config_error():
    config = _config()
    config["model"]["harmonisation"] = "combat"
    with pytest.raises(ConfigError, match="harmonisation_unseen: self"):
        internal_external_sites(config)


@pytest.mark.integration
def test_demo_run_writes_the_internal_external_files(demo_run):
    """The session demo (site_A training, site_B and site_C external) has validation.internal_external on."""
    _, _, results = demo_run
    sites = pd.read_csv(results / "clinical/internal_external/site_metrics.tsv", sep="\t")
    assert sites["site"].tolist() == ["site_A", "site_B", "site_C"] and (sites["status"] == "validated").all()
    assert sites["auc_ci_low"].le(sites["auc"]).all() and sites["auc"].le(sites["auc_ci_high"]).all()
    pooled = json.loads((results / "clinical/internal_external/pooled.json").read_text())
    assert pooled["k"] == 3 and pooled["method"] == "DerSimonian-Laird"
    assert pooled["pooled_auc_ci_low"] < pooled["pooled_auc"] < pooled["pooled_auc_ci_high"]
    assert pooled["pooled_auc_pi_low"] <= pooled["pooled_auc_ci_low"]
    for site in ("site_A", "site_B", "site_C"):
        preds = pd.read_csv(results / f"clinical/internal_external/{site}/predictions.tsv", sep="\t")
        assert len(preds) == sites.set_index("site").loc[site, "n"]
    html = (results / "report/dossier.html").read_text()
    assert "Internal–external cross-validation" in html and (results / "report/figures/internal_external_auc.png").is_file()


def test_survival_sites_give_harrells_c_with_a_bootstrap_se_and_pool():
    rng = np.random.default_rng(0)
    n = 180
    x = rng.normal(size=(n, 3))
    t_event = rng.exponential(800.0 / np.exp(0.9 * x[:, 0]))
    t_cens = rng.uniform(200, 2500, n)
    table = pd.DataFrame(x, columns=["f0", "f1", "f2"])
    table.insert(0, "case_id", [f"c{i}" for i in range(n)])
    table.insert(1, "cohort", np.repeat(["A", "B", "C"], 60))
    table["time"], table["event"] = np.ceil(np.minimum(t_event, t_cens)), (t_event <= t_cens).astype(int)
    config = with_defaults({"seed": 0, "cohorts": {"train": ["A"], "external": ["B", "C"]}, "clinical": [],
                            "outcome": {"type": "survival", "time": "time", "event": "event"},
                            "model": {"cox_penalizers": [0.1], "cox_l1_ratio": 0.0, "inner_folds": 3},
                            "validation": {"cv_folds": 2, "cv_repeats": 1, "n_bootstrap": 100,
                                           "internal_external": True}})
    rows = [hold_out_site(table, config, None, s)[0] for s in ("A", "B", "C")]
    assert all(r["status"] == "validated" for r in rows) and all(0.6 < r["c_index"] < 1 for r in rows)
    assert all(r["c_index_ci_low"] < r["c_index"] < r["c_index_ci_high"] and 0 < r["c_index_se"] < 0.1 for r in rows)
    sites, pooled = pool_sites(rows, "survival")
    assert "c_index_se" in sites and pooled["discrimination"] == "c_index" and pooled["k"] == 3
    assert pooled["pooled_c_index_ci_low"] < pooled["pooled_c_index"] < pooled["pooled_c_index_ci_high"]
