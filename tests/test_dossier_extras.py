"""The dossier's appendices (checklists, rule graph, run times), privacy, provenance extras and
`acceflow verify`, on the small synthetic results folder of test_report."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from fake_results import FEATURES, make_results

from acceflow.cli import main
from acceflow.report.dossier import CHECKLISTS, build_dossier, load_checklist
from acceflow.report.provenance import benchmark_summary, collect_provenance, defaults_filled
from acceflow.report.rulegraph import layers, parse_dot, rulegraph_svg
from acceflow.report.verify import format_verification, verify
from acceflow.runtime import write_json

DOT = """digraph snakemake_dag {
    graph[bgcolor=white, margin=0];
	0[label = "all", color = "0.00 0.6 0.85", style="rounded"];
	1[label = "dossier", color = "0.10 0.6 0.85", style="rounded"];
	2[label = "train", color = "0.20 0.6 0.85", style="rounded"];
	3[label = "ingest", color = "0.30 0.6 0.85", style="rounded"];
	1 -> 0
	2 -> 1
	3 -> 2
	3 -> 1
}
"""
SECRET = "ZZ_Jane_Doe_1961"  # a clinical / header value that must never reach the dossier


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A results folder with benchmarks, a patient-name column, provenance and the dossier."""
    root = tmp_path_factory.mktemp("extras") / "results"
    root.mkdir()
    config = make_results(root)
    feats = pd.read_csv(root / "features" / "features.tsv", sep="\t")
    feats["patient_name"] = SECRET
    feats.to_csv(root / "features" / "features.tsv", sep="\t", index=False)
    qc = pd.read_csv(root / "ingest" / "qc.tsv", sep="\t", dtype=str, keep_default_na=False)
    qc["PatientName"] = SECRET
    qc.to_csv(root / "ingest" / "qc.tsv", sep="\t", index=False)
    (root / "benchmarks" / "extract").mkdir(parents=True)
    head = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for i, s in enumerate((1.5, 2.5)):
        (root / "benchmarks" / "extract" / f"case{i}.tsv").write_text(head + f"{s}\t0:00:0{i}\t100.5\t1\t1\t1\t0\t0\t0\t1\n")
    (root / "benchmarks" / "train.tsv").write_text(head + "7.25\t0:00:07\t300\t1\t1\t1\t0\t0\t0\t5\n")
    inp = root.parent / "table.tsv"
    inp.write_text("case_id\tx\nA\t1\n")
    cfgfile = root.parent / "study.yaml"
    cfgfile.write_text("seed: 42\ncohorts: {train: [site_A]}\n")
    outputs = [root / "features" / "features.tsv", root / "analytical" / "icc.tsv"]
    prov = collect_provenance(config, [inp], outputs, results_dir=root,
                              run={"workdir": str(root.parent), "config_files": [str(cfgfile)],
                                   "config_overrides": {}, "rulegraph_dot": DOT,
                                   "jobs_per_rule": {"all": 1, "dossier": 1, "train": 1, "ingest": 1}})
    svg = rulegraph_svg(DOT, job_counts=prov["rulegraph"]["jobs_per_rule"])
    html_path, summary_path = root / "report" / "dossier.html", root / "report" / "summary.json"
    summary = build_dossier(root, config, ["train", "site_B"], html_path, summary_path, provenance=prov,
                            rulegraph_svg=svg)
    write_json(prov, root / "report" / "provenance.json")
    return {"root": root, "input": inp, "prov": prov, "summary": summary,
            "html": html_path.read_text(encoding="utf-8")}


# ---------------------------------------------------------------------------------- checklists


def _main_numbers(ids):
    return sorted({int(re.match(r"\d+", i).group()) for i in ids})


def test_tripod_ai_has_its_27_items_with_subitems():
    cl = load_checklist("tripod-ai")
    ids = [str(i["id"]) for i in cl["items"]]
    assert _main_numbers(ids) == list(range(1, 28)) and len(ids) == len(set(ids))
    for sub in ("3a", "3b", "3c", "12a", "12g", "18a", "18f", "23a", "23b", "27c"):
        assert sub in ids
    assert "BMJ 2024" in cl["reference"]


