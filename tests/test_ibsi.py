"""IBSI 1 conformance check (acceflow.imaging.ibsi, rule ibsi_check).

Known answers: the IBSI reference values of the digital phantom and the CT phantom PAT1 in
../shared/data/ibsi (Zwanenburg et al. 2020, Radiology 295:328; tests skip without the data).
"""
from __future__ import annotations

import csv
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import yaml
from conftest import REPO, SHARED_DATA, make_image, need

from acceflow.imaging import ibsi
from acceflow.imaging.extract import resegmentation_range

IBSI_DATA = SHARED_DATA / "ibsi"
REFERENCE_FILES = sorted((IBSI_DATA / "reference_values").glob("ibsi_1_reference_values_*.csv"))


@pytest.fixture(scope="module")
def ibsi_data():
    return need(IBSI_DATA / "reference_values" / "ibsi_1_reference_values_config_A.csv").parents[1]


# ------------------------------------------------------------------------------ the tag map


def test_map_is_one_row_per_tag_and_names_pyradiomics_features():
    from radiomics import getFeatureClasses

    m = ibsi.load_map()
    assert m["ibsi_tag"].is_unique and len(m) > 500
    assert set(m["deviation_kind"]) <= {"", "deviation", "equivalence", "condition", "not computed"}
    assert set(m["extraction"]) <= {"", "any", "preprocessing", *ibsi.EXTRACTIONS}
    computed = m["feature"] != ""
    assert (computed == (m["extraction"] != "")).all()
    assert (m.loc[~computed, "deviation"] != "").all(), "every tag left out says why"
    assert (m.loc[m["deviation_kind"] == "deviation", "deviation"] != "").all()
    classes = getFeatureClasses()
    for name in m.loc[m["feature"].str.startswith("original_"), "feature"].unique():
        _, cls, feature = name.split("_", 2)
        assert feature in classes[cls].getFeatureNames(), name
    # grey-level-dependent texture features are where the fixed-bin-size origin matters
    dep = set(m.loc[m["grey_level_dependent"], "feature"])
    assert "original_glcm_JointAverage" in dep and "original_glcm_Contrast" not in dep
    assert m.set_index("ibsi_tag").loc["stat_kurt", "deviation_kind"] == "deviation"


def test_map_covers_every_reference_tag_and_claims_no_other(ibsi_data):
    m = ibsi.load_map()
    ref_tags = set()
    for path in REFERENCE_FILES:
        if "ibsi_1_" not in path.name:
            continue
        with open(path, encoding="utf-8-sig") as fh:
            ref_tags |= {r["tag"] for r in csv.DictReader(fh)}
    assert set(m["ibsi_tag"]) == ref_tags
    for name in ibsi.CONFIGURATIONS:
        ref = ibsi.load_reference(ibsi_data, name)
        assert set(ref["ibsi_tag"]) <= set(m["ibsi_tag"]), name


# ------------------------------------------------------------------------- match logic


@pytest.mark.parametrize("value, reference, tolerance, expected", [
    (2.15, 2.15, 0.0, True),
    (2.1486, 2.15, 0.0, True),      # rounds to the 3-digit reference
    (2.144, 2.15, 0.0, False),
    (9.2449, 9.31, 0.06, False),    # |diff| 0.0651 > 0.06 + 0.005 (pyradiomics, phantom minor axis)
    (9.26, 9.31, 0.06, True),
    (556.33, 556.0, 4.0, True),
    (561.0, 556.0, 4.0, False),
    (-0.0121, -0.0121, 0.0, True),
    (0.0, 0.0, 0.0, True),
    (1e-4, 0.0, 0.0, False),
    (float("nan"), 1.0, 0.1, False),
])
def test_is_match(value, reference, tolerance, expected):
    assert ibsi.is_match(value, reference, tolerance) is expected


