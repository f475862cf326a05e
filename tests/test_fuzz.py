"""Issue 16, part 4: a fuzz pass over the library's input entry points.

Random malformed image manifests (with tiny generated images, good and damaged), feature tables
and configs go through the library's entry points (load_manifest + ingest, ingest_feature_table,
with_defaults + check_config); every input must either be accepted or refused with one of the
project's own error classes and a message, never a bare traceback (KeyError, TypeError, ...).
Reproducible: hypothesis runs derandomized, with no deadline. The counts of inputs tried are
printed (pytest -s) at the end of the module.
"""
import collections
import string

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acceflow.io.images import ImageError, write_image
from acceflow.io.manifest import ManifestError, load_manifest
from acceflow.io.qc import CaseError, ingest
from acceflow.study.settings import ConfigError, check_config, load_schema, with_defaults
from acceflow.study.tables import FeatureTableError, ingest_feature_table
from acceflow.study.training import CohortError

PROJECT_ERRORS = (ManifestError, ImageError, CaseError, FeatureTableError, ConfigError, CohortError)
FUZZ = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
TRIED = collections.Counter()
OUTCOMES = collections.Counter()
MESSAGES = collections.defaultdict(collections.Counter)


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    print(f"\nfuzz pass: inputs tried {dict(TRIED)}, total {sum(TRIED.values())}; outcomes {dict(OUTCOMES)}")
    for kind, counts in MESSAGES.items():
        print(kind, counts.most_common(4))


