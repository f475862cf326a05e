"""Tests of acceflow.report: dossier, figures and provenance, on a small synthetic results folder."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from fake_results import FEATURES, make_results

from acceflow.report import figures
from acceflow.report.dossier import build_dossier
from acceflow.report.provenance import collect_provenance
from acceflow.runtime import sha256_file, write_json


def _build(root, **kw):
    config = make_results(root, **kw)
    cohorts = ["train", *config["cohorts"]["external"]]
    out_html, out_summary = root / "report" / "dossier.html", root / "report" / "summary.json"
    summary = build_dossier(root, config, cohorts, out_html, out_summary,
                            provenance={"created": "2024-01-01T00:00:00Z", "commit": "deadbeef",
                                        "inputs": {"a": "0" * 64}, "versions": {"numpy": "2.0"},
                                        "platform": {"python": "3.12"}})
    return {"root": root, "config": config, "cohorts": cohorts, "summary": summary,
            "html": out_html.read_text(encoding="utf-8"),
            "summary_file": json.loads(out_summary.read_text(encoding="utf-8"))}


@pytest.fixture(scope="module")
def external(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("external"))


@pytest.fixture(scope="module")
def internal(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("internal"), validation="internal", repeats=False)


# ----------------------------------------------------------------------------------------- dossier


def test_html_has_acce_sections_and_auc_values(external):
    html = external["html"]
    for heading in ("Analytical validity", "Clinical validity", "Clinical utility"):
        assert re.search(rf"<h2[^>]*>\d\. {heading}</h2>", html)
    for cohort in external["cohorts"]:
        m = json.loads((external["root"] / "clinical" / cohort / "metrics.json").read_text())
        assert f"{m['auc']:.3f}" in html
        assert f"{m['auc_ci_low']:.3f}" in html
    assert "Validation: external." in html
    assert "Reproducibility was not assessed" not in html


def test_html_embeds_decodable_pngs(external):
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', external["html"])
    assert len(images) == 6  # ICC, ROC, and the utility_figures rule's calibration and decision curve per cohort
    for b64 in images:
        assert base64.b64decode(b64, validate=True)[:8] == b"\x89PNG\r\n\x1a\n"
    assert external["html"].count("<figcaption>") == 6


def test_html_is_self_contained(external):
    html = external["html"]
    refs = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]+)""", html, flags=re.I)
    assert refs
    assert not [r for r in refs if re.match(r"(https?:)?//", r, flags=re.I)]
    assert "<script" not in html.lower()
    assert "<link" not in html.lower()
    assert "@import" not in html and "url(" not in html


