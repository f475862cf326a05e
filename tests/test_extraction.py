"""pyradiomics extraction: the naming/provenance contract, the regression test on pyradiomics' own
sample cases against its published baseline, and filters (LoG, wavelet) through the DAG."""
import ast
import functools
import math
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import yaml
from conftest import REPO, SHARED_DATA, need

from acceflow.imaging.extract import (
    DIAGNOSTICS_PREFIX,
    extract_features,
    load_params,
    nonfinite_features,
    split_feature_name,
)
from acceflow.io.images import read_image, write_image
from acceflow.study.tables import FeatureTableError, assemble_diagnostics, assemble_feature_table, check_finite

PYRADIOMICS_DATA = SHARED_DATA / "pyradiomics"
BASELINE_CASES = ["brain1", "brain2", "breast1", "lung1", "lung2"]
CLASSES_3D = ["firstorder", "shape", "glcm", "glrlm", "glszm", "gldm", "ngtdm"]
#: brain1's shape baseline column is stale in pyradiomics' own repository (see the regression test)
STALE_BASELINE = {("brain1", f"original_shape_{name}"): 1e-3
                  for name in ("MeshVolume", "SurfaceArea", "SurfaceVolumeRatio", "Sphericity")}
REL_TOL = 1e-6


def rel_diff(value: float, reference: float) -> float:
    return abs(value - reference) / abs(reference) if reference != 0 else abs(value)


@functools.lru_cache(maxsize=None)
def baseline(feature_class: str) -> pd.DataFrame:
    """pyradiomics' baseline table of one class: rows are features and diagnostics, columns are tests."""
    return pd.read_csv(need(PYRADIOMICS_DATA / "baseline" / f"baseline_{feature_class}.csv"), index_col=0)


def baseline_settings(column: pd.Series) -> dict:
    settings = ast.literal_eval(column["diagnostics_Configuration_Settings"])
    # additionalInfo only switches pyradiomics' diagnostics (provenance, incl. hashing every voxel);
    # it changes no feature value, and off it halves the run time of this test
    return {**settings, "additionalInfo": False}


def uint32_hash(image: sitk.Image) -> str:
    """SHA-1 of the voxel buffer as pyradiomics' baseline records it (masks read as UInt32)."""
    return sitk.Hash(sitk.Cast(image, sitk.sitkUInt32))


# --- naming and provenance contract ---------------------------------------------------------------

def test_split_feature_name_follows_image_type_class_feature():
    assert split_feature_name("original_glcm_Idm") == ("original", "glcm", "Idm")
    assert split_feature_name("log-sigma-1-0-mm-3D_firstorder_Mean") == ("log-sigma-1-0-mm-3D", "firstorder", "Mean")
    assert split_feature_name("wavelet-LLH_glcm_Idm") == ("wavelet-LLH", "glcm", "Idm")
    for bad in ("diagnostics_Versions_PyRadiomics", "original_Mean", "MR_original_glcm_Idm", "a__b"):
        with pytest.raises(ValueError, match="<image type>_<class>_<feature>"):
            split_feature_name(bad)


def test_nonfinite_features_are_named():
    assert nonfinite_features({"a_b_c": 1.0, "a_b_d": float("nan"), "a_b_e": float("inf")}) == ["a_b_d", "a_b_e"]
    assert nonfinite_features({"a_b_c": 0.0}) == []