def _toy():
    mapping = pd.DataFrame({
        "ibsi_tag": ["stat_mean", "stat_kurt", "cm_joint_avg_3D_avg", "dzm_sde_3D", "img_dim_x_init_img"],
        "ibsi_family": ["Statistics", "Statistics", "Co-occurrence matrix (3D, averaged)", "Distance zone matrix (3D)",
                        "Diagnostics-initial image"],
        "ibsi_feature": ["Mean", "(Excess) kurtosis", "Joint average", "Small distance emphasis", "Image dimension x"],
        "feature": ["original_firstorder_Mean", "original_firstorder_Kurtosis", "original_glcm_JointAverage", "",
                    "acceflow_preprocessing_img_dim_x_init_img"],
        "extraction": ["any", "any", "3D", "", "preprocessing"],
        "grey_level_dependent": [False, False, True, False, False],
        "deviation_kind": ["", "deviation", "", "not computed", ""],
        "deviation": ["", "pyradiomics Kurtosis is not excess kurtosis", "", "GLDZM not implemented in pyradiomics",
                      ""],
    })
    reference = pd.DataFrame({
        "ibsi_tag": list(mapping["ibsi_tag"]) + ["morph_vol_dens_ombb"],
        "ibsi_family": list(mapping["ibsi_family"]) + ["Morphology"],
        "ibsi_feature": list(mapping["ibsi_feature"]) + ["Volume density (OMBB)"],
        "consensus": ["≥ 10"] * 5 + ["not standardized"],
        "reference": [2.15, -0.355, 39.0, 1.0, 204.0, np.nan],
        "tolerance": [0.0, 0.0, 0.2, 0.0, 0.0, np.nan],
    })
    values = {"stat_mean": ("original_firstorder_Mean", 2.1486), "stat_kurt": ("original_firstorder_Kurtosis", 2.645),
              "cm_joint_avg_3D_avg": ("original_glcm_JointAverage", 36.98),
              "img_dim_x_init_img": ("acceflow_preprocessing_img_dim_x_init_img", 204.0)}
    return mapping, reference, values


def test_compare_gives_match_mismatch_not_computed_and_the_deviation():
    mapping, reference, values = _toy()
    t = ibsi.compare_with_reference(values, reference, mapping, "C", bin_shift=2)
    assert list(t.columns) == ibsi.TABLE_COLUMNS
    t = t.set_index("ibsi_tag")
    assert "morph_vol_dens_ombb" not in t.index  # no reference value: not standardised, left out
    assert t.loc["stat_mean", "match"] == ibsi.MATCH and not t.loc["stat_mean", "known_deviation"]
    assert t.loc["stat_kurt", "match"] == ibsi.MISMATCH and t.loc["stat_kurt", "known_deviation"]
    assert t.loc["cm_joint_avg_3D_avg", "match"] == ibsi.MISMATCH and t.loc["cm_joint_avg_3D_avg", "known_deviation"]
    assert "2 bin(s) lower" in t.loc["cm_joint_avg_3D_avg", "deviation"]
    assert t.loc["dzm_sde_3D", "match"] == ibsi.NOT_COMPUTED and math.isnan(t.loc["dzm_sde_3D", "value"])
    assert "GLDZM" in t.loc["dzm_sde_3D", "deviation"] and not t.loc["dzm_sde_3D", "known_deviation"]
    assert t.loc["stat_kurt", "difference"] == pytest.approx(2.645 + 0.355)
    # without the bin offset the joint-average mismatch is unexplained
    t0 = ibsi.compare_with_reference(values, reference, mapping, "C").set_index("ibsi_tag")
    assert not t0.loc["cm_joint_avg_3D_avg", "known_deviation"]


def test_summary_counts_features_and_diagnostics_apart():
    mapping, reference, values = _toy()
    t = ibsi.compare_with_reference(values, reference, mapping, "C", bin_shift=2)
    s = ibsi.summarise(t, {"C": ibsi.CONFIGURATIONS["C"].describe()}, {"C": 1.5}).iloc[0]
    assert list(s.index) == ibsi.SUMMARY_COLUMNS
    assert (s["n_reference"], s["n_computed"], s["n_match"], s["n_mismatch"], s["n_mismatch_known_deviation"],
            s["n_not_computed"]) == (4, 3, 1, 2, 2, 1)
    assert s["match_rate"] == pytest.approx(1 / 3)
    assert (s["n_diagnostics"], s["n_diagnostics_match"]) == (1, 1)
    assert s["discretisation"] == "FBS 25" and s["resegmentation"] == "range [-1000, 400]" and s["seconds"] == 1.5


