"""Issue 16: bad inputs found by probing as an attacker and a careless user; each is refused (or
excluded) with a message naming the case, the file or column, and the fix; nothing else is lost."""
import locale
import os

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from conftest import make_image

from acceflow.imaging.extract import _check_grey_levels
from acceflow.io.images import write_image
from acceflow.io.manifest import ManifestError, load_manifest
from acceflow.io.qc import check_scan, ingest
from acceflow.study.settings import ConfigError, check_config, with_defaults
from acceflow.study.tables import FeatureTableError, ingest_feature_table

BINARY = {"type": "binary", "column": "outcome", "positive": 1}
GOOD = [("g1", "img.nii.gz", "mask.nii.gz", "A", 1), ("g2", "img.nii.gz", "mask.nii.gz", "A", 0),
        ("g3", "img.nii.gz", "mask.nii.gz", "B", 1), ("g4", "img.nii.gz", "mask.nii.gz", "B", 0)]


@pytest.fixture
def files(tmp_path, sphere_case):
    image, mask = sphere_case
    write_image(image, tmp_path / "img.nii.gz")
    write_image(mask, tmp_path / "mask.nii.gz")
    write_image(image, tmp_path / "img.nii", compress=False)
    return tmp_path


def _ingest(folder, rows, columns=("case_id", "image", "mask", "cohort", "outcome"), **kw):
    pd.DataFrame(rows, columns=list(columns)).to_csv(folder / "manifest.tsv", sep="\t", index=False)
    return ingest(load_manifest(folder / "manifest.tsv", **kw), BINARY, ["A"], ["B"])


def _excluded(qc, case):
    row = qc.set_index("case_id").loc[case]
    assert row["status"] == "excluded"
    return row["reason"]


