"""Integration: the DAG with the deep model as a comparator, on a tiny demo cohort (tiny network,
two epochs, 16-voxel crops; 16 training and 2 x 8 external cases): comparator contract files, deep features and their ICC, Grad-CAM
and the dossier's side-by-side comparison; the same network trained with DANN against the external
cohorts' unlabelled images (comparator deep_dann) and the domain shift of the radiomics features
and of the deep embeddings."""
import json

import pandas as pd
import pytest
from conftest import check_contract, demo_config, run_snakemake, small_statistics, write_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def tiny_deep_config(results):
    config = demo_config(results, "config/studies/demo_deep.yaml", n_train=16, n_external=(8, 8), n_retest=5)
    config["validation"] = {"cv_folds": 3, "cv_repeats": 1, "n_bootstrap": 200, "optimism_bootstrap": 0,
                            "permutation_repeats": 2, "coefficient_bootstrap": 0}
    config["utility"] = {"curve_bootstrap": 20, "recalibration": []}  # recalibration: 14-case cohorts too small
    config["model"]["comparators"] = ["clinical", "deep"]
    config["ibsi"] = {"enabled": False}
    config["model"]["min_events"] = 3  # 5 events in 16 training cases
    config["deep"].update(network="resnet10", crop_size=16, crop_spacing=3.0, epochs=2, patience=2, batch_size=4,
                          cv_folds=2, threads=1, device="cpu", domain_adaptation="dann",
                          target_cohorts=["site_B", "site_C"])
    config["domain_shift"] = {"permutations": 200}
    return config


def test_deep_comparator_runs_through_to_the_dossier(tmp_path):
    results = tmp_path / "results"
    cfg = write_config(tmp_path / "deep.yaml", tiny_deep_config(results))
    proc = run_snakemake(tmp_path, cfg)
    assert proc.returncode == 0, proc.stderr[-4000:]
    check_contract(results, ["train", "site_B", "site_C"], "outcome")
    card = json.loads((results / "clinical/model/comparators/deep/model_card.json").read_text())
    assert card["model"] == "deep" and card["network"] == "resnet10" and card["n_train"] == 16
    assert (results / "clinical/model/comparators/deep" / card["model_file"]).is_file()
    assert len(card["training_history"]) == card["final_model"]["stopped_epoch"] >= 1
    for cohort, n in (("train", 16), ("site_B", 8), ("site_C", 8)):
        preds = pd.read_csv(results / f"clinical/{cohort}/comparators/deep/predictions.tsv", sep="\t")
        assert list(preds.columns) == ["case_id", "outcome", "probability"] and len(preds) == n
        assert preds["probability"].between(0, 1).all()
        metrics = json.loads((results / f"clinical/{cohort}/comparators/deep/metrics.json").read_text())
        assert metrics["model"] == "deep" and metrics["auc_ci_low"] <= metrics["auc"] <= metrics["auc_ci_high"]
        assert (results / f"utility/{cohort}/comparators/deep/calibration.json").is_file()
        comparison = pd.read_csv(results / f"clinical/{cohort}/model_comparison.tsv", sep="\t")
        assert {"imaging", "clinical", "deep", "deep_dann"} == set(comparison["model"])
        dann = json.loads((results / f"clinical/{cohort}/comparators/deep_dann/metrics.json").read_text())
        assert dann["model"] == "deep_dann" and dann["n"] == n
    feats = pd.read_csv(results / "deep/features.tsv", sep="\t")
    assert len(feats) == 32 and sum(c.startswith("deep_") for c in feats.columns) == 512
    repeats = pd.read_csv(results / "deep/repeats.tsv", sep="\t")
    assert len(repeats) == 10 and repeats["case_id"].nunique() == 5
    icc = pd.read_csv(results / "analytical/deep_icc.tsv", sep="\t")
    assert len(icc) and (icc["icc_form"] == "ICC(2,1)").all() and (icc["n_subjects"] == 5).all()
    for cohort in ("site_B", "site_C"):
        cams = pd.read_csv(results / f"deep/gradcam/{cohort}/gradcam.tsv", sep="\t")
        assert 1 <= len(cams) <= 4 and all((results / f"deep/gradcam/{cohort}" / p).is_file() for p in cams["png"])
    dann_card = json.loads((results / "clinical/model/comparators/deep_dann/model_card.json").read_text())
    assert dann_card["domain_adaptation"]["target_cases"] == {"site_B": 8, "site_C": 8}
    assert dann_card["domain_adaptation"]["target_outcomes_used"] is False
    assert "lambda" in dann_card["training_history"][0] and card.get("domain_adaptation") is None
    shift = pd.read_csv(results / "analytical/domain_shift.tsv", sep="\t")
    assert set(shift["feature_set"]) == {"radiomics", "deep", "deep_dann"} and len(shift) == 9
    summary = json.loads((results / "analytical/domain_shift.json").read_text())
    for name, model in (("radiomics", None), ("deep", "deep"), ("deep_dann", "deep_dann")):
        rows = shift[(shift["feature_set"] == name) & (shift["role"] == "external")].set_index("site")
        internal = json.loads((results / ("clinical/train/metrics.json" if model is None else
                                          f"clinical/train/comparators/{model}/metrics.json")).read_text())["auc"]
        for site in ("site_B", "site_C"):
            site_auc = json.loads((results / (f"clinical/{site}/metrics.json" if model is None else
                                              f"clinical/{site}/comparators/{model}/metrics.json")).read_text())["auc"]
            assert rows.loc[site, "performance_drop"] == pytest.approx(site_auc - internal, abs=1e-9)
        assert 0 <= summary["feature_sets"][name]["domain_auc_before"] <= 1
    # the demo's sites differ by scanner (noise, PSF, calibration): the radiomics features tell them apart
    assert summary["feature_sets"]["radiomics"]["domain_auc_before"] > 0.8
    for cohort in ("site_B", "site_C"):  # integrated gradients of the same cases, completeness checked
        ig = pd.read_csv(results / f"deep/integrated_gradients/{cohort}/integrated_gradients.tsv", sep="\t")
        cams = pd.read_csv(results / f"deep/gradcam/{cohort}/gradcam.tsv", sep="\t")
        assert list(ig["case_id"]) == list(cams["case_id"])
        assert ((ig["attribution_sum"] - (ig["output"] - ig["baseline_output"])).abs() < 0.05).all()
    html = (results / "report/dossier.html").read_text()
    assert 'id="domain-shift"' in html and 'id="dann"' in html and "images (never the outcomes) of site_B" in html
    for anchor in ("deep-model", "model-comparison-side-by-side", "deep-features", "gradcam", "integrated-gradients"):
        assert f'id="{anchor}"' in html, anchor
    assert "p (paired DeLong)" in html and "NB 0.2" in html and "layer1" in html


