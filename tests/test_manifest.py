"""Manifests, ingest QC and feature tables."""
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from conftest import make_image, need

from acceflow.io.images import write_image
from acceflow.io.manifest import ManifestError, binary_outcome, build_manifest_from_layout, load_manifest, make_scan_id
from acceflow.io.qc import check_scan, ingest
from acceflow.runtime import sha256_file
from acceflow.study.tables import assemble_feature_table, ingest_feature_table


@pytest.fixture
def cohort(tmp_path, sphere_case):
    image, mask = sphere_case
    write_image(image, tmp_path / "img.nii.gz")
    write_image(mask, tmp_path / "mask.nii.gz")
    empty = sitk.Image(mask)
    empty *= 0
    write_image(empty, tmp_path / "empty.nii.gz")
    moved = sitk.Image(mask)
    moved.SetOrigin((0, 0, 3.0))
    write_image(moved, tmp_path / "moved.nii.gz")
    rows = [("c1", "img.nii.gz", "mask.nii.gz", "A", 1), ("c2", "img.nii.gz", "mask.nii.gz", "A", 0),
            ("c3", "img.nii.gz", "empty.nii.gz", "A", 1), ("c4", "img.nii.gz", "moved.nii.gz", "B", 0),
            ("c5", "missing.nii.gz", "mask.nii.gz", "B", 1), ("c6", "img.nii.gz", "mask.nii.gz", "B", None),
            ("c7", "img.nii.gz", "mask.nii.gz", "Z", 1)]
    df = pd.DataFrame(rows, columns=["case_id", "image", "mask", "cohort", "outcome"])
    df.to_csv(tmp_path / "manifest.tsv", sep="\t", index=False)
    return tmp_path


def test_load_manifest_resolves_paths_and_scan_ids(cohort):
    df = load_manifest(cohort / "manifest.tsv")
    assert df.loc[0, "image"] == str(cohort / "img.nii.gz")
    assert list(df["scan_id"][:2]) == ["c1", "c2"] and df["primary"].all()
    assert (df["modality"] == "CT").all()


def test_ingest_verdicts_name_the_problem(cohort):
    qc, scans = ingest(load_manifest(cohort / "manifest.tsv"), {"type": "binary", "column": "outcome", "positive": 1},
                       ["A"], ["B"])
    reason = dict(zip(qc["case_id"], qc["reason"]))
    assert list(scans["case_id"]) == ["c1", "c2"]
    assert "no voxel with label 1" in reason["c3"] and "empty.nii.gz" in reason["c3"]
    assert "origin" in reason["c4"] and "moved.nii.gz" in reason["c4"]
    assert "not found" in reason["c5"]
    assert "outcome missing" in reason["c6"]
    assert "neither cohorts.train nor cohorts.external" in reason["c7"]
    assert scans["image_sha256"].iloc[0] == sha256_file(cohort / "img.nii.gz")


def test_ingest_refuses_a_configured_cohort_without_data(cohort):
    with pytest.raises(ManifestError, match=r"\['Q'\]"):
        ingest(load_manifest(cohort / "manifest.tsv"), {"type": "binary", "column": "outcome", "positive": 1},
               ["A"], ["Q"])


def test_manifest_errors(tmp_path):
    (tmp_path / "m.tsv").write_text("case_id\timage\tcohort\nc1\ta.nii\tA\nc1\tb.nii\tA\n")
    with pytest.raises(ManifestError, match="duplicate rows"):
        load_manifest(tmp_path / "m.tsv")
    (tmp_path / "m.tsv").write_text("case_id\timage\nc1\ta.nii\n")
    with pytest.raises(ManifestError, match="missing column"):
        load_manifest(tmp_path / "m.tsv")
    (tmp_path / "m.tsv").write_text("case_id\timage\tcohort\nc1\t../../etc/a.nii\tA\n")
    with pytest.raises(ManifestError, match="outside the data root"):
        load_manifest(tmp_path / "m.tsv", data_root=tmp_path)


def test_repeats_and_modalities_give_distinct_scan_ids(tmp_path):
    (tmp_path / "m.csv").write_text("case_id,image,mask,cohort,modality,repeat\n"
                                    "c1,a,b,A,MR,1\nc1,a,b,A,MR,2\nc1,c,d,A,PET,1\n")
    df = load_manifest(tmp_path / "m.csv")
    assert list(df["scan_id"]) == ["c1__MR__1", "c1__MR__2", "c1__PET__1"]
    assert list(df["primary"]) == [True, False, True]
    assert make_scan_id("a b/c") == "a-b-c"


def test_binary_outcome_string_and_numeric():
    assert list(binary_outcome(pd.Series(["YES", "NO", None]), "YES").fillna(-1)) == [1, 0, -1]
    assert list(binary_outcome(pd.Series([1.0, 0.0, np.nan]), 1).fillna(-1)) == [1, 0, -1]


