"""Bad input: each kind is refused (or excluded) with a message that names the case or file and the fix."""
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import yaml
from conftest import REPO, make_image

from acceflow.io.images import write_image
from acceflow.io.manifest import ManifestError, load_manifest
from acceflow.io.qc import CaseError, check_scan, ingest
from acceflow.study.tables import ingest_feature_table
from acceflow.study.training import CohortError, predict_cohort, train

BINARY = {"type": "binary", "column": "outcome", "positive": 1}


@pytest.fixture
def files(tmp_path, sphere_case):
    """Good and bad images and masks of the 40^3 sphere case."""
    image, mask = sphere_case
    write_image(image, tmp_path / "img.nii.gz")
    write_image(mask, tmp_path / "mask.nii.gz")
    (tmp_path / "corrupt.nii.gz").write_bytes(b"\x1f\x8b this is not an image")
    arr = sitk.GetArrayFromImage(image)
    arr[1, 2, 3] = np.inf
    sitk.WriteImage(make_image(arr), str(tmp_path / "inf.mha"))  # write_image refuses non-finite voxels
    labels = sitk.GetArrayFromImage(mask)
    labels[:3, :3, :3] = 2
    write_image(make_image(labels), tmp_path / "multilabel.nii.gz")
    small = sitk.Image(20, 20, 20, sitk.sitkUInt8)  # 2 mm voxels: another grid (a smaller mask on the
    small.SetSpacing((2.0, 2.0, 2.0))               # image's own grid is resampled onto it, test_dicom.py)
    write_image(small, tmp_path / "small_grid.nii.gz")
    return tmp_path


def _manifest(folder, rows, **kw):
    df = pd.DataFrame(rows, columns=["case_id", "image", "mask", "cohort", "outcome"])
    df.to_csv(folder / "manifest.tsv", sep="\t", index=False)
    return load_manifest(folder / "manifest.tsv", **kw)


GOOD = [("g1", "img.nii.gz", "mask.nii.gz", "A", 1), ("g2", "img.nii.gz", "mask.nii.gz", "A", 0),
        ("g3", "img.nii.gz", "mask.nii.gz", "B", 1), ("g4", "img.nii.gz", "mask.nii.gz", "B", 0)]


@pytest.mark.parametrize("image, mask, expected", [
    ("missing.nii.gz", "mask.nii.gz", ["missing.nii.gz", "file not found", "check the manifest's path"]),
    ("corrupt.nii.gz", "mask.nii.gz", ["corrupt.nii.gz", "cannot be read as an image", "re-export"]),
    ("img.nii.gz", "small_grid.nii.gz", ["small_grid.nii.gz", "does not match its image's voxel grid", "size",
                                         "re-export the mask"]),
    ("inf.mha", "mask.nii.gz", ["inf.mha", "0 NaN and 1 infinite voxels", "fix the export"]),
])
def test_unusable_scan_is_excluded_with_file_and_fix(files, image, mask, expected):
    qc, scans = ingest(_manifest(files, [*GOOD, ("bad", image, mask, "B", 1)]), BINARY, ["A"], ["B"])
    row = qc.set_index("case_id").loc["bad"]
    assert row["status"] == "excluded"
    for text in expected:
        assert text in row["reason"], (text, row["reason"])
    assert list(scans["case_id"]) == ["g1", "g2", "g3", "g4"]  # the rest goes on


def test_empty_mask_names_the_labels_present(files, sphere_case):
    empty = sitk.Image(sphere_case[1]) * 0
    write_image(empty, files / "empty.nii.gz")
    reason = check_scan(str(files / "img.nii.gz"), str(files / "empty.nii.gz"), label=1)
    assert "empty.nii.gz" in reason and "no voxel with label 1" in reason and "labels present: [0]" in reason
    assert "set extraction.label" in reason