# ------------------------------------------------------------------ processing pieces


def test_ibsi_grid_is_centred_and_rounds_up():
    img = make_image(np.zeros((60, 201, 204), np.float32), spacing=(0.977, 0.977, 3.0), origin=(-174.4, -79.6, -100.4))
    size, spacing, origin = ibsi.ibsi_grid(img, (2.0, 2.0, 2.0))
    assert size == [100, 99, 90]  # IBSI's interpolated image dimensions for PAT1 (configurations C-E)
    centre_old = np.array(img.GetOrigin()) + (np.array(img.GetSize()) - 1) * np.array(img.GetSpacing()) / 2
    centre_new = np.array(origin) + (np.array(size) - 1) * np.array(spacing) / 2
    np.testing.assert_allclose(centre_new, centre_old, atol=1e-9)
    size2, spacing2, _ = ibsi.ibsi_grid(img, (2.0, 2.0, None))  # configuration B: in-plane only
    assert size2 == [100, 99, 60] and spacing2[2] == 3.0
    with pytest.raises(ValueError):
        ibsi.ibsi_grid(img, (0.0, 1.0, 1.0))


def test_ibsi_resample_rounds_and_thresholds_the_mask():
    arr = np.arange(4 * 6 * 6, dtype=np.float32).reshape(4, 6, 6)
    mask = np.zeros((4, 6, 6), np.uint8)
    mask[1:3, 1:5, 1:5] = 1
    img, msk = ibsi.ibsi_resample(make_image(arr), make_image(mask), (0.7, 0.7, 0.7))
    a = sitk.GetArrayFromImage(img)
    assert np.array_equal(a, np.round(a)) and set(np.unique(sitk.GetArrayFromImage(msk))) == {0, 1}
    assert img.GetSize() == (9, 9, 6) and msk.GetPixelID() == sitk.sitkUInt8


def test_resegmentation_range_then_outliers():
    # preprocess_ibsi uses the study's resegmentation_range (acceflow.imaging.extract), on image and mask
    v = np.array([-1200.0, -900.0, 0.0, 10.0, 20.0, 30.0, 500.0])
    img, roi = make_image(v.reshape(1, 1, -1).astype(np.float32)), make_image(np.ones((1, 1, v.size), np.uint8))
    assert resegmentation_range(img, roi) is None
    assert resegmentation_range(img, roi, 1, (-1000, 400)) == [-1000.0, 400.0]
    kept = v[(v >= -1000) & (v <= 400)]
    lo, hi = resegmentation_range(img, roi, 1, (-1000, 400), 1.0)
    assert lo == pytest.approx(kept.mean() - kept.std()) and hi == pytest.approx(min(400, kept.mean() + kept.std()))
    assert ibsi.resegmentation_range is resegmentation_range  # one implementation


def test_closest_configuration_and_study_settings():
    default = yaml.safe_load((REPO / "config/radiomics/default.yaml").read_text())
    pre = {"spacing": [1.0, 1.0, 1.0], "image_interpolator": "bspline", "normalisation": {"CT": "none"}}
    st = ibsi.study_settings(default, pre)
    assert ibsi.closest_configuration(st) == "C"
    assert st["discretisation"].startswith("FBS 25") and st["resegmentation"] == "none"
    assert st["spacing_mm"].startswith("1 x 1 x 1")
    fbn = {"setting": {"binCount": 32, "resegmentRange": [-3, 3], "resegmentMode": "sigma"}}
    assert ibsi.closest_configuration(ibsi.study_settings(fbn, pre)) == "D"
    two_d = {"setting": {"binWidth": 25, "force2D": True}}
    assert ibsi.closest_configuration(ibsi.study_settings(two_d, {"spacing": None})) == "A"


