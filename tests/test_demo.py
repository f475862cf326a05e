"""Tests for the synthetic demo cohort (acceflow.demo)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from scipy.stats import rankdata, spearmanr

from acceflow import demo

TINY = dict(n_train=12, n_external=(6, 6), n_retest=3, n_reader=3, seed=7,
            image_size=(32, 32, 16))


def _read(path):
    return sitk.ReadImage(str(path))


def _arr(path):
    return sitk.GetArrayFromImage(_read(path))


def _dice(a, b):
    a, b = a.astype(bool), b.astype(bool)
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def _auc(y, score):
    y = np.asarray(y).astype(bool)
    ranks = rankdata(score)
    n1, n0 = y.sum(), (~y).sum()
    return (ranks[y].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    paths = demo.make_demo_cohort(out, **TINY)
    return out, paths


def _manifest(out, name="manifest.tsv"):
    return pd.read_csv(out / name, sep="\t")


def test_returned_paths_exist(cohort):
    out, paths = cohort
    for key in ("manifest", "manifest_inter_reader", "truth"):
        assert paths[key].is_file()
    assert len(paths["images"]) == 12 + 6 + 6 + 3
    assert len(paths["masks"]) == 12 + 6 + 6 + 3 + 3
    assert all(p.is_file() for p in paths["images"] + paths["masks"])
    # atomic writes leave no temporary files behind
    leftovers = [p for p in out.rglob("*") if p.name.startswith(".")]
    assert leftovers == []


def test_manifest_structure(cohort):
    out, _ = cohort
    m = _manifest(out)
    assert list(m.columns) == list(demo.MANIFEST_COLUMNS)
    assert (m["modality"] == "CT").all()
    scan1 = m[m["repeat"] == "scan1"]
    scan2 = m[m["repeat"] == "scan2"]
    assert len(scan1) == 24 and scan1["case_id"].is_unique
    assert list(scan1["case_id"]) == [f"demo_{i:04d}" for i in range(1, 25)]
    assert scan1["cohort"].value_counts().to_dict() == {"site_A": 12, "site_B": 6, "site_C": 6}
    assert len(scan2) == 3 and set(scan2["cohort"]) == {"site_A"}
    assert set(m["repeat"]) == {"scan1", "scan2"}
    for row in m.itertuples():
        assert not row.image.startswith("/") and (out / row.image).is_file()
        assert not row.mask.startswith("/") and (out / row.mask).is_file()
        assert row.image == f"images/{row.case_id}_{row.repeat}.nii.gz"
        assert row.mask == f"masks/{row.case_id}_{row.repeat}.nii.gz"
    clinical = ["cohort", "outcome", "time", "event", "age", "sex", "lesion_grade"]
    s1 = scan1.set_index("case_id")
    for row in scan2.itertuples():
        assert s1.loc[row.case_id, clinical].tolist() == [getattr(row, c) for c in clinical]
    assert set(m["outcome"]) <= {0, 1} and set(m["event"]) <= {0, 1}
    assert set(m["sex"]) <= {0, 1} and set(m["lesion_grade"]) <= {1, 2, 3}
    assert (m["time"] > 0).all()


def test_inter_reader_manifest(cohort):
    out, _ = cohort
    r = _manifest(out, "manifest_inter_reader.tsv")
    m = _manifest(out)
    assert list(r.columns) == list(demo.MANIFEST_COLUMNS)
    r1, r2 = r[r["repeat"] == "reader1"], r[r["repeat"] == "reader2"]
    assert len(r1) == 24 and r1["case_id"].is_unique
    assert len(r2) == 3 and set(r2["cohort"]) == {"site_A"}
    assert set(r["repeat"]) == {"reader1", "reader2"}
    s1 = m[m["repeat"] == "scan1"].set_index("case_id")
    assert (r1.set_index("case_id")["mask"] == s1["mask"]).all()
    for row in r2.itertuples():
        assert row.image == s1.loc[row.case_id, "image"]
        assert row.mask == f"masks/{row.case_id}_reader2.nii.gz"


def test_truth_table(cohort):
    out, _ = cohort
    truth = pd.read_csv(out / "truth.tsv", sep="\t")
    assert list(truth.columns) == list(demo.TRUTH_COLUMNS)
    drawn = demo.draw_cases(TINY["n_train"], TINY["n_external"], TINY["seed"])
    assert list(truth["case_id"]) == list(drawn["case_id"])
    assert list(truth["cohort"]) == list(drawn["cohort"])
    for col in demo.TRUTH_COLUMNS[2:]:
        np.testing.assert_allclose(truth[col], drawn[col], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["manifest.tsv", "manifest_inter_reader.tsv"])
def test_geometry_and_masks(cohort, name):
    out, _ = cohort
    for row in _manifest(out, name).itertuples():
        img, msk = _read(out / row.image), _read(out / row.mask)
        assert img.GetSize() == msk.GetSize()
        np.testing.assert_allclose(img.GetSpacing(), msk.GetSpacing())
        np.testing.assert_allclose(img.GetOrigin(), msk.GetOrigin())
        np.testing.assert_allclose(img.GetDirection(), msk.GetDirection())
        assert img.GetPixelID() == sitk.sitkInt16
        assert msk.GetPixelID() == sitk.sitkUInt8
        m = sitk.GetArrayFromImage(msk)
        assert set(np.unique(m)) == {0, 1}
        # the lesion lies inside the image: no mask voxel on the border faces
        for axis in range(3):
            assert not m.take(0, axis=axis).any() and not m.take(-1, axis=axis).any()
        # CT-like values: soft-tissue background, brighter lesion on average
        a = sitk.GetArrayFromImage(img).astype(float)
        assert 20 < np.median(a[m == 0]) < 60


def test_site_spacing(cohort):
    out, _ = cohort
    m = _manifest(out)
    spacings = {}
    for row in m.itertuples():
        img = _read(out / row.image)
        np.testing.assert_allclose(img.GetSpacing(), demo.SITES[row.cohort]["spacing"])
        spacings.setdefault(row.cohort, set()).add(img.GetSpacing())
        fov = np.asarray(img.GetSize()) * np.asarray(img.GetSpacing())
        np.testing.assert_allclose(fov, 32.0, atol=1.5)   # same field of view at every site
    assert all(len(s) == 1 for s in spacings.values())
    assert len({next(iter(s)) for s in spacings.values()}) == 3


def test_retest_pairs(cohort):
    out, _ = cohort
    m = _manifest(out)
    stats = sitk.LabelShapeStatisticsImageFilter()
    for cid in m.loc[m["repeat"] == "scan2", "case_id"]:
        m1, m2 = _read(out / f"masks/{cid}_scan1.nii.gz"), _read(out / f"masks/{cid}_scan2.nii.gz")
        a1, a2 = sitk.GetArrayFromImage(m1), sitk.GetArrayFromImage(m2)
        spacing = np.asarray(m1.GetSpacing())
        # same lesion, moved by less than half a voxel per axis
        assert _dice(a1, a2) > 0.75
        assert abs(int(a1.sum()) - int(a2.sum())) / a1.sum() < 0.15
        stats.Execute(m1)
        c1 = np.asarray(stats.GetCentroid(1))
        stats.Execute(m2)
        c2 = np.asarray(stats.GetCentroid(1))
        assert np.all(np.abs(c2 - c1) <= 0.5 * spacing + 0.35 * spacing)
        # a new noise realisation: the background differs by about sqrt(2) * noise SD
        i1 = _arr(out / f"images/{cid}_scan1.nii.gz").astype(float)
        i2 = _arr(out / f"images/{cid}_scan2.nii.gz").astype(float)
        bg = (a1 == 0) & (a2 == 0)
        diff_sd = np.std((i2 - i1)[bg])
        assert diff_sd > 0.5 * demo.SITES["site_A"]["noise_sd"]


def test_reader2_masks(cohort):
    out, _ = cohort
    r = _manifest(out, "manifest_inter_reader.tsv")
    for cid in r.loc[r["repeat"] == "reader2", "case_id"]:
        m1 = _arr(out / f"masks/{cid}_scan1.nii.gz")
        m2 = _arr(out / f"masks/{cid}_reader2.nii.gz")
        assert m2.any() and not np.array_equal(m1, m2)
        assert _dice(m1, m2) > 0.7
        # every change lies within one in-plane voxel of the first reader's boundary
        m1 = m1.astype(bool)
        padded = np.pad(m1, ((0, 0), (1, 1), (1, 1)))
        shifted = [padded[:, 1 + dy:padded.shape[1] - 1 + dy, 1 + dx:padded.shape[2] - 1 + dx]
                   for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))]
        dilated = m1 | np.logical_or.reduce(shifted)
        eroded = m1 & np.logical_and.reduce(shifted)
        band = dilated & ~eroded
        assert not ((m1 ^ m2.astype(bool)) & ~band).any()


def test_deterministic(cohort, tmp_path):
    out, paths = cohort
    again = demo.make_demo_cohort(tmp_path / "again", **TINY)
    for key in ("manifest", "manifest_inter_reader", "truth"):
        assert again[key].read_bytes() == paths[key].read_bytes()
    for a, b in zip(paths["images"] + paths["masks"], again["images"] + again["masks"]):
        assert a.name == b.name
        np.testing.assert_array_equal(_arr(a), _arr(b))

    other = demo.make_demo_cohort(tmp_path / "other", **{**TINY, "seed": 8})
    assert other["truth"].read_bytes() != paths["truth"].read_bytes()
    assert not np.array_equal(_arr(other["images"][0]), _arr(paths["images"][0]))


def test_cases_do_not_depend_on_cohort_size():
    small = demo.draw_cases(5, (0, 0), seed=3)
    large = demo.draw_cases(10, (4, 4), seed=3)
    cols = ["case_id", "z", "true_probability", "outcome", "time", "event", "age", "sex",
            "lesion_grade", "lesion_radius_mm"]
    pd.testing.assert_frame_equal(small[cols], large[cols].iloc[:5])
    assert list(large["cohort"]) == ["site_A"] * 10 + ["site_B"] * 4 + ["site_C"] * 4


def test_outcome_model_on_many_draws():
    d = demo.draw_cases(2000, (0, 0), seed=11)
    assert 0.27 <= d["outcome"].mean() <= 0.38
    assert abs(_auc(d["outcome"], d["true_probability"]) - 0.8) <= 0.06
    np.testing.assert_allclose(
        d["true_probability"],
        1 / (1 + np.exp(-(demo.OUTCOME_INTERCEPT + demo.OUTCOME_SLOPE * d["z"]))))
    assert spearmanr(d["lesion_radius_mm"], d["z"])[0] > 0.5
    assert spearmanr(d["lesion_contrast_hu"], d["z"])[0] > 0.5
    assert spearmanr(d["texture_sd_hu"], d["z"])[0] > 0.5
    assert spearmanr(d["lesion_irregularity"], d["z"])[0] > 0.5
    assert 0.1 < spearmanr(d["age"], d["z"])[0] < 0.5
    assert abs(spearmanr(d["sex"], d["z"])[0]) < 0.1
    assert 0.3 < spearmanr(d["lesion_grade"], d["z"])[0] < 0.8
    assert d["lesion_radius_mm"].between(5, 12.5).all()
    # survival: positive days, higher risk -> earlier events
    assert (d["time"] >= 1).all() and 0.4 < d["event"].mean() < 0.8
    ev = d[d["event"] == 1]
    assert spearmanr(ev["time"], ev["z"])[0] < -0.2


def test_invalid_arguments(tmp_path):
    with pytest.raises(ValueError):
        demo.make_demo_cohort(tmp_path, n_train=2, n_external=(1, 1), n_retest=3)
    with pytest.raises(ValueError):
        demo.draw_cases(2, (1, 1), seed=-1)
    with pytest.raises(ValueError):
        demo.draw_cases(2, (1, 1, 1))
    with pytest.raises(ValueError):
        demo.make_demo_cohort(tmp_path, n_train=2, n_external=(1, 1), n_retest=1, n_reader=1,
                              image_size=(8, 8, 4))


def test_cli(tmp_path, capsys):
    rc = demo.main([str(tmp_path / "cli"), "--seed", "5", "--n-train", "3", "--n-external",
                    "1", "2", "--n-retest", "1", "--n-reader", "1", "--image-size", "32", "32",
                    "16"])
    assert rc == 0
    m = _manifest(tmp_path / "cli")
    assert len(m) == 3 + 1 + 2 + 1
    assert "manifest" in capsys.readouterr().out