def test_unexpected_mask_labels_are_accepted_with_a_note(files):
    qc, scans = ingest(_manifest(files, [*GOOD, ("ml", "img.nii.gz", "multilabel.nii.gz", "B", 0)]), BINARY,
                       ["A"], ["B"])
    row = qc.set_index("case_id").loc["ml"]
    assert row["status"] == "ok" and "ml" in set(scans["case_id"])
    assert "multilabel.nii.gz also has label(s) [2]" in row["reason"] and "extraction.label" in row["reason"]
    # a user whose region is label 2 chooses it
    assert check_scan(str(files / "img.nii.gz"), str(files / "multilabel.nii.gz"), label=2) == ""


def test_on_case_error_stop_raises_at_the_first_bad_scan(files):
    manifest = _manifest(files, [*GOOD, ("bad", "corrupt.nii.gz", "mask.nii.gz", "B", 1)])
    with pytest.raises(CaseError, match=r"case bad \(scan bad\): .*corrupt.nii.gz.*on_case_error: exclude"):
        ingest(manifest, BINARY, ["A"], ["B"], on_error="stop")
    qc, _ = ingest(manifest, BINARY, ["A"], ["B"], on_error="exclude")
    assert (qc["status"] == "excluded").sum() == 1


def test_duplicate_case_ids_are_refused(tmp_path):
    (tmp_path / "m.tsv").write_text("case_id\timage\tcohort\nc7\ta.nii\tA\nc7\ta.nii\tA\n")
    with pytest.raises(ManifestError, match=r"m.tsv: duplicate rows for case_id\(s\) \['c7'\].*'repeat'"):
        load_manifest(tmp_path / "m.tsv")
    (tmp_path / "t.csv").write_text("case_id,cohort,outcome,f1\nc7,A,1,1.0\nc7,A,0,2.0\n")
    config = {"input": {"id_column": "case_id"}, "cohorts": {"column": "cohort", "train": ["A"], "external": []},
              "outcome": {**BINARY, "time": None, "event": None}, "clinical": [], "features": None}
    with pytest.raises(ManifestError, match=r"t.csv: duplicate case id\(s\) \['c7'\]"):
        ingest_feature_table(tmp_path / "t.csv", config)


def test_single_class_cohort_is_refused_before_any_image_is_read(files):
    rows = [*GOOD[:2], ("b1", "missing.nii.gz", "mask.nii.gz", "B", 0), ("b2", "img.nii.gz", "mask.nii.gz", "B", 0)]
    with pytest.raises(ManifestError, match=r"cohort B: all 2 cases with a known outcome are negative.*outcome.positive"):
        ingest(_manifest(files, rows), BINARY, ["A"], ["B"])
    with pytest.raises(ManifestError, match=r"cohort A: all 2 cases .* are negative"):
        ingest(_manifest(files, rows), {**BINARY, "positive": "yes"}, ["A"], ["B"])


def test_configured_cohort_absent_from_the_data(files):
    with pytest.raises(ManifestError, match=r"cohort\(s\) \['site_Q'\] named in the config are not in the data"):
        ingest(_manifest(files, GOOD), BINARY, ["A"], ["site_Q"])


def test_paths_escaping_the_data_root_are_refused(files, tmp_path_factory):
    outside = tmp_path_factory.mktemp("elsewhere") / "x.nii.gz"
    for path in ("../../etc/passwd", str(outside)):
        rows = [("esc", path, "mask.nii.gz", "A", 1)]
        with pytest.raises(ManifestError, match=r"case esc: image .* lies outside the data root .*input.data_root"):
            _manifest(files, rows, data_root=files)


def test_survival_time_missing_or_not_positive_is_excluded(files):
    rows = [("s1", 100, 1), ("s2", 0, 1), ("s3", -5, 0), ("s4", None, 1), ("s5", 30, 7), ("s6", 200, 0)]
    df = pd.DataFrame([(c, "img.nii.gz", "mask.nii.gz", "A", t, e) for c, t, e in rows],
                      columns=["case_id", "image", "mask", "cohort", "days", "dead"])
    df.to_csv(files / "surv.tsv", sep="\t", index=False)
    qc, scans = ingest(load_manifest(files / "surv.tsv"), {"type": "survival", "time": "days", "event": "dead"},
                       ["A"], [], time_to_event=True)
    reason = dict(zip(qc["case_id"], qc["reason"]))
    assert list(scans["case_id"]) == ["s1", "s6"]
    assert "survival time 0 is not positive" in reason["s2"] and "survival time -5 is not positive" in reason["s3"]
    assert "survival time missing" in reason["s4"] and "not 0 or 1" in reason["s5"]