def test_deep_survival_model_as_primary_runs_through_to_the_dossier(tmp_path):
    """Issue 19 parts 1-2 through the DAG: the Cox-loss network is the primary model of a survival
    study (no radiomics model trained), out of fold on the training cohort and frozen on site_B, and
    the existing survival rules give it Harrell's / Uno's C, time-dependent AUC, calibration and net
    benefit at the horizon and Kaplan-Meier risk groups. Smallest cohort: 24 training, 14 external
    cases, one epoch, 16-voxel crops."""
    results = tmp_path / "results"
    config = small_statistics(demo_config(results, "config/studies/demo_deep_survival.yaml", n_train=24,
                                          n_external=(14, 5)))
    config["cohorts"]["external"] = ["site_B"]
    config["model"].update(primary="deep", comparators=[])
    config["validation"].update(cv_folds=3, cv_repeats=1)
    config["ibsi"] = {"enabled": False}
    config["outcome"]["horizons"] = [180, 300]  # inside the 14-case cohort's follow-up
    config["utility"]["horizon"] = 300
    config["deep"].update(crop_size=16, crop_spacing=3.0, epochs=1, patience=1, batch_size=8, cv_folds=2, threads=1,
                          device="cpu", embedding={"enabled": False})
    proc = run_snakemake(tmp_path, write_config(tmp_path / "deep_survival.yaml", config))
    assert proc.returncode == 0, proc.stderr[-4000:]
    card = json.loads((results / "clinical/model/model_card.json").read_text())
    assert card["model"] == "deep" and card["role"] == "primary" and "Breslow" in card["loss"]
    assert card["horizon_days"] == 300 and len(card["risk_train"]) == 24 and card["threshold"] is None
    assert (results / "clinical/model" / card["model_file"]).is_file()
    assert not (results / "clinical/model/model.skops").exists()  # the radiomics model is not trained
    for cohort, n in (("train", 24), ("site_B", 14)):
        preds = pd.read_csv(results / f"clinical/{cohort}/predictions.tsv", sep="\t")
        assert list(preds.columns) == ["case_id", "time", "event", "risk", "risk_at_horizon"] and len(preds) == n
        assert preds["risk_at_horizon"].between(0, 1).all()
        metrics = json.loads((results / f"clinical/{cohort}/metrics.json").read_text())
        assert metrics["model"] == "deep" and 0 <= metrics["c_index"] <= 1 and "uno_c" in metrics
        assert metrics["validation"].startswith("internal" if cohort == "train" else "external")
        calibration = json.loads((results / f"utility/{cohort}/calibration.json").read_text())
        assert calibration["horizon_days"] == 300
        km = pd.read_csv(results / f"clinical/{cohort}/discrimination_curve.tsv", sep="\t")
        assert set(km["group"]) <= {0, 1} and len(km)
        assert (results / f"utility/{cohort}/decision_curve.tsv").is_file()
    assert 'id="deep-model"' in (results / "report/dossier.html").read_text()