def test_clear_has_its_58_items():
    cl = load_checklist("clear")
    assert [str(i["id"]) for i in cl["items"]] == [str(n) for n in range(1, 59)]
    assert "Insights Imaging 2023" in cl["reference"]


def test_checklist_links_point_at_dossier_anchors_or_contract_files(run):
    html = run["html"]
    anchors = set(re.findall(r'id="([^"]+)"', html))
    appendix = html[html.index('id="checklists"'):]
    internal = re.findall(r'href="#([^"]+)"', appendix)
    files = re.findall(r'href="\.\./([^"]+)"', appendix)
    assert internal and files
    assert set(internal) <= anchors, set(internal) - anchors
    for f in files:
        assert (run["root"] / f).is_file(), f
    for key in CHECKLISTS:
        for item in load_checklist(key)["items"]:
            assert item["text"] and item["section"]


def test_dossier_has_every_section_and_the_checklists(run):
    html = run["html"]
    for anchor in ("study", "exclusions", "analytical", "clinical", "model", "discrimination", "utility",
                   "calibration", "decision-curve", "limitations", "appendix", "rulegraph", "runtimes",
                   "versions", "config", "checklists", "tripod-ai", "clear"):
        assert f'id="{anchor}"' in html, anchor
    assert "authors to complete" in html and 'href="#discrimination"' in html
    assert html.count("<figure>") == html.count("<figcaption>") >= 5  # every figure has a caption


# ------------------------------------------------------------------------------ appendix, limits


def test_rule_graph_is_embedded_as_svg(run):
    assert "data:image/svg+xml;base64," in run["html"]
    assert "Rule graph of this run" in run["html"]


def test_run_times_per_rule_in_provenance_and_appendix(run):
    bench = run["prov"]["benchmarks"]
    assert bench["extract"] == {"jobs": 2, "total_s": 4.0, "mean_s": 2.0, "max_s": 2.5, "max_rss_mb": 100.5}
    assert bench["train"]["jobs"] == 1 and bench["train"]["total_s"] == 7.25
    assert 'id="runtimes"' in run["html"] and "7.250" in run["html"]


def test_unstable_model_features_are_a_limitation(run):
    # FEATURES[0] and FEATURES[4] have non-zero coefficients and ICC CIs below the threshold
    assert run["summary"]["unstable_model_features"] == sorted([FEATURES[0], FEATURES[4]])
    lim = " ".join(run["summary"]["limitations"])
    assert "2 feature(s) used by the model are not stable" in lim and FEATURES[0] in lim


def test_ibsi_mismatch_is_a_limitation(tmp_path):
    config = make_results(tmp_path)
    pd.DataFrame({"feature": ["original_glcm_Contrast", "original_firstorder_Mean"], "reference": [1.0, 2.0],
                  "value": [1.5, 2.0], "match": [False, True]}).to_csv(tmp_path / "analytical" / "ibsi.tsv",
                                                                      sep="\t", index=False)
    s = build_dossier(tmp_path, config, ["train", "site_B"], tmp_path / "d.html", tmp_path / "s.json")
    assert s["ibsi_mismatches"] == ["original_glcm_Contrast"]
    assert any("IBSI conformance: 1 feature(s)" in x for x in s["limitations"])


def _ibsi_rows(configuration, feature, status, known=False, family="Statistics", deviation=""):
    return {"configuration": configuration, "reference_configuration": "C" if configuration == "study" else configuration,
            "ibsi_tag": "t", "ibsi_family": family, "ibsi_feature": "f", "feature": feature, "consensus": "",
            "reference": 1.0, "tolerance": 0.1, "value": 1.0 if status == "match" else float("nan") if
            status == "not computed" else 9.0, "difference": 0.0, "match": status, "known_deviation": known,
            "deviation": deviation}