def _table(n_pos, n_neg, p=5, seed=0):
    rng = np.random.default_rng(seed)
    n = n_pos + n_neg
    df = pd.DataFrame(rng.normal(size=(n, p)), columns=[f"f{i}" for i in range(p)])
    df.insert(0, "case_id", [f"c{i}" for i in range(n)])
    df.insert(1, "cohort", "A")
    df.insert(2, "y", [1] * n_pos + [0] * n_neg)
    return df


CONFIG = {"seed": 1, "features": None, "clinical": [], "cohorts": {"train": ["A"], "external": []},
          "outcome": {"type": "binary", "column": "y", "positive": 1},
          "model": {"learner": "l1_logistic", "Cs": [0.1, 1.0], "inner_folds": 3, "scoring": "roc_auc",
                    "include_clinical": False, "min_events": 10},
          "validation": {"cv_folds": 3, "cv_repeats": 1}, "reproducibility": {"filter_model_features": True}}


def test_too_few_events_for_the_model_is_refused():
    with pytest.raises(CohortError, match=r"cohort A: 8 events .*8 positive / 40 negative.* 5 candidate features"
                                          r".*model.min_events = 10"):
        train(_table(8, 40), CONFIG)
    _, card, _, _ = train(_table(12, 40), CONFIG)  # enough events: trains, and the card reports EPV
    assert card["min_events"] == 10 and card["events_per_candidate_feature"] == pytest.approx(12 / 5)
    low = {**CONFIG, "model": {**CONFIG["model"], "min_events": 5}}
    train(_table(8, 40), low)  # lowered knowingly


def test_single_class_external_cohort_is_refused_by_name():
    table = pd.concat([_table(15, 30), _table(0, 10, seed=1).assign(cohort="B")], ignore_index=True)
    table["case_id"] = [f"c{i}" for i in range(len(table))]
    model, card, _, _ = train(table, {**CONFIG, "cohorts": {"train": ["A"], "external": ["B"]}})
    with pytest.raises(CohortError, match=r"cohort B: 0 positive and 10 negative cases.*at least 2 of each.*cohorts.external"):
        predict_cohort(model, card, table, "B")


def test_config_value_of_the_wrong_type_names_the_key(tmp_path):
    config = yaml.safe_load((REPO / "config/studies/picai.yaml").read_text())
    config["validation"] = {"cv_folds": "five"}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
                           str(tmp_path), "--cores", "1", "--configfile", str(tmp_path / "bad.yaml"), "--dry-run"],
                          capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "'five' is not of type 'integer'" in log and "cv_folds" in log, log[-3000:]


def test_write_image_refuses_nonfinite_and_pipeline_reader_names_the_fix(tmp_path, sphere_case):
    """The DAG never writes NaN voxels (SimpleITK reads them back as 0), which is what lets the
    extraction read its own files without the nibabel pass; a missing own file says to re-run."""
    from acceflow.io.images import ImageError, read_pipeline_image

    image, _ = sphere_case
    arr = sitk.GetArrayFromImage(image).astype(np.float32)
    arr[1, 2, 3] = np.nan
    with pytest.raises(ImageError, match="1 NaN and 0 infinite voxels"):
        write_image(make_image(arr), tmp_path / "nan.nii.gz")
    assert not list(tmp_path.iterdir())  # nothing written, not even a temporary file
    write_image(image, tmp_path / "ok.nii.gz")
    back = read_pipeline_image(tmp_path / "ok.nii.gz")
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
    with pytest.raises(ImageError, match="re-run snakemake"):
        read_pipeline_image(tmp_path / "missing.nii.gz")