def test_pyradiomics_params_per_run():
    p = ibsi.pyradiomics_params(ibsi.CONFIGURATIONS["E"], "3D_merged", (-718.0, 400.0))
    s = p["setting"]
    assert s["binCount"] == 32 and "binWidth" not in s and s["weightingNorm"] == "no_weighting"
    assert s["resegmentRange"] == [-718.0, 400.0] and s["resegmentMode"] == "absolute"
    assert set(p["featureClass"]) == {"glcm", "glrlm"} and s["resampledPixelSpacing"] is None
    s = ibsi.pyradiomics_params(ibsi.CONFIGURATIONS["D"], "3D", (-724.2, 626.3))["setting"]
    assert s["resegmentMode"] == "sigma" and s["resegmentRange"] == [-3.0, 3.0]
    p = ibsi.pyradiomics_params(ibsi.CONFIGURATIONS["A"], "2.5D")
    assert p["setting"]["force2D"] and p["setting"]["binWidth"] == 25.0 and "Compactness1" in p["featureClass"]["shape"]


# ------------------------------------------------------------------------ known answers


def test_digital_phantom_known_answers(ibsi_data):
    values, info = ibsi.compute_configuration(ibsi_data, "digital_phantom")
    assert info["bin_shift"] == 0
    v = {tag: value for tag, (_, value) in values.items()}
    ref = ibsi.load_reference(ibsi_data, "digital_phantom").set_index("ibsi_tag")
    for tag in ("morph_volume", "morph_vol_approx", "morph_area_mesh", "stat_mean", "stat_var", "stat_energy",
                "ih_entropy", "cm_joint_max_3D_avg", "cm_contrast_3D_comb", "cm_joint_entr_2_5D_avg",
                "rlm_sre_3D_avg", "rlm_rl_entr_2_5D_comb", "szm_sze_3D", "szm_zs_entr_2_5D", "ngt_coarseness_3D",
                "ngt_busyness_2_5D", "ngl_hde_3D", "ngl_glnu_norm_3D"):
        assert ibsi.is_match(v[tag], ref.loc[tag, "reference"], ref.loc[tag, "tolerance"]), (tag, v[tag])
    assert v["morph_volume"] == pytest.approx(556.3333, abs=1e-3)   # mesh volume (IBSI 556)
    assert v["stat_kurt"] - 3 == pytest.approx(-0.355, abs=5e-4)   # pyradiomics kurtosis is IBSI's + 3
    table = ibsi.compare_with_reference(values, ibsi.load_reference(ibsi_data, "digital_phantom"), ibsi.load_map(),
                                        "digital_phantom")
    bad = table[table["match"] == ibsi.MISMATCH]
    assert set(bad["ibsi_tag"]) == {"stat_kurt", "morph_pca_min_axis", "morph_pca_least_axis"}
    assert bad["known_deviation"].all()
    # the PCA deviation: IBSI's values use the 1/(N-1) covariance of the 74 voxel positions
    assert v["morph_pca_min_axis"] * math.sqrt(74 / 73) == pytest.approx(9.31, abs=0.005)


@pytest.fixture(scope="module")
def full_check(ibsi_data):
    default = yaml.safe_load((REPO / "config/radiomics/default.yaml").read_text())
    study = {"params": default, "preprocessing": {"spacing": [1.0, 1.0, 1.0], "image_interpolator": "bspline",
                                                  "normalisation": {"CT": "none"}}}
    return ibsi.run_ibsi_check(ibsi_data, study=study, log=lambda _: None)


def test_ct_phantom_configurations_conform_but_for_documented_deviations(full_check):
    table, summary = full_check
    s = summary.set_index("configuration")
    assert list(s.index) == ["digital_phantom", "A", "B", "C", "D", "E", "study"]
    conf = table[table["configuration"] != "study"]
    # acceflow's IBSI processing reproduces every diagnostic feature (grid sizes, voxel counts, ROI intensities)
    diag = conf[conf["ibsi_family"].str.startswith("Diagnostics")]
    assert len(diag) == 5 * 60 and (diag["match"] == ibsi.MATCH).all()
    # every feature mismatch is a documented pyradiomics deviation
    bad = conf[conf["match"] == ibsi.MISMATCH]
    assert bad["known_deviation"].all(), bad[["configuration", "ibsi_tag"]]
    for name in ("digital_phantom", "A", "B", "D", "E"):
        assert s.loc[name, "match_rate"] > 0.98, name
    # C: fixed bin size 25 HU with the range starting at -1000 HU; pyradiomics' bins start at -950
    assert s.loc["C", "match_rate"] > 0.75 and "2 bin(s) lower" in s.loc["C", "note"]
    assert s.loc["C", "n_computed"] == 149 and s.loc["A", "n_reference"] == 346
    # the study's own settings are compared with the closest configuration, not judged for conformance
    assert s.loc["study", "reference_configuration"] == "C" and s.loc["study", "n_computed"] > 50
    assert "1 x 1 x 1" in s.loc["study", "spacing_mm"]