def test_html_escapes_strings_from_data(external):
    assert "<script>alert(1)</script>" not in external["html"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in external["html"]


def test_study_section_counts_from_feature_table(external):
    feats = pd.read_csv(external["root"] / "features" / "features.tsv", sep="\t")
    n_b, ev_b = (feats["cohort"] == "site_B").sum(), feats.loc[feats["cohort"] == "site_B", "outcome"].sum()
    assert f"<td>site_B</td><td>external</td><td>{n_b}</td><td>{ev_b}</td>" in external["html"]
    assert "image unreadable" in external["html"]


def test_summary_headlines_equal_metric_files(external):
    summary, on_disk = external["summary"], external["summary_file"]
    assert summary == on_disk
    assert summary["validation"] == "external"
    assert summary["n_features"] == len(FEATURES)
    assert summary["n_features_icc"] == len(FEATURES)
    icc = pd.read_csv(external["root"] / "analytical" / "icc.tsv", sep="\t")
    assert summary["n_stable_features"] == int(icc["stable"].sum()) > 0
    for cohort in external["cohorts"]:
        m = json.loads((external["root"] / "clinical" / cohort / "metrics.json").read_text())
        cal = json.loads((external["root"] / "utility" / cohort / "calibration.json").read_text())
        c = summary["cohorts"][cohort]
        for k in ("n", "n_events", "auc", "auc_ci_low", "auc_ci_high", "brier"):
            assert c[k] == m[k], k
        for k in ("calibration_intercept", "calibration_slope", "calibration_slope_ci_low", "ici"):
            assert c[k] == cal[k], k
        curve = pd.read_csv(external["root"] / "utility" / cohort / "decision_curve.tsv", sep="\t")
        lo, hi = c["net_benefit_threshold_range"]
        assert lo < hi
        inside = curve[(curve["threshold"] >= lo) & (curve["threshold"] <= hi)]
        assert (inside["net_benefit_model"] > inside["net_benefit_all"].clip(lower=0)).all()
        assert f"{lo:.3f} – {hi:.3f}" in external["html"]


def test_limitations_detected(external):
    lim = " ".join(external["summary"]["limitations"])
    assert "Events per variable" in lim  # ~40 events / 12 features
    assert "External cohort site_B" in lim  # fewer than 100 events
    assert "calibration slope 0.620" in lim  # CI [0.41, 0.85] excludes 1
    assert "Reproducibility not assessed" not in lim
    assert "Events per variable" in external["html"]


def test_internal_validation_wording(internal):
    html = internal["html"]
    assert internal["summary"]["validation"] == "internal"
    assert "internal validation only" in html.lower()
    assert "out-of-fold" in html
    assert list(internal["summary"]["cohorts"]) == ["train"]
    assert "Internal validation only" in " ".join(internal["summary"]["limitations"])


def test_zero_row_icc_is_not_assessed(internal):
    assert pd.read_csv(internal["root"] / "analytical" / "icc.tsv", sep="\t").empty
    html = internal["html"]
    assert "Reproducibility was not assessed" in html
    assert "no repeated measurements" in html
    assert internal["summary"]["reproducibility_assessed"] is False
    assert internal["summary"]["n_stable_features"] is None
    assert any("Reproducibility not assessed" in x for x in internal["summary"]["limitations"])
    assert len(re.findall(r"data:image/png;base64,", html)) == 3  # no ICC figure


# ----------------------------------------------------------------------------------------- figures


def test_figures_are_deterministic(tmp_path):
    rng = np.random.default_rng(1)
    names = [f"MR_wavelet-LLH_{c}_f{i}" for c in ("glcm", "glszm", "firstorder") for i in range(8)]
    v = rng.uniform(0.2, 1.0, len(names))
    icc = pd.DataFrame({"feature": names, "icc_form": "ICC(3,1)", "icc": v, "ci_low": v - 0.1,
                        "ci_high": np.minimum(v + 0.05, 1),
                        "koo_li_band": np.where(v < 0.5, "poor", np.where(v < 0.75, "moderate", "good"))})
    paths = figures.save_figure(figures.icc_figure(icc), tmp_path / "a")
    fig = figures.icc_figure(icc)  # the same data drawn again gives the same bytes
    figures.save_figure(fig, tmp_path / "b")
    assert [p.suffix for p in paths] == [".png", ".svg"]
    for ext in ("png", "svg"):
        assert (tmp_path / f"a.{ext}").read_bytes() == (tmp_path / f"b.{ext}").read_bytes()
    assert b"<dc:date>" not in (tmp_path / "a.svg").read_bytes()
    assert figures.figure_to_base64_png(figures.roc_figure({"x": pd.DataFrame(
        {"fpr": [0, 0, 0.5, 0.5, 1], "tpr": [0, 0.67, 0.67, 1, 1]})}, {"x": {"auc": 0.83, "n": 5}}))[:8] == "iVBORw0K"
    figures.plt.close("all")
    figures.plt.close(figures.icc_figure(icc, max_detailed=10))  # many features: strip plot per group


# -------------------------------------------------------------------------------------- provenance


def test_sha256_file_matches_hashlib(tmp_path):
    path = tmp_path / "blob.bin"
    data = np.random.default_rng(0).bytes(3_000_000)
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_write_json_round_trip_nan_as_null(tmp_path):
    obj = {"b": float("nan"), "a": [1.5, np.float64("inf"), np.int64(3)], "c": {"z": None, "y": True}}
    path = write_json(obj, tmp_path / "sub" / "x.json")
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": [1.5, None, 3], "b": None, "c": {"y": True, "z": None}}
    assert text.index('"a"') < text.index('"b"')  # sorted keys
    assert not [p for p in path.parent.iterdir() if p.name != "x.json"]  # no temp file left


def test_collect_provenance(tmp_path):
    inp = tmp_path / "in.tsv"
    inp.write_text("a\tb\n1\t2\n")
    config = {"seed": 42, "model": {"cv_seed": 7}, "results": str(tmp_path)}
    first = collect_provenance(config, [inp], [tmp_path / "missing.json"])
    second = collect_provenance(config, [inp], [tmp_path / "missing.json"])
    assert {"created", "config", "seeds", "inputs", "outputs", "versions", "commit", "platform"} <= set(first)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first["created"])
    assert first["inputs"] == {str(inp): hashlib.sha256(inp.read_bytes()).hexdigest()}
    assert first["outputs"] == {str(tmp_path / "missing.json"): None}
    assert first["seeds"] == {"seed": 42, "model.cv_seed": 7}
    assert first["config"] == config
    assert first["versions"]["numpy"] == np.__version__
    assert first["versions"]["pandas"] == pd.__version__
    assert set(first["versions"]) >= {"snakemake", "scikit-learn", "SimpleITK", "scikit-misc", "torch"}
    assert {"python", "os", "cpu", "cpu_count", "memory_gib", "gpus"} <= set(first["platform"])
    first.pop("created"), second.pop("created")
    assert first == second
    assert json.loads(write_json(first, tmp_path / "p.json").read_text()) == json.loads(json.dumps(first))
    assert not math.isnan(first["platform"]["cpu_count"])


def test_segmentation_section_shows_each_models_planned_patch_and_spacing(tmp_path):
    """The MONAI models' table reads the plan each card records (issue 20): the planned patch and target
    spacing, or, for a card written before planning existed, the configured patch and 'as given'."""
    from acceflow.report.segmentation_section import segmentation_section
    from acceflow.report.view import ResultsView
    from acceflow.study.results import Results, fill

    config = make_results(tmp_path, segmentation="model")
    cards = {"fold0": {"settings": {"network": "dynunet", "patch_size": "auto"},
                       "plan": {"patch_size": [40, 56, 48], "target_spacing": [1.5, 1.5, 3.4]}},
             "fold1": {"settings": {"network": "unet", "patch_size": [32, 32, 32]}}}
    for fold, card in cards.items():
        path = tmp_path / fill(Results.SEGMENTER_CARD, modality="CT", fold=fold)
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"modality": "CT", "fold": fold, **card}))
    html = str(segmentation_section(ResultsView(tmp_path, config, ["train"])))
    assert "Patch (voxels, z y x)" in html and "[40, 56, 48]" in html and "[1.5, 1.5, 3.4]" in html
    assert "[32, 32, 32]" in html and "as given" in html
