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
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from acceflow.report import figures
from acceflow.report.dossier import build_dossier
from acceflow.report.provenance import collect_provenance
from acceflow.runtime import sha256_file, write_json

FEATURES = [f"CT_original_{cls}_{name}" for cls in ("firstorder", "glcm", "shape")
            for name in ("Mean", "Energy", "Entropy", "Contrast")]
EXCLUSION_REASON = "mask is empty <script>alert(1)</script>"


# ------------------------------------------------------------------------------- synthetic results


def _net_benefit(y, p, thresholds):
    n, prev = len(y), y.mean()
    rows = []
    for t in thresholds:
        w = t / (1 - t)
        pos = p >= t
        tp, fp = np.sum(pos & (y == 1)), np.sum(pos & (y == 0))
        nb = tp / n - fp / n * w
        nb_all = prev - (1 - prev) * w
        rows.append({"threshold": t, "net_benefit_model": nb, "net_benefit_all": nb_all,
                     "net_benefit_none": 0.0, "standardized_net_benefit_model": nb / prev,
                     "net_interventions_avoided_per_100": 100 * (nb - nb_all) / w})
    return pd.DataFrame(rows)


def _write_json(obj, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2))


def make_results(root, validation="external", repeats=True):
    """Write a small results folder in the formats of the results contract; return the config."""
    rng = np.random.default_rng(7)
    external = ["site_B"] if validation == "external" else []
    sizes = {"site_A": 120, "site_B": 90} if external else {"site_A": 120}
    frames = []
    for site, n in sizes.items():
        x = rng.normal(size=(n, len(FEATURES)))
        lin = -0.7 + 1.1 * x[:, 0] - 0.8 * x[:, 4]
        y = (rng.uniform(size=n) < 1 / (1 + np.exp(-lin))).astype(int)
        df = pd.DataFrame(x, columns=FEATURES)
        df.insert(0, "case_id", [f"{site}_{i:03d}" for i in range(n)])
        df.insert(1, "cohort", site)
        df.insert(2, "outcome", y)
        df.insert(3, "age", rng.normal(60, 10, n).round(1))
        frames.append(df)
    feats = pd.concat(frames, ignore_index=True)
    (root / "features").mkdir(parents=True)
    feats.to_csv(root / "features" / "features.tsv", sep="\t", index=False)

    qc = pd.DataFrame({"case_id": feats["case_id"], "repeat": "", "modality": "CT",
                       "cohort": feats["cohort"], "status": "ok", "reason": ""})
    qc = pd.concat([qc, pd.DataFrame([
        {"case_id": "site_A_900", "repeat": "", "modality": "CT", "cohort": "site_A", "status": "excluded",
         "reason": EXCLUSION_REASON},
        {"case_id": "site_A_901", "repeat": "1", "modality": "CT", "cohort": "site_A", "status": "excluded",
         "reason": "image unreadable"},
    ])], ignore_index=True)
    (root / "ingest").mkdir()
    qc.to_csv(root / "ingest" / "qc.tsv", sep="\t", index=False)

    icc_cols = ["feature", "icc_form", "icc", "ci_low", "ci_high", "wcv", "n_subjects", "n_repeats",
                "stable", "koo_li_band"]
    rows = []
    if repeats:
        for f, v in zip(FEATURES, np.linspace(0.35, 0.97, len(FEATURES))):
            band = "poor" if v < 0.5 else "moderate" if v < 0.75 else "good" if v <= 0.9 else "excellent"
            rows.append([f, "ICC(2,1)", v, v - 0.12, min(v + 0.05, 1.0), 0.1, 20, 2, v - 0.12 >= 0.75, band])
    (root / "analytical").mkdir()
    pd.DataFrame(rows, columns=icc_cols).to_csv(root / "analytical" / "icc.tsv", sep="\t", index=False)

    train = feats[feats["cohort"] == "site_A"]
    coefs = {f: 0.0 for f in FEATURES}
    coefs.update({FEATURES[0]: 0.912, FEATURES[4]: -0.633})
    card = {
        "features": FEATURES, "learner": "l1_logistic", "hyperparameters": {"C": 0.1},
        "training_cohorts": ["site_A"], "external_cohorts": external, "seed": 42,
        "outcome": {"type": "binary", "column": "outcome", "positive": 1}, "validation": validation,
        "internal_validation": "repeated stratified 5-fold cross-validation, 5 repeats",
        "n_train": len(train), "n_events_train": int(train["outcome"].sum()),
        "coefficients": coefs, "intercept": -0.71, "model_file": "model.joblib", "model_sha256": "ab" * 32,
    }
    _write_json(card, root / "clinical" / "model" / "model_card.json")

    thresholds = np.round(np.arange(0.01, 1.0, 0.01), 2)
    for cohort in ["train", *external]:
        df = feats[feats["cohort"] == ("site_A" if cohort == "train" else cohort)]
        y = df["outcome"].to_numpy()
        lin = -0.7 + 0.9 * df[FEATURES[0]] - 0.6 * df[FEATURES[4]] + rng.normal(0, 0.3, len(df))
        p = (1 / (1 + np.exp(-lin))).to_numpy()
        (root / "clinical" / cohort).mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"case_id": df["case_id"], "outcome": y, "probability": p}).to_csv(
            root / "clinical" / cohort / "predictions.tsv", sep="\t", index=False)
        auc = roc_auc_score(y, p)
        _write_json({"cohort": cohort, "validation": "internal (out-of-fold)" if cohort == "train" else "external",
                     "n": len(y), "n_events": int(y.sum()), "prevalence": float(y.mean()), "auc": auc,
                     "auc_ci_low": auc - 0.071, "auc_ci_high": min(auc + 0.069, 1.0), "auc_ci_method": "delong",
                     "brier": brier_score_loss(y, p), "log_loss": log_loss(y, p)},
                    root / "clinical" / cohort / "metrics.json")
        _write_json({"n": len(y), "n_events": int(y.sum()), "calibration_intercept": 0.05,
                     "calibration_intercept_ci_low": -0.3, "calibration_intercept_ci_high": 0.4,
                     "calibration_slope": 0.62, "calibration_slope_ci_low": 0.41, "calibration_slope_ci_high": 0.85,
                     "ici": 0.041, "e50": 0.03, "e90": 0.08, "emax": 0.15, "brier": brier_score_loss(y, p),
                     "brier_scaled": 0.2, "spiegelhalter_z": 0.5, "spiegelhalter_p": 0.62},
                    root / "utility" / cohort / "calibration.json")
        _net_benefit(y, p, thresholds).to_csv(root / "utility" / cohort / "decision_curve.tsv", sep="\t",
                                              index=False)

    config = {
        "results": str(root), "seed": 42,
        "input": {"images": None, "features": "features.tsv", "repeats": "repeats.tsv" if repeats else None},
        "cohorts": {"column": "cohort", "train": ["site_A"], "external": external},
        "outcome": {"type": "binary", "column": "outcome", "positive": 1},
        "clinical": ["age"], "features": None, "reproducibility": {"threshold": 0.75},
    }
    _write_rule_outputs(root, feats, config, ["train", *external])
    return config


def _write_rule_outputs(root, feats, config, cohorts):
    """What the cohort_summary, useful_thresholds and utility_figures rules write (the dossier reads them)."""
    from acceflow.metrics.decision_curve import useful_threshold_range
    from acceflow.study.cohorts import cohort_table, feature_summary

    cohort_table(feats, config).to_csv(root / "features" / "cohorts.tsv", sep="\t", index=False)
    write_json(feature_summary(feats, config), root / "features" / "feature_summary.json")
    for cohort in cohorts:
        curve = pd.read_csv(root / "utility" / cohort / "decision_curve.tsv", sep="\t")
        low, high = useful_threshold_range(curve)
        write_json({"useful_threshold_low": low, "useful_threshold_high": high},
                   root / "utility" / cohort / "useful_thresholds.json")
        for name in ("calibration", "decision_curve"):
            fig, ax = figures.plt.subplots(figsize=(1, 1))
            ax.plot(curve["threshold"], curve["net_benefit_model"])
            figures.save_figure(fig, root / "utility" / cohort / name)
            figures.plt.close(fig)


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
        {"outcome": [0, 1, 0, 1, 1], "probability": [0.1, 0.8, 0.4, 0.3, 0.9]})}))[:8] == "iVBORw0K"
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
