"""Integration: segmentation.source: model through the real DAG on a tiny demo cohort (CPU, a tiny
network, a few iterations): fold models, out-of-fold masks on the original grid, quality table and
summary, MC-dropout readers -> ICC, reference-vs-model ICC, and the dossier's segmentation section."""
import json

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from conftest import demo_config, run_snakemake, write_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_model_segmentation_runs_to_the_dossier(tmp_path):
    results = tmp_path / "results"
    config = demo_config(results, "config/studies/demo_segmentation.yaml", n_train=16, n_external=(8, 8),
                         n_retest=3)
    config["segmentation"].update(channels=[4, 8], patch_size=[16, 16, 16], iterations=12, validation_interval=6,
                                  cv_folds=2, device="cpu",
                                  uncertainty={"method": "mc_dropout", "samples": 2, "max_cases": 3})
    # the clinical part only has to run on 16 training cases (5 events): no comparators, no
    # recalibration (14-case external cohorts), few bootstrap resamples
    config["validation"] = {"cv_folds": 3, "cv_repeats": 1, "n_bootstrap": 200, "optimism_bootstrap": 0,
                            "permutation_repeats": 2, "coefficient_bootstrap": 0}
    config["model"] = {"learner": "l1_logistic", "min_events": 3, "comparators": []}
    config["utility"] = {"curve_bootstrap": 20, "recalibration": []}
    config["ibsi"] = {"enabled": False}
    proc = run_snakemake(tmp_path, write_config(tmp_path / "seg.yaml", config))
    assert proc.returncode == 0, proc.stderr[-4000:]
    seg = results / "segmentation/model"
    folds = pd.read_csv(seg / "folds.tsv", sep="\t", dtype=str)
    assert folds.groupby("case_id")["fold"].nunique().max() == 1 and set(folds["fold"]) == {"0", "1"}
    for name in ("fold0", "fold1", "final"):
        card = json.loads((seg / f"CT/{name}/model_card.json").read_text())
        assert card["iterations_run"] == 12 and card["device"]["device"] == "cpu"
        if name != "final":  # a fold model never trains on its own fold's cases
            held_out = set(folds.loc[folds["fold"] == name[4:], "scan_id"])
            assert not held_out & set(card["train_cases"] + card["validation_cases"])
    scans = pd.read_csv(results / "ingest/scans.tsv", sep="\t", dtype=str, keep_default_na=False)
    row = scans.iloc[0]
    mask = sitk.ReadImage(str(seg / row["scan_id"] / "mask.nii.gz"))
    image = sitk.ReadImage(row["image"])
    assert mask.GetSize() == image.GetSize() and np.allclose(mask.GetSpacing(), image.GetSpacing())
    quality = pd.read_csv(results / "analytical/segmentation_quality.tsv", sep="\t")
    assert len(quality) == len(scans[scans["mask"] != ""]) and quality["dice"].between(0, 1).all()
    assert set(quality["evaluation"]) == {"out-of-fold", "external"}
    summary = pd.read_csv(results / "analytical/segmentation_quality_summary.tsv", sep="\t")
    assert {"site_A", "site_B", "site_C"} == set(summary["cohort"])
    dice = summary[summary["metric"] == "dice"]
    assert (dice["ci_low"] <= dice["mean"]).all() and (dice["mean"] <= dice["ci_high"]).all()
    for name in ("segmentation_icc.tsv", "reference_vs_model_icc.tsv"):
        icc = pd.read_csv(results / "analytical" / name, sep="\t")
        assert len(icc) and (icc["icc_form"] == "ICC(2,1)").all() and "contour_dependent" in icc
    assert (results / "analytical/segmentation_overlays/worst_CT.png").is_file()
    html = (results / "report/dossier.html").read_text()
    assert 'id="segmentation"' in html and "Contour dependence" in html and "out-of-fold" in html
