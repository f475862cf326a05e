"""Integration: the real Snakemake DAG on a small demo cohort and on the PI-CAI marksheet."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import (REPO, SHARED_DATA, SNAKEMAKE, check_contract, demo_config, run_snakemake, small_statistics,
                      write_config)
from sklearn.metrics import roc_auc_score

pytestmark = pytest.mark.integration


def test_demo_dag_writes_the_results_contract(demo_run):
    _, _, results = demo_run
    check_contract(results, ["train", "site_B", "site_C"], "outcome")
    qc = pd.read_csv(results / "ingest/qc.tsv", sep="\t")
    assert (qc["status"] == "ok").all() and len(qc) == 60 + 40 + 40 + 12
    icc = pd.read_csv(results / "analytical/icc.tsv", sep="\t")
    assert len(icc) > 50 and (icc["n_subjects"] == 12).all() and icc["stable"].any() and not icc["stable"].all()
    assert (icc["icc_form"] == "ICC(2,1)").all() and (icc["design"] == "test-retest").all()
    agreement = pd.read_csv(results / "analytical/agreement.tsv", sep="\t")
    assert list(agreement["feature"]) == list(icc["feature"]) and agreement["ccc"].notna().any()
    dropped = pd.read_csv(results / "analytical/dropped_features.tsv", sep="\t")
    stable = (results / "analytical/stable_features.txt").read_text().split()
    assert sorted(stable + list(dropped["feature"])) == sorted(icc["feature"]) and dropped["reason"].notna().all()
    assert pd.read_csv(results / "analytical/site_effect.tsv", sep="\t")["kw_p_before"].notna().any()
    html = (results / "report/dossier.html").read_text()
    for text in ("Agreement between repeats", "Features dropped as not reproducible", "Site effect and harmonisation"):
        assert text in html


# Features of the demo that measure only factors identical on a rescan (acceflow.demo, "Stable by
# construction": lesion size, shape and mean contrast); noise-dominated ones measure scan noise.
STABLE_BY_CONSTRUCTION = [f"original_shape_{n}" for n in (
    "Elongation", "Flatness", "LeastAxisLength", "MajorAxisLength", "Maximum2DDiameterColumn",
    "Maximum2DDiameterRow", "Maximum2DDiameterSlice", "Maximum3DDiameter", "MeshVolume", "MinorAxisLength",
    "Sphericity", "SurfaceArea", "SurfaceVolumeRatio", "VoxelVolume")] + [f"original_firstorder_{n}" for n in (
    "Mean", "Median", "RootMeanSquared", "10Percentile", "90Percentile", "Energy", "TotalEnergy")]
NOISE_DOMINATED = ["original_firstorder_Kurtosis", "original_firstorder_Skewness", "original_glcm_Idn",
                   "original_glszm_SmallAreaEmphasis"]


def test_demo_stable_set_recovers_the_generators_stable_features(demo_run):
    _, _, results = demo_run
    stable = set((results / "analytical/stable_features.txt").read_text().split())
    recovered = [f for f in STABLE_BY_CONSTRUCTION if f in stable]
    assert len(recovered) >= 0.8 * len(STABLE_BY_CONSTRUCTION), sorted(set(STABLE_BY_CONSTRUCTION) - stable)
    assert not stable & set(NOISE_DOMINATED)
    card = json.loads((results / "clinical/model/model_card.json").read_text())
    assert set(card["features"]) == stable


def test_demo_external_auc_near_the_truth(demo_run):
    """On each external site, the frozen model ranks cases nearly as well as the true probabilities."""
    _, _, results = demo_run
    truth = pd.read_csv(results / "demo/truth.tsv", sep="\t", dtype={"case_id": str})
    for cohort in ("site_B", "site_C"):
        preds = pd.read_csv(results / f"clinical/{cohort}/predictions.tsv", sep="\t", dtype={"case_id": str})
        both = preds.merge(truth, on="case_id", validate="one_to_one")
        assert len(both) == len(preds) == 40
        auc_model = roc_auc_score(both["outcome"], both["probability"])
        auc_true = roc_auc_score(both["outcome"], both["true_probability"])
        assert auc_model > 0.6 and abs(auc_model - auc_true) < 0.15, (cohort, auc_model, auc_true)


def test_rerun_has_nothing_to_do(demo_run):
    work, cfg, _ = demo_run
    proc = run_snakemake(work, cfg, "--dry-run")
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout + proc.stderr


def test_feature_table_entry_on_picai(tmp_path):
    marksheet = SHARED_DATA / "picai" / "marksheet.csv"
    if not marksheet.exists():
        pytest.skip("../shared/data/picai not available")
    config = yaml.safe_load((REPO / "config/studies/picai.yaml").read_text())
    config["results"] = str(tmp_path / "results")
    config["input"]["features"] = str(marksheet)
    config["validation"] = {"cv_folds": 3, "cv_repeats": 1}
    proc = run_snakemake(tmp_path, write_config(tmp_path / "picai.yaml", small_statistics(config)))
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = tmp_path / "results"
    check_contract(results, ["train", "PCNN", "ZGT"], "case_csPCa")
    assert json.loads((results / "clinical/train/metrics.json").read_text())["n"] == 800
    for cohort in ("PCNN", "ZGT"):
        assert json.loads((results / f"clinical/{cohort}/metrics.json").read_text())["n"] == 350


@pytest.mark.parametrize("configfile", [None, "config/studies/picai.yaml", "config/studies/sts.yaml"])
def test_lint_is_clean(configfile):
    extra = ["--configfile", configfile] if configfile else []
    proc = subprocess.run([*SNAKEMAKE, "--lint", "--snakefile", str(REPO / "Snakefile"), *extra], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_bad_config_is_refused_with_the_key(tmp_path):
    config = yaml.safe_load((REPO / "config/studies/picai.yaml").read_text())
    config["cohorts"]["train"] = []
    proc = run_snakemake(tmp_path, write_config(tmp_path / "bad.yaml", config), "--dry-run")
    assert proc.returncode != 0 and "cohorts.train is empty" in proc.stdout + proc.stderr


def test_otsu_segmentation_source_runs_to_the_dossier(otsu_slurm_run):
    """The Otsu run is shared with test_slurm.py (the same DAG through the SLURM executor where it runs)."""
    results, _ = otsu_slurm_run
    assert len(list((results / "segmentation/otsu").glob("*/mask.nii.gz"))) == 16 + 8 + 8
    check_contract(results, ["train", "site_B", "site_C"], "outcome")
    # no repeats in this design: reproducibility is reported as not assessed, the model uses all features
    assert pd.read_csv(results / "analytical/icc.tsv", sep="\t").empty
    assert "Reproducibility was not assessed" in (results / "report/dossier.html").read_text()


def test_verify_passes_on_a_fresh_run_and_names_a_changed_input(demo_run):
    from acceflow.report.verify import format_verification, verify

    _, _, results = demo_run
    fresh = verify(results)
    assert fresh.ok, format_verification(fresh)
    kinds = {c.kind for c in fresh.checks}
    assert kinds == {"input", "config", "output"} and len(fresh.checks) > 150
    image = next(c for c in fresh.checks if c.kind == "input" and c.path.endswith(".nii.gz"))
    path = Path(image.location)
    original, stat = path.read_bytes(), path.stat()
    try:
        path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        proc = subprocess.run([sys.executable, "-m", "acceflow.cli", "verify", str(results)], capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 1 and f"CHANGED input: {image.path}" in proc.stdout, proc.stdout[-2000:]
    finally:
        path.write_bytes(original)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # keep the later re-run test's DAG as it was
    assert verify(results).ok


def test_dossier_opens_in_headless_chromium(demo_run):
    """No console errors, every figure decodes; the screenshot is kept as a QC artefact."""
    from acceflow.report.browser import check_in_browser, find_chromium

    if find_chromium() is None:
        pytest.skip("chromium not installed (CI installs Debian's chromium in .ci/run)")
    _, _, results = demo_run
    shot = Path(os.environ.get("ACCEFLOW_QC_DIR", REPO / "results" / "qc")) / "dossier_demo.png"
    check = check_in_browser(results / "report/dossier.html", shot)
    assert check.console == []
    assert len(check.images) >= 5 and not check.failed_images, check.images  # 4 figures + the rule graph
    assert check.screenshot and Path(check.screenshot).stat().st_size > 10_000


def test_snakemake_report_builds(demo_run):
    work, cfg, _ = demo_run
    out = work / "snakemake_report.html"
    proc = run_snakemake(work, cfg, "--report", str(out))
    assert proc.returncode == 0, proc.stderr[-4000:]
    text = out.read_text(encoding="utf-8", errors="replace")
    assert out.stat().st_size > 100_000 and "dossier.html" in text
    # the dossier's figures (a folder registered with patterns) and the utility figures, with their captions
    for name in ("roc.png", "icc.png", "calibration.png", "decision_curve.png"):
        assert name in text, name
    assert "Dossier figure" in text and "Decision curves" in text


def test_figures_are_files_and_the_pdf_is_printed(demo_run):
    """Every figure the dossier embeds is report/figures/{name}.png (same bytes) and .svg; the PDF is printed
    when Chromium is installed (report.pdf: auto), one page or more per dossier section."""
    import base64

    from acceflow.report.browser import find_chromium

    _, _, results = demo_run
    summary = json.loads((results / "report/summary.json").read_text())
    html = (results / "report/dossier.html").read_text()
    assert {"report/figures/roc.png", "report/figures/icc.svg", "report/figures/bland_altman.png"} <= set(
        summary["figures"])
    for rel in summary["figures"]:
        if rel.endswith(".png"):
            assert base64.b64encode((results / rel).read_bytes()).decode("ascii") in html, rel
        else:
            assert (results / rel).read_text().lstrip().startswith(("<?xml", "<svg")), rel
    assert set(summary["verdicts"]) == {"analytical", "clinical", "utility"}
    provenance = json.loads((results / "report/provenance.json").read_text())
    assert "report/figures/roc.png" in provenance["outputs"]
    pdf = results / "report/dossier.pdf"
    if find_chromium() is None:
        assert not pdf.exists()
        pytest.skip("chromium not installed: report.pdf auto skips the PDF (CI installs Debian's chromium)")
    data = pdf.read_bytes()
    n_sections = html.count("<section>")
    pages = len(re.findall(rb"/Type\s*/Page[^s]", data))
    assert data.startswith(b"%PDF") and pages >= n_sections >= 8, (pages, n_sections)


def test_perturbation_design_on_the_inter_reader_manifest(tmp_path):
    """Perturbation jobs per scan, ICC(1,1) across them, reader masks' agreement, ComBat in the model."""
    results = tmp_path / "results"
    config = demo_config(results, "config/studies/demo_inter_reader.yaml", n_train=16, n_external=(8, 8), n_reader=5,
                         manifest="manifest_inter_reader.tsv")
    config["reproducibility"] = {"design": "perturbation", "icc_form": "auto",
                                 "perturbation": {"n": 3, "max_cases": 6}}
    config["model"] = {"harmonisation": "combat", "harmonisation_unseen": "self", "min_events": 3}  # 5 events in 16
    config["validation"] = {"cv_folds": 3, "cv_repeats": 1}
    proc = run_snakemake(tmp_path, write_config(tmp_path / "perturb.yaml", small_statistics(config)))
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert len(list((results / "features/perturbations").glob("*.tsv"))) == 6
    icc = pd.read_csv(results / "analytical/icc.tsv", sep="\t")
    assert (icc["icc_form"] == "ICC(1,1)").all() and (icc["n_repeats"] == 3).all() and (icc["n_subjects"] == 6).all()
    seg = pd.read_csv(results / "analytical/segmentation_agreement.tsv", sep="\t")
    assert len(seg) == 5 and seg["dice"].between(0.5, 1.0).all() and (seg["hd95_mm"] > 0).all()
    card = json.loads((results / "clinical/model/model_card.json").read_text())
    assert card["harmonisation"]["method"] == "combat"
    html = (results / "report/dossier.html").read_text()
    assert "Segmentation agreement" in html and "estimated on their own cases" in html


def test_logs_say_what_each_step_did(demo_run):
    """Per-scan logs name the grid, the ROI and the features extracted; training logs its progress."""
    _, _, results = demo_run
    logs = results / "logs"
    preprocess = next((logs / "preprocess").glob("*.log")).read_text()
    assert re.search(r"read \d+x\d+x\d+ voxels of [\d.]+x[\d.]+x[\d.]+ mm; ROI \(label 1\) \d+ voxels", preprocess)
    assert re.search(r"after preprocessing \(resampled to \[1\.0, 1\.0, 1\.0\] mm", preprocess)
    extract = next((logs / "extract").glob("*.log")).read_text()
    assert re.search(r"scan \S+: \d+ features extracted with \S+ in [\d.]+ s", extract)
    train = (logs / "train/primary.log").read_text()
    for k in range(1, 6):
        assert re.search(rf"repeat 2/2, fold {k}/5 \(fit {5 + k} of 10\): \d+ test cases, AUC [\d.]+, [\d.]+ s elapsed",
                         train), train[-2000:]
    assert "final fit done" in train