def test_log_and_wavelet_features_are_named_by_image_type(sphere_case):
    """LoG (sigma in mm) and wavelet filters from the parameters; every name has three parts."""
    image, mask = sphere_case
    params = {"setting": {"binWidth": 25, "label": 1},
              "imageType": {"Original": {}, "LoG": {"sigma": [1.0, 2.0]}, "Wavelet": {}},
              "featureClass": {"firstorder": ["Mean"], "glcm": ["Idm"], "shape": ["VoxelVolume"]}}
    features, diagnostics = extract_features(image, mask, params)
    parts = [split_feature_name(name) for name in features]
    image_types = {p[0] for p in parts}
    assert image_types == {"original", "log-sigma-1-0-mm-3D", "log-sigma-2-0-mm-3D"} | {
        f"wavelet-{band}" for band in ("LLH", "LHL", "LHH", "HLL", "HLH", "HHL", "HHH", "LLL")}
    assert {p[1] for p in parts if p[0] != "original"} == {"firstorder", "glcm"}  # shape: original only
    assert "log-sigma-1-0-mm-3D_firstorder_Mean" in features and "wavelet-LLH_glcm_Idm" in features
    assert not nonfinite_features(features) and len(features) == 1 + 2 * 11
    assert diagnostics and all(k.startswith(DIAGNOSTICS_PREFIX) for k in diagnostics)


def test_feature_table_refuses_nan_and_keeps_diagnostics_apart(tmp_path):
    scans = pd.DataFrame({"case_id": ["c1", "c2"], "cohort": "A", "y": [1, 0], "modality": "CT", "repeat": "",
                          "scan_id": ["c1", "c2"], "primary": True})
    scans.to_csv(tmp_path / "scans.tsv", sep="\t", index=False)
    for sid, value in (("c1", 1.5), ("c2", 2.5)):
        pd.DataFrame([{"scan_id": sid, "error": "", "original_firstorder_Mean": value}]).to_csv(
            tmp_path / f"{sid}.tsv", sep="\t", index=False)
        pd.DataFrame([{"scan_id": sid, "diagnostics_Versions_PyRadiomics": "v3.0.1"}]).to_csv(
            tmp_path / f"{sid}.diag.tsv", sep="\t", index=False)
    config = {"outcome": {"type": "binary", "column": "y", "positive": 1}, "clinical": []}
    files = [str(tmp_path / f"{s}.tsv") for s in ("c1", "c2")]
    feats, _, qc = assemble_feature_table(tmp_path / "scans.tsv", files, config)
    assert list(feats.columns) == ["case_id", "cohort", "y", "original_firstorder_Mean"]
    assert (qc["status"] == "ok").all()
    diag = assemble_diagnostics(tmp_path / "scans.tsv", [str(tmp_path / f"{s}.diag.tsv") for s in ("c1", "c2")])
    assert list(diag.columns[:4]) == ["scan_id", "case_id", "repeat", "modality"] and len(diag) == 2
    assert (diag["diagnostics_Versions_PyRadiomics"] == "v3.0.1").all()
    # a scan whose file lacks a column the others have (e.g. another parameter file) is refused loudly
    pd.DataFrame([{"scan_id": "c2", "error": "", "original_firstorder_Median": 2.0}]).to_csv(
        tmp_path / "c2.tsv", sep="\t", index=False)
    with pytest.raises(FeatureTableError, match=r"2 feature column\(s\) hold NaN/inf for 2 extracted scan"):
        assemble_feature_table(tmp_path / "scans.tsv", files, config)
    with pytest.raises(FeatureTableError, match="original_x"):
        check_finite(pd.DataFrame({"scan_id": ["a"], "original_x": [np.inf]}), ["original_x"])


# --- regression: pyradiomics' sample cases against pyradiomics' baseline --------------------------

