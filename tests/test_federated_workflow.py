"""Federated training in the DAG (workflow/rules/federated.smk): a site's jobs read only its own table,
rounds are unrolled (a stopped run resumes at the last finished round), the federated model is validated
on the external cohort like any comparator and compared with the central and local-only fits."""
import json
import re

import pandas as pd
import pytest
import yaml
from conftest import REPO, SHARED_DATA, need, run_snakemake, small_statistics, write_config

pytestmark = [pytest.mark.integration, pytest.mark.shared_data]


def _jobs(stderr: str, rule: str) -> int:
    """Jobs of ``rule`` in Snakemake's job-count table of a run (0 when absent)."""
    m = re.search(rf"^{rule}\s+(\d+)\s*$", stderr, re.M)
    return int(m.group(1)) if m else 0


def test_federated_rounds_are_unrolled_site_jobs_read_only_their_table_and_a_stopped_run_resumes(tmp_path):
    """PI-CAI's feature table (no image stages: the test is about the federation): RUMC and PCNN are
    the sites, ZGT the external cohort."""
    config = yaml.safe_load((REPO / "config/studies/picai_federated.yaml").read_text())
    results = tmp_path / "results"
    config["results"] = str(results)
    config["input"]["features"] = str(need(SHARED_DATA / "picai" / "marksheet.csv"))
    config["model"]["comparators"] = ["federated"]
    config["federated"].update(rounds=3, local_epochs=5)
    config["validation"] = {"cv_folds": 3, "cv_repeats": 1}
    config.setdefault("utility", {})["recalibration"] = []
    cfg = write_config(tmp_path / "config.yaml", small_statistics(config))
    fed = results / "clinical" / "federated"
    # a run stopped after round 2 (what a killed run leaves: every finished round's files)
    first = run_snakemake(tmp_path, cfg, "--nolock", str(fed / "server" / "round_2.json"))  # a flag ends --configfile
    assert first.returncode == 0, first.stderr[-3000:]
    assert _jobs(first.stderr, "federated_site_round") == 4 and _jobs(first.stderr, "federated_aggregate") == 2
    targets = [str(fed / "comparison.tsv"), str(results / "clinical/ZGT/comparators/federated/metrics.json")]
    run = run_snakemake(tmp_path, cfg, "--nolock", *targets)
    assert run.returncode == 0, run.stderr[-3000:]
    # resumed: only round 3 ran (one job per site, one aggregation)
    assert _jobs(run.stderr, "federated_site_round") == 2 and _jobs(run.stderr, "federated_aggregate") == 1
    assert _jobs(run.stderr, "federated_moments") == 0
    # each site job's inputs: its own table and the server's files, nothing of another site
    summary = run_snakemake(tmp_path, cfg, "--detailed-summary", *targets)
    rows = pd.read_csv(pd.io.common.StringIO(summary.stdout), sep="\t", dtype=str)
    site_jobs = rows[rows["rule"].isin(["federated_site_round", "federated_moments"])]
    assert len(site_jobs) == 2 * 3 + 2
    for _, job in site_jobs.iterrows():
        site = re.search(r"sites/([^/]+)/", job["output_file"]).group(1)
        inputs = job["input-file(s)"].split(",")
        assert all(f"sites/{site}/" in f or "/server/" in f for f in inputs), (site, inputs)
        assert not any("features.tsv" in f for f in inputs)
    rounds = pd.read_csv(fed / "rounds.tsv", sep="\t")
    assert list(rounds.columns) == ["round", "site", "n", "loss", "update_norm", "drift"]
    assert sorted(rounds["round"].unique()) == [1, 2, 3] and set(rounds["site"]) == {"RUMC", "PCNN"}
    assert rounds.groupby("site")["n"].first().to_dict() == {"RUMC": 800, "PCNN": 350}
    comparison = pd.read_csv(fed / "comparison.tsv", sep="\t")
    assert set(comparison["model"]) == {"federated", "central", "central_same_steps", "local_RUMC", "local_PCNN"}
    assert comparison["auc"].between(0, 1).all() and len(comparison) == 5
    summary = json.loads((fed / "summary.json").read_text())
    assert summary["max_abs_coefficient_difference"] >= 0 and summary["sites"] == ["RUMC", "PCNN"]
    assert summary["objective_gap"] >= 0 and isinstance(summary["converged"], bool)
    metrics = json.loads((results / "clinical/ZGT/comparators/federated/metrics.json").read_text())
    assert metrics["n"] == 350
