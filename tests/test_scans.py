"""Scan selection over the scans table (acceflow.study.scans), on small tables."""
import pandas as pd
import pytest

from acceflow.study import scans as sel


@pytest.fixture
def table():
    """Five cases: c1 read twice (two masks of one image), c2 scanned twice (repeat 2 not primary),
    c3 without a mask, c4 external, c5 with MR and PET; as read from ingest/scans.tsv (strings)."""
    rows = [
        ("c1__1", "c1", "A", "c1.nii", "c1_r1.nii", "CT", "True"),
        ("c1__2", "c1", "A", "c1.nii", "c1_r2.nii", "CT", "False"),
        ("c2__1", "c2", "A", "c2a.nii", "c2a_m.nii", "CT", "True"),
        ("c2__2", "c2", "A", "c2b.nii", "c2b_m.nii", "CT", "False"),
        ("c3", "c3", "A", "c3.nii", "", "CT", "True"),
        ("c4", "c4", "B", "c4.nii", "c4_m.nii", "CT", "True"),
        ("c5__MR", "c5", "A", "c5mr.nii", "c5mr_m.nii", "MR", "True"),
        ("c5__PET", "c5", "A", "c5pet.nii", "c5pet_m.nii", "", "True"),
    ]
    return pd.DataFrame(rows, columns=["scan_id", "case_id", "cohort", "image", "mask", "modality",
                                       "primary"]).set_index("scan_id")


def test_training_primary_scans_and_case_limit(table):
    assert sel.training_primary_scans(table, ["A"]) == ["c1__1", "c2__1", "c3", "c5__MR", "c5__PET"]
    assert sel.training_primary_scans(table, ["A"], max_cases=2) == ["c1__1", "c2__1"]
    assert sel.training_primary_scans(table, ["A", "B"], max_cases=0)[-1] == "c5__PET"
    assert sel.training_primary_scans(table, ["Q"]) == []


def test_primary_as_booleans(table):
    assert sel.training_primary_scans(table.assign(primary=table["primary"] == "True"), ["B"]) == ["c4"]


def test_reader_pairs_are_two_masks_of_one_image(table):
    pairs = sel.reader_pairs(table)
    assert list(pairs["scan_id"]) == ["c1__1", "c1__2"]  # c2's repeats are two images
    assert sel.reader_masks(table) == ["c1_r1.nii", "c1_r2.nii"]
    assert sel.reader_masks(table.drop(index="c1__2")) == []


def test_referenced_scans(table):
    assert "c3" not in sel.referenced_scans(table)
    assert sel.referenced_scans(table, primary=True) == ["c1__1", "c2__1", "c4", "c5__MR", "c5__PET"]


def test_segmentation_cases_folds_and_models(table):
    cases = sel.segmentation_cases(table, ["A"], cv_folds=2, seed=1)
    assert list(cases.index) == ["c1__1", "c2__1", "c5__MR", "c5__PET"]
    assert list(cases["seg_modality"]) == ["CT", "CT", "MR", "all"]
    assert set(cases["fold"]) <= {0, 1}
    assert cases.loc["c5__MR", "fold"] == cases.loc["c5__PET", "fold"]  # folds are per case
    assert sel.segmentation_modalities(cases) == ["CT", "MR", "all"]
    assert sel.segmentation_model_names(2) == ["fold0", "fold1", "final"]
    assert sel.training_scans(cases, "CT", "final") == ["c1__1", "c2__1"]
    own = cases.loc["c1__1", "fold"]
    assert "c1__1" not in sel.training_scans(cases, "CT", f"fold{own}")
    assert sel.segmenter_of(table.loc["c1__1"], cases, ["A"], 2) == f"fold{own}"
    assert sel.segmenter_of(table.loc["c4"], cases, ["A"], 2) == "final"  # external: final model
    assert sel.segmenter_of(table.loc["c3"], cases, ["A"], 2) == "final"  # no reference mask


def test_no_cross_validation(table):
    cases = sel.segmentation_cases(table, ["A"], cv_folds=0, seed=1)
    assert set(cases["fold"]) == {sel.NO_FOLD}
    assert sel.segmentation_model_names(0) == ["final"]
    assert sel.segmenter_of(table.loc["c1__1"], cases, ["A"], 0) == "final"


def test_nnunet_batches_are_modality_by_segmenter(table):
    """One inference batch per (modality, fold model) and one per modality for the fold ensemble; every
    scan in exactly one, retests with their case's out-of-fold model."""
    cases = sel.segmentation_cases(table, ["A"], cv_folds=2, seed=1)
    batches = sel.nnunet_batches(table, cases, ["A"], 2)
    f1, f2, f5 = (f"fold{cases.loc[s, 'fold']}" for s in ("c1__1", "c2__1", "c5__MR"))
    assert sorted(s for scans in batches.values() for s in scans) == sorted(table.index)
    assert batches[("CT", sel.ENSEMBLE)] == ["c3", "c4"]  # no reference mask; external
    assert "c1__2" in batches[("CT", f1)] and "c2__2" in batches[("CT", f2)]  # a case's retest: its fold
    assert batches[("MR", f5)] == ["c5__MR"] and batches[("all", f5)] == ["c5__PET"]
    assert set(batches) == {("CT", sel.ENSEMBLE), ("CT", f1), ("CT", f2), ("MR", f5), ("all", f5)}