@pytest.mark.parametrize("case", BASELINE_CASES)
def test_extract_reproduces_pyradiomics_baseline(case):
    """Our extraction reproduces pyradiomics' published baseline (rel 1e-6), every class incl. shape2D.

    pyradiomics' repository ships ``data/baseline/baseline_<class>.csv`` for brain1, brain2,
    breast1, lung1 and lung2 under fixed settings (recorded in ``diagnostics_Configuration_Settings``;
    no filter, no resampling, bin width 25). The sixth sample case, the prostate phantom, has no
    baseline. ``shape2D`` is baselined on pyradiomics' ``<case>_2D`` test masks: a single slice of
    the 3D label, rebuilt here from the slice in the baseline's bounding box and proven identical
    by the SHA-1 of its voxels that the baseline records (as are the image and 3D mask we read).

    Every feature matches to 1e-6 relative (observed: <= 4e-12) except four of brain1's shape
    features, held to 1e-3: MeshVolume (1.2e-4), SurfaceArea (7.9e-4) and the two derived from
    them, SurfaceVolumeRatio (9.1e-4) and Sphericity (8.7e-4). The cause is the baseline, not our
    reading nor the installed pyradiomics: the inputs are hash-identical; brain1's voxel-count,
    PCA and diameter shape features match to 1e-12, so the voxel set and spacing are the same; the
    brain1 column was written in full-python mode by a development build (2.0.1b1.post11) made
    before mesh-based shape features were released (2.1.0, PR #427); the other four cases' columns,
    written by the same build, and brain1 resampled (written by 2.1.0.post6) match the released C
    marching cubes to 1e-12, and a Python re-implementation of that algorithm with the pre-release
    triangle table gives the installed values exactly. brain1 alone holds cube configurations
    that no other case has (6 of the 128), where that build's mesh must have differed. So the
    C-extension-vs-Python question only matters through that pre-release mesh code; numpy and
    SimpleITK versions do not enter (the mesh is C; every other feature matches). pyradiomics'
    own tests accept 3% relative (tests/testUtils.py), so the stale column never failed upstream.
    If it is ever corrected, the check that these four still differ fails, to tighten the
    tolerance.
    """
    image = read_image(need(PYRADIOMICS_DATA / f"{case}_image.nrrd"))
    mask = read_image(PYRADIOMICS_DATA / f"{case}_label.nrrd")
    columns = {cls: baseline(cls)[case] for cls in CLASSES_3D}
    settings = baseline_settings(columns["firstorder"])
    assert all(baseline_settings(col) == settings for col in columns.values())
    assert sitk.Hash(image) == columns["firstorder"]["diagnostics_Image-original_Hash"]
    assert uint32_hash(mask) == columns["firstorder"]["diagnostics_Mask-original_Hash"]

    features, _ = extract_features(image, mask, {"setting": settings, "imageType": {"Original": {}},
                                                 "featureClass": {cls: None for cls in CLASSES_3D}})
    column2d = baseline("shape2D")[f"{case}_shape2D"]
    z = ast.literal_eval(column2d["diagnostics_Mask-corrected_BoundingBox"])[2]
    mask2d = mask[:, :, z:z + 1]
    assert uint32_hash(mask2d) == column2d["diagnostics_Mask-original_Hash"]
    features2d, _ = extract_features(image, mask2d, {"setting": baseline_settings(column2d),
                                                     "imageType": {"Original": {}}, "featureClass": {"shape2D": None}})
    columns["shape2D"] = column2d
    features.update(features2d)

    worst, checked = {}, 0
    for cls, column in columns.items():
        for name, reference in column.items():
            if name.startswith(DIAGNOSTICS_PREFIX):
                continue
            assert name in features, f"{case}: {name} is in the baseline but was not extracted"
            diff = rel_diff(features[name], float(reference))
            tolerance = STALE_BASELINE.get((case, name), REL_TOL)
            assert diff <= tolerance, f"{case} {name}: {features[name]!r} vs baseline {reference} (rel {diff:.2e})"
            if (case, name) in STALE_BASELINE:
                assert diff > 1e-5, f"{case} {name} now matches the baseline: tighten STALE_BASELINE"
            worst[cls] = max(worst.get(cls, 0.0), diff)
            checked += 1
    print(case, {cls: f"{d:.1e}" for cls, d in worst.items()})
    assert set(worst) == set(CLASSES_3D) | {"shape2D"} and checked > 100


