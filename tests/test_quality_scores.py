"""METRICS (Kocak et al. 2024) and RQS (Lambin et al. 2017) scored from a run: acceflow.study.quality.

Each test changes one fact of a run (or one ``study:`` answer) and checks that exactly one item changes
and that the score moves by that item's published weight (METRICS) or points (RQS).
"""
from __future__ import annotations

import json

import pytest
from fake_results import make_results

from acceflow.report.dossier import build_dossier
from acceflow.runtime import write_json
from acceflow.study.quality import (
    AUTHOR,
    load_tool,
    quality_scores,
    score_metrics,
    score_rqs,
)
from acceflow.study.results import Results

#: A run like the Otsu demo: images, Otsu masks, no repeats, L1 logistic model, clinical comparators,
#: two external cohorts, calibration and decision curves everywhere.
BASE = {
    "images": True, "segmentation_source": "otsu", "reproducibility_assessed": False,
    "reproducibility_design": None, "n_stable": None, "stable_filter": False, "harmonisation": "none",
    "feature_reduction": ["L1-penalised learner (l1_logistic)"], "n_events_train": 11, "n_final_features": 12,
    "events_per_final_feature": 11 / 12, "primary": "imaging", "comparators": ["clinical", "combined_early"],
    "deep": False, "model_comparison": True, "clinical_comparison": True, "combined_model": True, "n_cohorts": 3,
    "external_cohorts": ["site_B", "site_C"], "discrimination_ci": True, "internal_resampling": True,
    "calibration_cohorts": ["train", "site_B", "site_C"], "calibration_oof": True,
    "decision_curve_cohorts": ["train", "site_B", "site_C"], "segmentation_quality": False,
    "segmentation_icc": False, "deep_icc": False, "ibsi_match_rate": None, "n_modalities": 1, "survival": False,
    "internal_validation": "repeated stratified 3-fold cross-validation",
}
WEIGHT = {i["id"]: i["weight"] for i in load_tool("metrics")["items"]}


def _answers(m):
    return {i["id"]: i["answer"] for i in m["items"]}


def _parts(r):
    return {q["id"]: (q["points"], q["answer"]) for it in r["items"] for q in it["parts"]}


def _changed(a: dict, b: dict) -> set:
    return {k for k in a if a[k] != b[k]}


# ----------------------------------------------------------------------------------- the tools' data


def test_metrics_tool_is_the_published_one():
    tool = load_tool("metrics")
    assert [i["id"] for i in tool["items"]] == list(range(1, 31))
    assert len({i["category"] for i in tool["items"]}) == 9
    assert sum(i["weight"] for i in tool["items"]) == pytest.approx(1.0, abs=1e-4)  # Kocak 2024, Fig. 1
    assert WEIGHT[3] == 0.0919 and WEIGHT[27] == 0.0749 and WEIGHT[10] == 0.0112


def test_rqs_tool_range_is_minus_8_to_36():
    tool = load_tool("rqs")
    parts = [p for i in tool["items"] for p in i["parts"]]
    assert len(tool["items"]) == 16
    assert sum(p["points"] for p in parts) == 36 and sum(p.get("penalty", 0) for p in parts) == -8


# ------------------------------------------------------------------------------------------- METRICS


def test_metrics_score_of_the_base_run_by_hand():
    m = score_metrics(BASE, {})
    met = [i for i, a in _answers(m).items() if a == "yes"]
    assert met == [4, 8, 10, 11, 12, 13, 15, 18, 20, 21, 22, 23, 24, 25, 27, 29]
    # 0.5206 of the weights met; item 17 (deep learning) not applicable: 1 - 0.0200 = 0.9800 applicable
    assert m["met_weight"] == pytest.approx(0.5206, abs=1e-9)
    assert m["applicable_weight"] == pytest.approx(0.98, abs=1e-9)
    assert m["score_percent"] == pytest.approx(100 * 0.5206 / 0.98, abs=1e-9)  # 53.12 %
    assert _answers(m)[17] == "not applicable"
    assert {i for i, a in _answers(m).items() if a == AUTHOR} == {1, 2, 3, 5, 6, 7, 19, 28, 30}
    assert m["max_percent_if_author_items_met"] == pytest.approx(
        100 * (0.5206 + sum(WEIGHT[i] for i in (1, 2, 3, 5, 6, 7, 19, 28, 30))) / 0.98)