def test_check_scan_rejects_nan_voxels(tmp_path, sphere_case):
    image, mask = sphere_case
    arr = sitk.GetArrayFromImage(image)
    arr[0, 0, 0] = np.nan
    sitk.WriteImage(make_image(arr), str(tmp_path / "nan.mha"))  # NIfTI writing drops NaN in ITK; write_image refuses it
    write_image(mask, tmp_path / "mask.nii.gz")
    assert "NaN" in check_scan(str(tmp_path / "nan.mha"), str(tmp_path / "mask.nii.gz"))


def _config(**kw):
    cfg = {"input": {"id_column": "case_id", "derived": {}}, "cohorts": {"column": "cohort", "train": ["A"], "external": ["B"]},
           "outcome": {"type": "binary", "column": "y", "positive": "YES", "time": None, "event": None},
           "clinical": [], "features": None}
    cfg.update(kw)
    return cfg


def test_ingest_feature_table(tmp_path):
    (tmp_path / "t.csv").write_text("case_id,cohort,y,f1,f2,label\n1,A,YES,1.0,,x\n2,A,NO,2.0,3\n"
                                    "3,B,,1,1,\n4,C,NO,1,1,\n")
    qc, feats = ingest_feature_table(tmp_path / "t.csv", _config())
    assert list(feats.columns) == ["case_id", "cohort", "y", "f1", "f2"]
    assert list(feats["case_id"]) == ["1", "2"]
    assert list(qc["status"]) == ["ok", "ok", "excluded", "excluded"]
    with pytest.raises(ManifestError, match="not in the table"):
        ingest_feature_table(tmp_path / "t.csv", _config(features=["f9"]))
    with pytest.raises(ManifestError, match=r"cohort\(s\) \['Q'\]"):
        ingest_feature_table(tmp_path / "t.csv", _config(cohorts={"column": "cohort", "train": ["Q"], "external": []}))


def test_assemble_feature_table_prefixes_modalities_and_collects_repeats(tmp_path):
    scans = pd.DataFrame({
        "case_id": ["c1", "c1", "c1", "c2", "c2"], "cohort": "A", "y": ["YES"] * 3 + ["NO"] * 2,
        "modality": ["MR", "MR", "PET", "MR", "PET"], "repeat": ["1", "2", "1", "1", "1"],
        "scan_id": ["c1__MR__1", "c1__MR__2", "c1__PET__1", "c2__MR__1", "c2__PET__1"],
        "primary": [True, False, True, True, True]})
    scans.to_csv(tmp_path / "scans.tsv", sep="\t", index=False)
    files = []
    for i, sid in enumerate(scans["scan_id"]):
        err = "feature extraction failed: boom" if sid == "c2__PET__1" else ""
        row = {"scan_id": sid, "error": err} if err else {"scan_id": sid, "error": "", "original_f": float(i)}
        pd.DataFrame([row]).to_csv(tmp_path / f"{sid}.tsv", sep="\t", index=False)
        files.append(str(tmp_path / f"{sid}.tsv"))
    feats, repeats, qc = assemble_feature_table(tmp_path / "scans.tsv", files, _config(clinical=[]))
    assert list(feats["case_id"]) == ["c1"]  # c2 lost its PET scan
    assert feats.loc[0, "MR_original_f"] == 0.0 and feats.loc[0, "PET_original_f"] == 2.0
    assert list(repeats["repeat"]) == ["1", "2"] and list(repeats["MR_original_f"]) == [0.0, 1.0]
    assert qc.set_index("scan_id").loc["c2__PET__1", "reason"] == "feature extraction failed: boom"


def test_layout_manifest_on_sts(shared_data):
    root = need(shared_data / "sts" / "nifti")
    df = build_manifest_from_layout(str(root), {"MR": "MR_T1_image.nii.gz", "PET": "PET_image.nii.gz"},
                                    {"MR": "MR_T1_mask.nii.gz", "PET": "PET_mask.nii.gz"}, cases="STS_*",
                                    clinical=str(shared_data / "sts/clinical/INFOclinical_STS_merged.csv"),
                                    clinical_id="Patient ID", cohort="MUHC")
    assert len(df) == 102 and df["case_id"].nunique() == 51
    assert int(df.drop_duplicates("case_id")["LungMets"].sum()) == 19


def test_derived_columns_aggregate_list_cells():
    from acceflow.study.tables import derive_columns

    df = pd.DataFrame({"lesion_PIRADS": ["4,2", "N/A,3", None, "5"]})
    out = derive_columns(df, {"pirads_max": {"column": "lesion_PIRADS", "aggregate": "max"},
                              "n_lesions": {"column": "lesion_PIRADS", "aggregate": "count"}})
    assert out["pirads_max"].tolist()[:2] == [4.0, 3.0] and np.isnan(out["pirads_max"][2])
    assert out["n_lesions"].tolist() == [2.0, 1.0, 0.0, 1.0]
    with pytest.raises(ManifestError, match="not in the table"):
        derive_columns(df, {"x": {"column": "nope"}})


def test_table_without_a_header_row_is_refused_clearly(tmp_path):
    """A file of blank lines (a spreadsheet export of an empty sheet) names the file and the fix."""
    from acceflow.io.manifest import ManifestError, read_table

    path = tmp_path / "features.csv"
    path.write_text("\n\n")
    with pytest.raises(ManifestError, match="no header row"):
        read_table(path)
