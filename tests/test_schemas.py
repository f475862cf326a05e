"""Row schemas of the image manifest and the feature table (workflow/schemas), validated at ingest."""
import pandas as pd
import pytest
from conftest import REPO

from acceflow.io.manifest import ManifestError, load_manifest
from acceflow.io.schemas import SCHEMA_DIR, load_schema, validate_rows
from acceflow.study.tables import ingest_feature_table


def test_schemas_are_found_in_the_checkout():
    assert SCHEMA_DIR == REPO / "workflow" / "schemas"
    for name in ("config", "manifest", "features"):
        assert load_schema(name)["type"] == "object"


def test_schema_folder_can_be_pointed_at(tmp_path, monkeypatch):
    monkeypatch.setenv("ACCEFLOW_SCHEMAS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="ACCEFLOW_SCHEMAS"):
        load_schema("manifest")


def test_validate_rows_names_line_case_column_and_fix():
    df = pd.DataFrame({"case_id": ["c1", "c2", "c3"], "image": ["a.nii", None, "c.nii"], "mask": ["", "b", 3]})
    problems = validate_rows(df, load_schema("manifest"))
    assert len(problems) == 2
    assert problems[0].startswith("line 3 (case c2), column 'image': None is not of type 'string'; fix: give the image")
    assert problems[1].startswith("line 4 (case c3), column 'mask': 3 is not of type")


def test_validate_rows_limits_the_report():
    df = pd.DataFrame({"case_id": [f"c{i}" for i in range(30)], "image": None})
    problems = validate_rows(df, load_schema("manifest"), limit=5)
    assert len(problems) == 6 and problems[-1] == "... and 25 more"


def test_manifest_with_an_empty_image_is_refused(tmp_path):
    (tmp_path / "m.tsv").write_text("case_id\timage\tmask\tcohort\nc1\ta.nii\tm.nii\tA\nc2\t\tm.nii\tA\n")
    with pytest.raises(ManifestError, match=r"m.tsv: rows that do not match the manifest schema.*\n"
                                            r"  line 3 \(case c2\), column 'image': .*fix: give the image"):
        load_manifest(tmp_path / "m.tsv")


def test_manifest_without_masks_is_accepted(tmp_path):
    (tmp_path / "m.tsv").write_text("case_id\timage\tmask\tcohort\nc1\ta.nii\t\tA\nc2\tb.nii\t\t\n")
    df = load_manifest(tmp_path / "m.tsv")
    assert list(df["mask"]) == ["", ""]


def _config(**kw):
    cfg = {"input": {"id_column": "pid", "derived": {}}, "cohorts": {"column": "site", "train": ["A"], "external": []},
           "outcome": {"type": "binary", "column": "y", "positive": 1, "time": None, "event": None},
           "clinical": [], "features": None}
    cfg.update(kw)
    return cfg


def test_feature_table_text_in_a_feature_column_is_refused(tmp_path):
    (tmp_path / "t.csv").write_text("pid,site,y,f1,f2\n1,A,1,0.5,x\n2,A,0,1.5,2\n")
    with pytest.raises(ManifestError, match=r"features.schema.yaml.*\n  line 2 \(case 1\), column 'f2': 'x' is not "
                                            r"of type 'number', 'null'; fix: make the column numeric"):
        ingest_feature_table(tmp_path / "t.csv", _config(features=["f1", "f2"]))


def test_feature_table_empty_case_id_is_refused(tmp_path):
    (tmp_path / "t.csv").write_text("pid,site,y,f1\n1,A,1,0.5\n,A,0,1.5\n")
    with pytest.raises(ManifestError, match=r"line 3 \(case None\), column 'case_id': None is not of type 'string'"):
        ingest_feature_table(tmp_path / "t.csv", _config())


def test_feature_table_numeric_ids_and_missing_values_pass(tmp_path):
    (tmp_path / "t.csv").write_text("pid,site,y,f1,f2\n1,A,1,0.5,\n2,A,0,,2\n")
    qc, feats = ingest_feature_table(tmp_path / "t.csv", _config())
    assert list(feats["case_id"]) == ["1", "2"] and list(feats.columns[-2:]) == ["f1", "f2"]