@pytest.mark.parametrize("change, study, item, met_after", [
    ({"external_cohorts": []}, {}, 27, "no"),
    ({"calibration_cohorts": []}, {}, 22, "no"),
    ({"harmonisation": "combat"}, {}, 19, "yes"),
    ({"stable_filter": True, "reproducibility_assessed": True, "n_stable": 5, "reproducibility_design": "test-retest"},
     {}, 14, "yes"),
    ({"clinical_comparison": False}, {}, 24, AUTHOR),
    ({"discrimination_ci": False}, {}, 21, "no"),
    ({"n_cohorts": 1}, {}, 4, AUTHOR),
    ({"n_modalities": 2}, {}, 23, AUTHOR),
    ({}, {"eligibility_criteria": "consecutive patients 2015-2020, biopsy-proven"}, 2, "yes"),
    ({}, {"open_data": True}, 28, "yes"),
    ({}, {"open_model": False}, 30, "no"),
    ({}, {"internal_test_set": True}, 26, "yes"),
])
def test_metrics_one_item_changes_by_its_weight(change, study, item, met_after):
    before = score_metrics(BASE, {})
    after = score_metrics({**BASE, **change}, study)
    assert _changed(_answers(before), _answers(after)) == {item}
    assert _answers(after)[item] == met_after
    sign = 1 if met_after == "yes" else -1 if _answers(before)[item] == "yes" else 0
    assert after["met_weight"] - before["met_weight"] == pytest.approx(sign * WEIGHT[item], abs=1e-12)
    assert after["applicable_weight"] == pytest.approx(before["applicable_weight"])


def test_metrics_deep_learning_condition_adds_item_17_to_the_denominator():
    before = score_metrics(BASE, {})
    after = score_metrics({**BASE, "deep": True, "comparators": ["clinical", "deep"]}, {})
    assert _changed(_answers(before), _answers(after)) == {17}
    assert _answers(after)[17] == "no"  # no deep_icc
    assert after["applicable_weight"] - before["applicable_weight"] == pytest.approx(WEIGHT[17])
    assert after["met_weight"] == pytest.approx(before["met_weight"])
    robust = score_metrics({**BASE, "deep": True, "deep_icc": True}, {})
    assert robust["met_weight"] - before["met_weight"] == pytest.approx(WEIGHT[17])


def test_metrics_feature_table_without_segmentation_drops_segmentation_items():
    table = {**BASE, "images": False, "segmentation_source": None, "n_modalities": None}
    unknown = score_metrics(table, {})
    assert {c["id"]: c["answer"] for c in unknown["conditions"]}["segmentation"] == "unknown"
    assert {i: _answers(unknown)[i] for i in (8, 10, 11, 12, 13)} == dict.fromkeys((8, 10, 11, 12, 13), AUTHOR)
    none = score_metrics(table, {"segmentation": False, "automated_segmentation": False})
    assert {i: _answers(none)[i] for i in (8, 9, 10)} == dict.fromkeys((8, 9, 10), "not applicable")
    assert unknown["applicable_weight"] - none["applicable_weight"] == pytest.approx(WEIGHT[8] + WEIGHT[9] + WEIGHT[10])


def test_study_answer_never_undoes_what_the_run_shows():
    m = score_metrics(BASE, {"multicenter": False, "non_radiomic_comparison": False})
    assert _answers(m)[4] == "yes" and _answers(m)[24] == "yes"


def test_everything_met_scores_100_percent_and_36():
    best = {**BASE, "stable_filter": True, "reproducibility_assessed": True, "reproducibility_design": "test-retest",
            "n_stable": 5, "harmonisation": "combat", "events_per_final_feature": 12.0, "segmentation_source": "model",
            "segmentation_quality": True, "segmentation_icc": True, "external_cohorts": ["b", "c", "d"]}
    study = {k: True for k in ("checklist_adherence", "eligibility_criteria", "reference_standard",
                               "imaging_translatable", "imaging_protocol", "imaging_reference_interval",
                               "internal_test_set", "open_data", "open_model", "public_protocol", "phantom_study",
                               "biological_correlates", "prospective", "cost_effectiveness", "open_segmentations",
                               "open_features")}
    assert score_metrics(best, study)["score_percent"] == pytest.approx(100.0)
    r = score_rqs(best, study)
    assert r["total"] == 36 and r["percent"] == pytest.approx(100.0) and r["n_author"] == 0


# ----------------------------------------------------------------------------------------------- RQS


def test_rqs_of_the_base_run_by_hand():
    r = score_rqs(BASE, {})
    # +3 reduction, +1 combined model, +1 cut-off, +2 discrimination, +2 calibration, +4 two external
    # cohorts, +2 clinical-only comparator, +2 decision curves, +1 open code = 18
    assert r["total"] == 18 and r["percent"] == pytest.approx(50.0)
    assert r["author_points_open"] == 1 + 1 + 1 + 1 + 1 + 1 + 7 + 1 + 1 + 1 + 1