def test_ibsi_table_of_the_check_is_read_by_status_and_deviation(tmp_path):
    """match / mismatch / not computed: unexplained mismatches, documented deviations apart, study rows out."""
    config = make_results(tmp_path)
    kurt = "pyradiomics Kurtosis is not excess kurtosis"
    rows = [_ibsi_rows("A", "original_firstorder_Mean", "match"),
            _ibsi_rows("A", "original_firstorder_Kurtosis", "mismatch", True, deviation=kurt),
            _ibsi_rows("A", "original_glcm_Contrast", "mismatch", False),
            _ibsi_rows("A", "", "not computed", deviation="not implemented in pyradiomics"),
            _ibsi_rows("A", "acceflow_preprocessing_x", "match", family="Diagnostics-initial image"),
            _ibsi_rows("study", "original_glszm_ZoneEntropy", "mismatch", False)]
    pd.DataFrame(rows).to_csv(tmp_path / "analytical" / "ibsi.tsv", sep="\t", index=False)
    s = build_dossier(tmp_path, config, ["train", "site_B"], tmp_path / "d.html", tmp_path / "s.json")
    assert s["ibsi_checked"] and s["ibsi_not_checked"] is None
    assert s["ibsi_mismatches"] == ["original_glcm_Contrast"]  # not the study's, not the explained one
    assert s["ibsi_known_deviations"] == ["original_firstorder_Kurtosis"]
    assert s["ibsi_match_rates"] == {"A": 1 / 3}  # diagnostics and not-computed rows left out
    lim = " ".join(s["limitations"])
    assert "IBSI conformance: 1 feature(s) differ" in lim and "documented pyradiomics deviation" in lim
    html = (tmp_path / "d.html").read_text()
    assert 'id="ibsi"' in html and "IBSI 1 conformance" in html and "Mismatch: unexplained" in html
    assert "study settings (vs C)" in html and kurt in html


def test_ibsi_summary_table_and_not_checked(tmp_path):
    config = make_results(tmp_path)
    reason = "not computed: IBSI data not found at /nowhere; get it from https://github.com/theibsi/data_sets"
    pd.DataFrame([_ibsi_rows("C", "", "not computed", deviation=reason)]).to_csv(
        tmp_path / "analytical" / "ibsi.tsv", sep="\t", index=False)
    pd.DataFrame([{"configuration": "C", "reference_configuration": "C", "n_reference": 0, "n_computed": 0,
                   "n_match": 0, "n_mismatch": 0, "n_mismatch_known_deviation": 0, "match_rate": float("nan"),
                   "note": reason}]).to_csv(tmp_path / "analytical" / "ibsi_summary.tsv", sep="\t", index=False)
    s = build_dossier(tmp_path, config, ["train", "site_B"], tmp_path / "d.html", tmp_path / "s.json")
    assert not s["ibsi_checked"] and s["ibsi_mismatches"] == [] and s["ibsi_not_checked"] == reason
    assert any(x.startswith("IBSI conformance was not checked: not computed: IBSI data not found")
               for x in s["limitations"])
    assert "IBSI conformance was not checked</strong>" in (tmp_path / "d.html").read_text()


def test_no_patient_values_leak_into_the_dossier(run):
    html = run["html"]
    assert SECRET not in html
    assert "site_A_900" in html  # excluded case ids are shown, nothing else about them
    assert "patient_name" not in html and "PatientName" not in html
    assert SECRET not in json.dumps(run["summary"])


# ---------------------------------------------------------------------------------- provenance


def test_provenance_records_run_details(run, tmp_path):
    prov = run["prov"]
    assert set(prov["outputs"]) == {"features/features.tsv", "analytical/icc.tsv"}  # relative to results
    assert list(prov["config_files"].values())[0] and prov["workdir"]
    assert "reproducibility" in prov["defaults_filled"] and "seed" not in prov["defaults_filled"]
    assert prov["rulegraph"]["dot"] == DOT and prov["environment"]["numpy"]
    assert prov["seeds"]["seed"] == 42