def test_missing_data_gives_not_computed_tables(tmp_path):
    table, summary = ibsi.run_ibsi_check(tmp_path / "nowhere", ["digital_phantom", "C"], log=lambda _: None)
    assert list(table["match"]) == [ibsi.NOT_COMPUTED] * 2 and list(table.columns) == ibsi.TABLE_COLUMNS
    assert table["deviation"].str.startswith("not computed: IBSI data not found at").all()
    assert list(summary["configuration"]) == ["digital_phantom", "C"]
    assert (summary["n_computed"] == 0).all() and summary["match_rate"].isna().all()
    assert "theibsi/data_sets" in summary["note"].iloc[0]


# ------------------------------------------------------------------------------ workflow


def _config(tmp_path, **ibsi_keys) -> tuple:
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    results = tmp_path / "results"
    config["results"] = str(results)
    config["input"]["images"] = str(results / "demo/manifest.tsv")
    config["extraction"]["params"] = str(REPO / "config/radiomics/default.yaml")
    config["ibsi"] = ibsi_keys
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, results


def _snakemake(tmp_path, cfg, *targets):
    cmd = [sys.executable, "-m", "snakemake", *targets, "--snakefile", str(REPO / "Snakefile"), "--directory",
           str(tmp_path), "--cores", "1", "--configfile", str(cfg)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


@pytest.mark.integration
def test_rule_is_in_the_default_dag_and_switches_off(tmp_path):
    cfg, _ = _config(tmp_path, data=str(IBSI_DATA))
    assert "ibsi_check" in _snakemake(tmp_path, cfg, "-n").stdout
    cfg, _ = _config(tmp_path, enabled=False)
    proc = _snakemake(tmp_path, cfg, "-n")
    assert proc.returncode == 0 and "ibsi_check" not in proc.stdout and "dossier" in proc.stdout


@pytest.mark.integration
def test_rule_writes_not_computed_tables_without_the_data(tmp_path):
    # study: false keeps the rule off the ingest checkpoint (no demo cohort needed)
    cfg, results = _config(tmp_path, data=str(tmp_path / "no_ibsi_here"), configurations=["C", "D"], study=False)
    proc = _snakemake(tmp_path, cfg, str(results / "analytical/ibsi_summary.tsv"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = pd.read_csv(results / "analytical/ibsi.tsv", sep="\t")
    assert list(table["configuration"]) == ["C", "D"] and set(table["match"]) == {"not computed"}
    assert "no_ibsi_here" in table["deviation"].iloc[0]
    assert pd.read_csv(results / "analytical/ibsi_summary.tsv", sep="\t")["n_computed"].tolist() == [0, 0]


def test_study_settings_not_meant_for_hu_are_refused_not_run(ibsi_data):
    mr = yaml.safe_load((REPO / "config/radiomics/mr_zscore.yaml").read_text())  # bin width 0.1 (z-score units)
    table, summary = ibsi.run_ibsi_check(ibsi_data, ["digital_phantom"], log=lambda _: None,
                                         study={"params": mr, "preprocessing": {"spacing": None}})
    s = summary.set_index("configuration").loc["study"]
    assert s["n_computed"] == 0 and "grey levels on the CT phantom" in s["note"]
    _, summary = ibsi.run_ibsi_check(ibsi_data, ["digital_phantom"], log=lambda _: None,
                                     study={"skip": "not computed: the study has no CT scans"})
    assert summary["configuration"].tolist() == ["digital_phantom", "study"]
    assert summary["note"].iloc[1] == "not computed: the study has no CT scans"