@pytest.mark.parametrize("name", ["img.nii.gz", "img.nii"])
def test_1_truncated_nifti_is_excluded(files, name):
    data = (files / name).read_bytes()
    (files / f"half_{name}").write_bytes(data[: len(data) // 2])
    qc, scans = _ingest(files, [*GOOD, ("bad", f"half_{name}", "mask.nii.gz", "B", 1)])
    reason = _excluded(qc, "bad")
    assert f"half_{name}" in reason and "truncated" in reason and "re-export" in reason, reason
    assert list(scans["case_id"]) == ["g1", "g2", "g3", "g4"]


def test_2_nan_voxel_in_nifti_is_excluded(files, sphere_case):
    arr = sitk.GetArrayFromImage(sphere_case[0])
    arr[20, 20, 20] = np.nan
    sitk.WriteImage(make_image(arr), str(files / "nan.nii.gz"))  # write_image refuses NaN voxels
    qc, scans = _ingest(files, [*GOOD, ("bad", "nan.nii.gz", "mask.nii.gz", "B", 1)])
    reason = _excluded(qc, "bad")
    assert "nan.nii.gz" in reason and "1 NaN and 0 infinite voxels" in reason and "fix the export" in reason
    assert len(scans) == 4


def test_3_repeat_label_outside_the_design_is_refused(files):
    cols = ("case_id", "image", "mask", "cohort", "outcome", "repeat")
    rows = [(c, i, m, k, o, "scan1") for c, i, m, k, o in GOOD] + [("g1", "img.nii.gz", "mask.nii.gz", "A", 1, "scan2"),
                                                                     ("g2", "img.nii.gz", "mask.nii.gz", "A", 0, "scan2")]
    qc, _ = _ingest(files, rows, cols)  # the design: scan1, scan2
    assert (qc["status"] == "ok").all()
    with pytest.raises(ManifestError, match=r"case\(s\) \['g3'\] have repeat label\(s\) \['scan3'\] .*outside the "
                                            r"repeat design \['scan1', 'scan2'\].*design's labels"):
        _ingest(files, [*rows, ("g3", "img.nii.gz", "mask.nii.gz", "B", 1, "scan3")], cols)


def test_4_dicom_folder_with_links_outside_the_data_root_is_refused(files, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside") / "secret.dcm"
    outside.write_bytes(b"x")
    (files / "series").mkdir()
    (files / "series" / "a.dcm").write_bytes(b"x")
    os.symlink(outside, files / "series" / "b.dcm")
    with pytest.raises(ManifestError, match=r"case bad: image folder series holds 'b.dcm', a link to a file outside "
                                            r"the data root .*copy the file into the folder"):
        _ingest(files, [*GOOD, ("bad", "series", "mask.nii.gz", "B", 1)], data_root=files)


@pytest.mark.parametrize("key, near", [("clinicl", "clinical"), ("on_case_eror", "on_case_error"),
                                       ("result", "results")])
def test_5_misspelt_top_level_config_key_is_refused(key, near):
    config = {"cohorts": {"train": ["A"]}, "outcome": BINARY, key: "x"}
    with pytest.raises(ConfigError, match=rf"unknown config key '{key}'; did you mean '{near}'\?"):
        with_defaults(config)
    good = with_defaults({"input": {"features": "t.csv"}, "cohorts": {"train": ["A"]}, "outcome": BINARY})
    check_config(good)
    with pytest.raises(ConfigError, match=rf"'{key}'"):
        check_config({**good, key: "x"})


def _table(tmp_path, change=None, features=None):
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(20, 3)), columns=["f0", "f1", "f2"])
    df.insert(0, "case_id", [f"c{i}" for i in range(20)])
    df.insert(1, "cohort", "A")
    df.insert(2, "outcome", [1, 0] * 10)
    df["sex"] = ["M", "F"] * 10
    if change:
        df = change(df)
    df.to_csv(tmp_path / "t.csv", index=False)
    config = with_defaults({"input": {"features": str(tmp_path / "t.csv")}, "cohorts": {"train": ["A"]},
                            "outcome": BINARY, "features": features})
    return ingest_feature_table(tmp_path / "t.csv", config)


def test_6_text_column_listed_under_features_is_refused(tmp_path):
    with pytest.raises(ManifestError, match=r"line 2 \(case c0\), column 'sex': 'M' is not of type 'number'.*"
                                            r"make the column numeric"):
        _table(tmp_path, features=["f0", "sex"])
    _, feats = _table(tmp_path)  # unlisted, a text column is simply not a feature
    assert list(feats.columns) == ["case_id", "cohort", "outcome", "f0", "f1", "f2"]


def test_7_one_text_cell_in_a_numeric_column_is_refused(tmp_path):
    def text_cell(df):
        df["f1"] = df["f1"].astype(object)
        df.loc[3, "f1"] = "12,5"
        return df
    with pytest.raises(FeatureTableError, match=r"column 'f1' holds numbers and 1 text cell\(s\), e.g. line 5 "
                                                r"\(case c3\): '12,5'; fix the cell"):
        _table(tmp_path, text_cell)


def test_8_infinite_feature_value_is_refused_naming_case_and_column(tmp_path):
    with pytest.raises(FeatureTableError, match=r"column 'f2' has 1 infinite value\(s\), e.g. line 6 \(case c4\); "
                                                r"fix the export"):
        _table(tmp_path, lambda df: df.assign(f2=df["f2"].where(df.index != 4, np.inf)))


def _write_series(folder, uid, description, n=3):
    ctype = locale.setlocale(locale.LC_CTYPE)  # GDCM's writer sets the C locale; later tests read UTF-8 text
    try:
        _write_slices(folder, uid, description, n)
    finally:
        locale.setlocale(locale.LC_CTYPE, ctype)


def _write_slices(folder, uid, description, n):
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        s = sitk.GetImageFromArray(np.full((1, 8, 8), 100 + k, np.int16))
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        for tag, value in {"0020|000e": uid, "0008|103e": description, "0008|0060": "CT",
                           "0020|0032": f"0\\0\\{k}", "0020|0037": "1\\0\\0\\0\\1\\0",
                           "0008|0016": "1.2.840.10008.5.1.4.1.1.2", "0008|0018": f"{uid}.{k}"}.items():
            s.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{uid}_{k}.dcm"))
        writer.Execute(s)


def test_10_qc_reasons_hold_no_series_description_nor_absolute_paths(files):
    _write_series(files / "two", "1.2.3.1", "Doe^Jane head")
    _write_series(files / "two", "1.2.3.2", "other")
    qc, _ = _ingest(files, [*GOOD, ("two", "two", "mask.nii.gz", "B", 1), ("gone", "missing.nii.gz", "mask.nii.gz", "B", 0)])
    two, gone = _excluded(qc, "two"), _excluded(qc, "gone")
    assert "holds 2 DICOM series: 1.2.3.1 (CT, 3 slices); 1.2.3.2 (CT, 3 slices)" in two and "series_uid" in two
    assert "Doe^Jane" not in two and "other" not in two
    assert gone.startswith("missing.nii.gz: file not found")
    assert not qc["reason"].str.contains(str(files)).any()


def test_11_implausible_voxel_is_excluded_at_ingest_and_refused_by_extraction(files, sphere_case):
    arr = sitk.GetArrayFromImage(sphere_case[0])
    arr[20, 20, 20] = 1e30
    write_image(make_image(arr), files / "huge.nii.gz")
    qc, scans = _ingest(files, [*GOOD, ("bad", "huge.nii.gz", "mask.nii.gz", "B", 1)])
    reason = _excluded(qc, "bad")
    assert "huge.nii.gz has 1 voxel(s) of implausible magnitude (e.g. 1e+30" in reason and "fix the export" in reason
    assert len(scans) == 4
    assert check_scan(str(files / "img.nii.gz"), str(files / "mask.nii.gz")) == ""
    with pytest.raises(ValueError, match=r"span \[.*1e\+30\].*bins of width 25.*extraction.resegment"):
        _check_grey_levels(make_image(arr), sphere_case[1], {"binWidth": 25}, 1)
