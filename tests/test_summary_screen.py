"""The dossier's summary screen: one verdict per ACCE tier for each colour, from hand-made results files
(tests/fake_results.py), and the dossier's figures written as files."""

from __future__ import annotations

import base64
import json
import re
import shutil

import pandas as pd
import pytest
from fake_results import make_results

from acceflow.report.dossier import build_dossier
from acceflow.report.summary_section import analytical_verdict, clinical_verdict, utility_verdict
from acceflow.report.view import ResultsView
from acceflow.runtime import write_json
from acceflow.study.stability import stability_summary


@pytest.fixture(scope="module")
def _template(tmp_path_factory):
    root = tmp_path_factory.mktemp("template") / "results"
    return root, make_results(root)


@pytest.fixture()
def results(_template, tmp_path):
    """A fresh copy of a results folder with one external cohort (site_B) and repeats: (root, config)."""
    src, config = _template
    root = tmp_path / "results"
    shutil.copytree(src, root)
    return root, {**config, "results": str(root)}


def _view(root, config, cohorts=("train", "site_B")):
    return ResultsView(root, config, list(cohorts))


def _set(path, **values):
    data = json.loads(path.read_text())
    data.update(values)
    write_json(data, path)


# ------------------------------------------------------------------------------------- analytical


def test_stability_summary_counts_by_hand():
    icc = pd.DataFrame({"feature": ["a", "b", "c", "d"], "icc_form": "ICC(2,1)",
                        "ci_low": [0.80, 0.70, 0.76, 0.90], "stable": [True, False, True, False]})  # d: wCV cap
    s = stability_summary(icc, 0.75)
    assert s == {"n_features": 4, "n_stable": 2, "n_ci_low_at_threshold": 3, "share_stable": 0.5,
                 "threshold": 0.75, "icc_forms": ["ICC(2,1)"]}
    assert stability_summary(icc.iloc[:0], 0.75)["share_stable"] is None
    with pytest.raises(ValueError, match="'stable'"):
        stability_summary(icc.drop(columns="stable"), 0.75)


@pytest.mark.parametrize("share, n_stable, unstable, verdict", [
    (0.6, 6, [], "green"),                 # 60% >= 50% and the model uses only stable features
    (0.5, 5, [], "green"),                 # at the threshold exactly
    (0.6, 6, ["CT_original_glcm_Mean"], "amber"),  # a model feature is not stable
    (2 / 12, 2, [], "amber"),              # some features stable, below 50%
    (0.0, 0, [], "red"),                   # none stable
])
def test_analytical_verdict_colours(results, share, n_stable, unstable, verdict):
    root, config = results
    _set(root / "analytical/icc_summary.json", n_features=10 if share != 2 / 12 else 12, n_stable=n_stable,
         share_stable=share)
    v = analytical_verdict(_view(root, config), {"unstable_model_features": unstable})
    assert v.verdict == verdict, v
    assert v.anchor == "analytical" and "ICC ≥ 0.75" in v.rule and "50%" in v.rule


def test_analytical_verdict_share_threshold_from_config(results):
    root, config = results
    _set(root / "analytical/icc_summary.json", n_features=10, n_stable=6, share_stable=0.6)
    config = {**config, "report": {"min_stable_share": 0.7}}
    v = analytical_verdict(_view(root, config), {"unstable_model_features": []})
    assert v.verdict == "amber" and "70%" in v.rule


def test_analytical_verdict_grey_without_repeats_or_file(tmp_path):
    root = tmp_path / "results"
    config = make_results(root, repeats=False)
    v = analytical_verdict(_view(root, config), {})
    assert v.verdict == "grey" and "No repeated measurements" in v.reason
    (root / "analytical/icc_summary.json").unlink()
    v = analytical_verdict(_view(root, config), {})
    assert v.verdict == "grey" and "icc_summary.json was not found" in v.reason


def test_analytical_verdict_reads_the_rule_output_of_fake_results(results):
    """fake_results: 2 of 12 features stable, and the model's two features are not: amber."""
    root, config = results
    v = analytical_verdict(_view(root, config), {"unstable_model_features": ["x", "y"]})
    assert v.verdict == "amber" and "2 of 12 features stable (16.7%)" in v.headline


# --------------------------------------------------------------------------------------- clinical


def _copy_cohort(root, src, dst):
    for folder in ("clinical", "utility"):
        (root / folder / dst).mkdir(parents=True, exist_ok=True)
        for f in (root / folder / src).glob("*.json"):
            (root / folder / dst / f.name).write_text(f.read_text())


@pytest.mark.parametrize("lows, verdict", [
    ({"site_B": 0.61, "site_C": 0.55}, "green"),
    ({"site_B": 0.61, "site_C": 0.49}, "amber"),
    ({"site_B": 0.50, "site_C": 0.42}, "red"),   # 0.5 itself is not above chance
])
def test_clinical_verdict_colours(results, lows, verdict):
    root, config = results
    _copy_cohort(root, "site_B", "site_C")
    for c, lo in lows.items():
        _set(root / f"clinical/{c}/metrics.json", auc=lo + 0.1, auc_ci_low=lo, auc_ci_high=lo + 0.2)
    _set(root / "clinical/train/metrics.json", auc_ci_low=0.3)  # internal validation is not judged
    v = clinical_verdict(_view(root, config, ("train", "site_B", "site_C")))
    assert v.verdict == verdict, v
    assert "every external cohort" in v.rule and f"{lows['site_B']:.3f}" in v.headline
    if verdict == "amber":
        assert "site_C" in v.reason and "site_B" not in v.reason