def test_prostate_phantom_has_no_baseline_but_extracts():
    """The sixth sample case: pyradiomics publishes no baseline for it; every label extracts."""
    assert not any("prostate" in str(c) for cls in [*CLASSES_3D, "shape2D"] for c in baseline(cls).columns)
    image = read_image(need(PYRADIOMICS_DATA / "prostate_phantom_subvolume.nrrd"))
    mask = read_image(PYRADIOMICS_DATA / "prostate_phantom_subvolume-label.nrrd")
    params = load_params(REPO / "config/radiomics/default.yaml")
    labels = sorted(set(np.unique(sitk.GetArrayViewFromImage(mask)).tolist()) - {0})
    assert labels == [1, 7, 8, 9]
    for label in labels:
        features, _ = extract_features(image, mask, params, label=label)
        assert len(features) > 90 and not nonfinite_features(features), label


# --- through the DAG: LoG + wavelet from a parameter file, diagnostics kept apart -----------------

@pytest.mark.integration
def test_filters_through_the_dag_and_no_diagnostics_in_the_feature_table(tmp_path, sphere_case):
    image, mask = sphere_case
    rows = []
    for i in range(3):
        write_image(sitk.Cast(image, sitk.sitkFloat32) + float(10 * i), tmp_path / f"c{i}.nii.gz")
        write_image(mask, tmp_path / f"c{i}_mask.nii.gz")
        rows.append({"case_id": f"c{i}", "image": f"c{i}.nii.gz", "mask": f"c{i}_mask.nii.gz", "cohort": "A",
                     "y": i % 2, "age": 60 + i, "modality": "CT"})
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.tsv", sep="\t", index=False)
    params = {"setting": {"binWidth": 25, "label": 1, "correctMask": True},
              "imageType": {"Original": {}, "LoG": {"sigma": [1.0, 2.0]}, "Wavelet": {}},
              "featureClass": {"firstorder": None, "glcm": None, "shape": None}}
    (tmp_path / "filters.yaml").write_text(yaml.safe_dump(params))
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    results = tmp_path / "results"
    config.update(results=str(results), demo={"enabled": False}, clinical=["age"])
    config["input"]["images"] = str(tmp_path / "manifest.tsv")
    config["cohorts"] = {"column": "cohort", "train": ["A"], "external": []}
    config["outcome"] = {"type": "binary", "column": "y", "positive": 1}
    config["extraction"] = {"params": str(tmp_path / "filters.yaml")}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.run([sys.executable, "-m", "snakemake", str(results / "features/features.tsv"), "--snakefile",
                           str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "2",
                           "--configfile", str(tmp_path / "config.yaml")], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]

    feats = pd.read_csv(results / "features/features.tsv", sep="\t")
    assert list(feats["case_id"]) == ["c0", "c1", "c2"]
    feature_cols = list(feats.columns[4:])
    assert list(feats.columns[:4]) == ["case_id", "cohort", "y", "age"]
    assert not [c for c in feats.columns if "diagnostics" in c.lower()]
    types = {split_feature_name(c)[0] for c in feature_cols}
    assert {"original", "log-sigma-1-0-mm-3D", "log-sigma-2-0-mm-3D", "wavelet-LLH", "wavelet-HHH"} <= types
    assert len(types) == 11 and np.isfinite(feats[feature_cols].to_numpy(float)).all()
    assert all(re.fullmatch(r"[a-zA-Z0-9-]+_(firstorder|glcm|shape)_[A-Za-z0-9]+", c) for c in feature_cols)
    diag = pd.read_csv(results / "features/diagnostics.tsv", sep="\t", dtype=str)
    assert list(diag["scan_id"]) == ["c0", "c1", "c2"] and "diagnostics_Versions_PyRadiomics" in diag
    assert not set(diag.columns) & set(feature_cols)
    assert "'LoG': {'sigma': [1.0, 2.0]}" in diag["diagnostics_Configuration_EnabledImageTypes"].iloc[0]
    assert (pd.read_csv(results / "features/extraction_qc.tsv", sep="\t")["status"] == "ok").all()
    assert math.isclose(feats["original_firstorder_Mean"].iloc[1] - feats["original_firstorder_Mean"].iloc[0], 10,
                        abs_tol=1e-3)