@pytest.mark.parametrize("change, study, part, delta", [
    ({}, {"prospective": True}, "prospective", 7),
    ({"external_cohorts": []}, {}, "validation", -9),           # +4 -> -5
    ({"external_cohorts": ["site_B"]}, {}, "validation", -1),   # +4 -> +3
    ({"external_cohorts": ["b", "c", "d"]}, {}, "validation", 1),
    ({"feature_reduction": []}, {}, "feature_reduction", -6),    # +3 -> -3
    ({"decision_curve_cohorts": []}, {}, "clinical_utility", -2),
    ({"calibration_oof": False}, {}, "calibration_resampling", -1),
    ({"reproducibility_assessed": True, "reproducibility_design": "test-retest"}, {}, "multiple_time_points", 1),
    ({"reproducibility_assessed": True, "reproducibility_design": "perturbation"}, {}, "multiple_segmentations", 1),
    ({"clinical_comparison": False}, {}, "gold_standard", -2),
    ({}, {"cost_effectiveness": True}, "cost_effectiveness", 1),
    ({}, {"open_data": True}, "open_scans", 1),
])
def test_rqs_one_part_changes_by_its_points(change, study, part, delta):
    before, after = score_rqs(BASE, {}), score_rqs({**BASE, **change}, study)
    assert _changed(_parts(before), _parts(after)) == {part}
    assert after["total"] - before["total"] == delta
    assert -8 <= after["total"] <= 36


def test_rqs_validation_rules():
    no_ext = {**BASE, "external_cohorts": []}
    assert _parts(score_rqs(no_ext, {}))["validation"] == (-5, "no")
    assert _parts(score_rqs(no_ext, {"internal_test_set": True}))["validation"] == (2, "yes")
    assert _parts(score_rqs(BASE, {"validation_same_institution": True}))["validation"] == (2, "yes")
    assert _parts(score_rqs(no_ext, {"previously_published_signature": True}))["validation"] == (4, "yes")


def test_rqs_worst_run_stays_in_range():
    worst = {**BASE, "feature_reduction": [], "external_cohorts": [], "combined_model": False,
             "discrimination_ci": False, "internal_resampling": False, "calibration_cohorts": [],
             "calibration_oof": False, "clinical_comparison": False, "decision_curve_cohorts": []}
    r = score_rqs(worst, {})
    # -3 - 5, plus what every run of the workflow does: +1 cut-off (continuous risk), +1 open code
    assert r["total"] == -6 and r["min_total"] == -8


# ------------------------------------------------------------------------------ from a results folder


def test_gather_facts_from_a_results_folder(tmp_path):
    ext, internal = tmp_path / "ext", tmp_path / "int"
    config_ext, config_int = make_results(ext), make_results(internal, validation="internal")
    s_ext, s_int = quality_scores(ext, config_ext), quality_scores(internal, config_int)
    assert s_ext["facts"]["external_cohorts"] == ["site_B"] and s_int["facts"]["external_cohorts"] == []
    assert s_ext["facts"]["calibration_cohorts"] == ["train", "site_B"]
    assert _answers(s_ext["metrics"])[27] == "yes" and _answers(s_int["metrics"])[27] == "no"
    assert _parts(s_ext["rqs"])["validation"] == (3, "yes") and _parts(s_int["rqs"])["validation"] == (-5, "no")
    assert s_ext["study"]["prospective"] is None  # the schema's default


def test_dossier_renders_the_quality_section(tmp_path):
    config = make_results(tmp_path)
    config["study"] = {"prospective": True, "eligibility_criteria": "adults <b>biopsy</b>"}
    scores = quality_scores(tmp_path, config)
    write_json(scores, tmp_path / Results.QUALITY_SCORES)
    build_dossier(tmp_path, config, ["train", "site_B"], tmp_path / "report" / "dossier.html",
                  tmp_path / "report" / "summary.json")
    html = (tmp_path / "report" / "dossier.html").read_text()
    assert 'id="quality-scores"' in html
    assert f"METRICS {scores['metrics']['score_percent']:.1f}%" in html
    assert f"RQS {scores['rqs']['total']} of 36" in html
    assert "adults &lt;b&gt;biopsy&lt;/b&gt;" in html and "<b>biopsy" not in html
    assert json.loads((tmp_path / Results.QUALITY_SCORES).read_text())["rqs"]["total"] == scores["rqs"]["total"]
    assert _parts(scores["rqs"])["prospective"] == (7, "yes")


@pytest.mark.integration
def test_demo_run_writes_the_quality_scores(demo_run):
    _, _, results = demo_run
    scores = json.loads((results / Results.QUALITY_SCORES).read_text())
    facts = scores["facts"]
    assert facts["reproducibility_assessed"] and facts["reproducibility_design"] == "test-retest"
    assert _parts(scores["rqs"])["multiple_time_points"] == (1, "yes")
    assert scores["metrics"] == score_metrics(facts, scores["study"])
    assert scores["rqs"] == score_rqs(facts, scores["study"])
    html = (results / Results.DOSSIER).read_text()
    assert 'id="quality-scores"' in html and "Appendix C: quality scores" in html