def test_clinical_verdict_internal_only_is_at_most_amber(tmp_path):
    root = tmp_path / "results"
    config = make_results(root, validation="internal")
    _set(root / "clinical/train/metrics.json", auc_ci_low=0.7)
    v = clinical_verdict(_view(root, config, ("train",)))
    assert v.verdict == "amber" and "Internal validation only" in v.reason
    _set(root / "clinical/train/metrics.json", auc_ci_low=0.45)
    assert clinical_verdict(_view(root, config, ("train",))).verdict == "red"


def test_clinical_verdict_grey_without_ci(results):
    root, config = results
    data = json.loads((root / "clinical/site_B/metrics.json").read_text())
    del data["auc_ci_low"]
    write_json(data, root / "clinical/site_B/metrics.json")
    v = clinical_verdict(_view(root, config))
    assert v.verdict == "grey" and "site_B" in v.reason


def test_clinical_verdict_survival_reads_harrells_c(results):
    root, config = results
    _set(root / "clinical/model/model_card.json", outcome={"type": "survival", "time": "t", "event": "e"})
    write_json({"n": 90, "n_events": 40, "c_index": 0.68, "c_index_ci_low": 0.58, "c_index_ci_high": 0.77},
               root / "clinical/site_B/metrics.json")
    v = clinical_verdict(_view(root, config))
    assert v.verdict == "green" and "Harrell's C" in v.rule and "0.680 [0.580, 0.770]" in v.headline


# ---------------------------------------------------------------------------------------- utility


@pytest.mark.parametrize("relevant, low, high, verdict", [
    ([0.1, 0.3], 0.05, 0.40, "green"),    # covers the stated range
    ([0.1, 0.3], 0.1, 0.3, "green"),      # exactly
    ([0.1, 0.3], 0.20, 0.40, "amber"),    # part of it
    ([0.1, 0.3], 0.50, 0.60, "red"),      # useful, but outside the stated range
    ([0.1, 0.3], None, None, "red"),      # never useful
    (None, 0.50, 0.60, "green"),          # no stated range: any useful range
    (None, None, None, "red"),
])
def test_utility_verdict_colours(results, relevant, low, high, verdict):
    root, config = results
    write_json({"useful_threshold_low": low, "useful_threshold_high": high},
               root / "utility/site_B/useful_thresholds.json")
    config = {**config, "utility": {"relevant_thresholds": relevant}}
    v = utility_verdict(_view(root, config))
    assert v.verdict == verdict, v
    assert ("0.10–0.30" in v.rule) == (relevant is not None)


def test_utility_verdict_grey_without_decision_curve(results):
    root, config = results
    (root / "utility/site_B/useful_thresholds.json").unlink()
    v = utility_verdict(_view(root, config))
    assert v.verdict == "grey" and "site_B" in v.reason


# ------------------------------------------------------------------------------------ the dossier


def test_summary_screen_comes_first_with_links_words_and_figure_files(results):
    root, config = results
    out_html, out_summary = root / "report/dossier.html", root / "report/summary.json"
    summary = build_dossier(root, config, ["train", "site_B"], out_html, out_summary, provenance={})
    html = out_html.read_text(encoding="utf-8")
    sections = re.findall(r'<h2 id="([^"]+)"', html)
    assert sections[0] == "summary" and sections[1] == "study"
    screen = html[html.index('<h2 id="summary">'):html.index('<h2 id="study">')]
    for anchor in ("analytical", "clinical", "utility"):
        assert f'<a href="#{anchor}">' in screen and f'id="{anchor}"' in html
    # each verdict in words as well as colour, with its rule next to it
    verdicts = summary["verdicts"]
    assert [verdicts[t]["verdict"] for t in ("analytical", "clinical", "utility")] == re.findall(
        r'class="tier (green|amber|red|grey)"', screen)[:3]
    for t in ("analytical", "clinical", "utility"):
        v = verdicts[t]["verdict"]
        assert re.search(rf'class="verdict {v}"><span aria-hidden="true">.</span> {v}: ', screen)
        assert "<" not in verdicts[t]["rule"]  # summary.json holds plain text
    assert "Ethical, legal and social implications" in screen and "authors' to write" in screen
    assert json.loads(out_summary.read_text())["verdicts"] == verdicts
    # every figure drawn is a PNG (the bytes embedded) and an SVG under report/figures/
    assert {"report/figures/roc.png", "report/figures/icc.svg"} <= set(summary["figures"])
    for rel in summary["figures"]:
        assert (root / rel).stat().st_size > 1000
        if rel.endswith(".png"):
            assert base64.b64encode((root / rel).read_bytes()).decode("ascii") in html
    assert "report/figures/roc.svg" in html


def test_pdf_has_a_page_break_before_each_section(results):
    from acceflow.report.browser import find_chromium, print_pdf

    if find_chromium() is None:
        pytest.skip("chromium not installed: the PDF cannot be printed here (CI installs Debian's chromium)")
    root, config = results
    out_html = root / "report/dossier.html"
    build_dossier(root, config, ["train", "site_B"], out_html, root / "report/summary.json", provenance={})
    pdf = print_pdf(out_html, root / "report/dossier.pdf")
    data = pdf.read_bytes()
    n_sections = out_html.read_text(encoding="utf-8").count("<section>")
    assert data.startswith(b"%PDF") and n_sections >= 7
    assert len(re.findall(rb"/Type\s*/Page[^s]", data)) >= n_sections
    assert not list(pdf.parent.glob(".*.tmp.pdf"))