def test_defaults_filled_names_the_keys_the_schema_supplied():
    config = {"a": 1, "b": {"c": 2, "d": 3}, "e": {"f": 1}}
    assert defaults_filled(config, {"a": 1, "b": {"c": 5}}) == ["b.d", "e"]


def test_benchmark_summary_of_a_missing_folder_is_empty(tmp_path):
    assert benchmark_summary(tmp_path / "nope") == {}


def test_rulegraph_parse_layers_and_svg():
    nodes, edges = parse_dot(DOT)
    assert nodes == ["all", "dossier", "ingest", "train"]
    assert ("ingest", "train") in edges and ("dossier", "all") in edges
    assert layers(nodes, edges) == [["ingest"], ["train"], ["dossier"], ["all"]]
    svg = rulegraph_svg(DOT, job_counts={"ingest": 3})
    assert svg.startswith("<svg") and svg.count('class="rule"') == 4 and "3 job(s)" in svg
    with pytest.raises(ValueError, match="cycle"):
        layers(["a", "b"], [("a", "b"), ("b", "a")])


# -------------------------------------------------------------------------------------- verify


def test_verify_passes_then_names_the_changed_file(run, capsys):
    root = run["root"]
    v = verify(root)
    assert v.ok and v.exit_code == 0 and len(v.checks) == 4  # 1 input, 1 config file, 2 outputs
    assert main(["verify", str(root)]) == 0
    assert "OK: every file is as recorded" in capsys.readouterr().out
    original = run["input"].read_bytes()
    try:
        run["input"].write_bytes(original + b"B\t2\n")
        v = verify(root)
        assert v.exit_code == 1 and [(c.kind, c.path, c.status) for c in v.changes] == \
            [("input", str(run["input"]), "changed")]
        assert main(["verify", str(root)]) == 1
        out = capsys.readouterr().out
        assert f"CHANGED input: {run['input']}" in out and "FAILED" in out
    finally:
        run["input"].write_bytes(original)
    icc = root / "analytical" / "icc.tsv"
    moved = icc.with_suffix(".bak")
    icc.rename(moved)
    try:
        v = verify(root)
        assert [(c.path, c.status) for c in v.changes] == [("analytical/icc.tsv", "missing")]
        assert "MISSING output: analytical/icc.tsv" in format_verification(v)
    finally:
        moved.rename(icc)
    assert verify(root).ok


def test_verify_without_provenance_exits_2(tmp_path, capsys):
    assert main(["verify", str(tmp_path)]) == 2
    assert "no provenance record" in capsys.readouterr().err


def test_verify_json_output(run, capsys):
    assert main(["verify", str(run["root"]), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["counts"]["unchanged"] == 4


def test_failed_extraction_is_in_the_dossiers_exclusions(tmp_path):
    """A scan that passed ingest but whose feature extraction failed is listed with the excluded
    entries (and counted in summary.json), its reason prefixed by the stage."""
    config = make_results(tmp_path)
    qc = pd.read_csv(tmp_path / "ingest" / "qc.tsv", sep="\t", dtype=str, keep_default_na=False)
    n_ingest = int((qc["status"] == "excluded").sum())
    pd.DataFrame([{"case_id": "late_case", "repeat": "", "modality": "CT", "cohort": "site_B", "scan_id": "late_case",
                   "status": "excluded", "reason": "original_firstorder_Mean is NaN"}]).to_csv(
        tmp_path / "features" / "extraction_qc.tsv", sep="\t", index=False)
    s = build_dossier(tmp_path, config, ["train", "site_B"], tmp_path / "d.html", tmp_path / "s.json")
    html = (tmp_path / "d.html").read_text(encoding="utf-8")
    assert s["n_excluded_entries"] == n_ingest + 1
    assert "late_case" in html and "feature extraction: original_firstorder_Mean is NaN" in html