def _accepts_or_refuses(call, kind):
    TRIED[kind] += 1
    try:
        call()
        OUTCOMES["accepted"] += 1
    except PROJECT_ERRORS as exc:
        OUTCOMES[type(exc).__name__] += 1
        MESSAGES[kind][str(exc).split(":")[-1][:40] if "cohort" in str(exc)[:30] else str(exc)[len(str(exc).split(":")[0]) + 1:][:40]] += 1
        assert str(exc).strip(), f"{type(exc).__name__} without a message"


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Tiny images: good, NaN, 1e30, truncated, not an image, 2D, another grid; masks good, empty, fractional."""
    d = tmp_path_factory.mktemp("fuzz_images")
    z, y, x = np.mgrid[:6, :6, :6]
    inside = ((z - 3) ** 2 + (y - 3) ** 2 + (x - 3) ** 2) <= 4
    arr = (40 + 60 * inside).astype(np.float32)
    write_image(sitk.GetImageFromArray(arr), d / "img.nii.gz")
    write_image(sitk.GetImageFromArray(inside.astype(np.uint8)), d / "mask.nii.gz")
    write_image(sitk.GetImageFromArray(np.zeros_like(inside, np.uint8)), d / "empty.nii.gz")
    write_image(sitk.GetImageFromArray(inside * np.float32(0.5)), d / "prob.nii.gz")
    for name, value in (("nan", np.nan), ("huge", 1e30)):
        bad = arr.copy()
        bad[3, 3, 3] = value
        sitk.WriteImage(sitk.GetImageFromArray(bad), str(d / f"{name}.nii.gz"))  # write_image refuses NaN
    data = (d / "img.nii.gz").read_bytes()
    (d / "half.nii.gz").write_bytes(data[: len(data) // 2])
    (d / "text.nii.gz").write_text("not an image")
    write_image(sitk.GetImageFromArray(arr[0]), d / "flat.nii.gz")
    other = sitk.GetImageFromArray(inside.astype(np.uint8))
    other.SetSpacing((2.0, 2.0, 2.0))
    write_image(other, d / "grid.nii.gz")
    (d / "folder").mkdir()
    return d


PATHS = ["img.nii.gz", "mask.nii.gz", "empty.nii.gz", "prob.nii.gz", "nan.nii.gz", "huge.nii.gz", "half.nii.gz",
         "text.nii.gz", "flat.nii.gz", "grid.nii.gz", "folder", "missing.nii", "../outside.nii.gz", "/etc/passwd", ""]
junk = st.one_of(st.none(), st.integers(-5, 5), st.floats(allow_nan=True, allow_infinity=True),
                 st.text(string.printable, max_size=8), st.sampled_from(["", " ", "NA", "inf", "-1e400", "nan"]))


def _mostly(good, dirty):
    """Values from ``good``; with ``dirty``, one in four is junk."""
    return st.one_of(good, good, good, junk) if dirty else good


@st.composite
def manifests(draw):
    columns = draw(st.lists(st.sampled_from(["mask", "repeat", "modality", "series_uid", "roi", "site", "extra"]),
                            max_size=4, unique=True))
    for required in ("case_id", "image", "cohort", "outcome"):
        if draw(st.floats(0, 1)) < 0.95 and required not in columns:
            columns.append(required)
    dirty = draw(st.floats(0, 1)) < 0.3  # a third of the manifests get junk cells, the rest only odd values
    cell = {"case_id": _mostly(st.sampled_from(["c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8"]), dirty),
            "image": _mostly(st.sampled_from(["img.nii.gz"] * 6 + PATHS), dirty),
            "mask": _mostly(st.sampled_from(["mask.nii.gz"] * 6 + PATHS), dirty),
            "cohort": _mostly(st.sampled_from(["A", "B", "C"]), dirty),
            "outcome": _mostly(st.sampled_from([0, 1, 0, 1, "yes", None]), dirty),
            "repeat": _mostly(st.sampled_from(["", "scan1", "scan2", "scan3"]), dirty),
            "modality": _mostly(st.sampled_from(["CT", "CT", "MR", ""]), dirty)}
    n = draw(st.integers(1, 10))
    rows = [{c: draw(cell.get(c, junk)) for c in columns} for _ in range(n)]
    for i, row in enumerate(rows):  # mostly unique ids, so that later checks are reached
        if "case_id" in row and draw(st.floats(0, 1)) < 0.9:
            row["case_id"] = f"c{i // 2 if row.get('repeat') == 'scan2' else i}"
    return pd.DataFrame(rows, columns=columns), draw(st.sampled_from(["\t", ","]))


@FUZZ
@given(table=manifests(), data_root=st.booleans(), stop=st.booleans(),
       cohorts=st.tuples(st.sampled_from([["A"], ["A", "B"], ["Z"]]), st.sampled_from([[], ["B"], ["C"]])),
       mask_needed=st.booleans())
def test_random_manifests_are_accepted_or_refused_clearly(images, table, data_root, stop, cohorts, mask_needed):
    df, sep = table
    path = images / ("m.tsv" if sep == "\t" else "m.csv")
    df.to_csv(path, sep=sep, index=False)
    train, external = cohorts

    def run():
        manifest = load_manifest(path, data_root=images if data_root else None)
        ingest(manifest, {"type": "binary", "column": "outcome", "positive": 1}, train, external,
               need_mask=mask_needed, on_error="stop" if stop else "exclude")

    _accepts_or_refuses(run, "manifests")


@st.composite
def feature_tables(draw):
    n = draw(st.integers(1, 16))
    columns = ["case_id", "cohort", "y"] + [f"f{i}" for i in range(draw(st.integers(0, 4)))]
    columns = [c for c in columns if draw(st.floats(0, 1)) < 0.97]
    numbers = st.one_of(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3), st.floats(allow_nan=True, allow_infinity=True),
                        st.none())
    dirty = draw(st.floats(0, 1)) < 0.3
    cell = {"case_id": _mostly(st.sampled_from([f"c{i}" for i in range(16)]), dirty),
            "cohort": _mostly(st.sampled_from(["A", "A", "B"]), dirty),
            "y": _mostly(st.sampled_from([0, 1, 0, 1, None]), dirty)}
    rows = [{c: draw(cell.get(c, _mostly(numbers, dirty))) for c in columns} for _ in range(n)]
    for i, row in enumerate(rows):  # mostly unique ids, so that later checks are reached
        if "case_id" in row and draw(st.floats(0, 1)) < 0.9:
            row["case_id"] = f"c{i}"
    features = draw(st.one_of(st.none(), st.none(), st.lists(st.sampled_from(["f0", "f1", "f9", "y", "cohort"]), max_size=3,
                                                  unique=True)))
    return pd.DataFrame(rows, columns=columns), features, draw(st.sampled_from(["exclude", "stop"]))


@FUZZ
@given(table=feature_tables(), external=st.sampled_from([[], ["B"], ["Q"]]))
def test_random_feature_tables_are_accepted_or_refused_clearly(tmp_path, table, external):
    df, features, on_error = table
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)

    def run():
        config = with_defaults({"input": {"features": str(path)}, "cohorts": {"train": ["A"], "external": external},
                                "outcome": {"type": "binary", "column": "y", "positive": 1}, "features": features,
                                "on_case_error": on_error})
        check_config(config)
        ingest_feature_table(path, config)

    _accepts_or_refuses(run, "feature tables")


def _config_values():
    schema = load_schema()
    keys = list(schema["properties"]) * 3 + ["clinicl", "on_case_eror", "result", "x"]
    section = st.dictionaries(st.sampled_from(["train", "external", "column", "type", "positive", "time", "event",
                                               "images", "features", "learner", "cv_folds", "thresholds", "enabled",
                                               "primary", "comparators", "label", "source", "zzz"]),
                              st.one_of(junk, st.lists(junk, max_size=3)), max_size=4)
    value = st.one_of(junk, section, section, st.lists(st.sampled_from(["A", "B", "age"]), max_size=3))
    return st.dictionaries(st.sampled_from(keys), value, max_size=3)


@FUZZ
@given(config=_config_values(), base=st.booleans())
def test_random_configs_are_accepted_or_refused_clearly(config, base):
    if base:  # a runnable config with random changes on top
        config = {"input": {"features": "t.csv"}, "cohorts": {"train": ["A"], "external": ["B"]},
                  "outcome": {"type": "binary", "column": "y", "positive": 1}, **config}
    _accepts_or_refuses(lambda: check_config(with_defaults(config)), "configs")
