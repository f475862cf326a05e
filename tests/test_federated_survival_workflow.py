"""model.primary / model.comparators federated with outcome.type: survival: the federated Cox learner runs
through the unrolled federated rules and gets the survival evidence of any Cox model.

Dry run (no job executed): as a comparator, the site-baseline jobs (one per site) feed federated_train, and
the comparator's survival evidence is planned on the external cohorts. One DAG run on the demo's survival
outcome, the smallest cohort that still has events at both sites (16 + 8 training, 8 external): the model
is the primary one, so no central Cox model is cross-validated."""
import json
import re

import pandas as pd
import pytest
from conftest import demo_config, run_snakemake, small_statistics, write_config

pytestmark = pytest.mark.integration


def _config(results, **model):
    config = demo_config(results, n_train=16, n_external=(8, 8), validation={"cv_folds": 3, "cv_repeats": 1})
    config.update(cohorts={"column": "cohort", "train": ["site_A", "site_B"], "external": ["site_C"]},
                  model=model, federated={"rounds": 3, "local_epochs": 5}, clinical=[],
                  outcome={"type": "survival", "time": "time", "event": "event", "horizons": [90, 180]},
                  utility={"horizon": 180, "thresholds": [0.05, 0.95, 0.01], "recalibration": []})
    # horizons inside the 8 external cases' follow-up (the longest is 239 days)
    return small_statistics(config)


def test_federated_cox_comparator_plan_has_site_baselines_and_the_survival_evidence(tmp_path):
    """A feature-table study (the plan needs no image): two training sites, one external."""
    results = tmp_path / "results"
    table = tmp_path / "features.tsv"
    table.write_text("case_id\tcohort\ttime\tevent\tf1\n" + "".join(
        f"c{i}\t{'ABC'[i % 3]}\t{100 + i}\t{i % 2}\t{i / 7:.3f}\n" for i in range(30)))
    config = {"results": str(results), "seed": 1, "input": {"features": str(table)},
              "cohorts": {"column": "cohort", "train": ["A", "B"], "external": ["C"]},
              "outcome": {"type": "survival", "time": "time", "event": "event", "horizons": [110, 120]},
              "model": {"primary": "imaging", "comparators": ["federated"]},
              "federated": {"rounds": 3, "local_epochs": 5}}
    cfg = write_config(tmp_path / "config.yaml", config)
    run = run_snakemake(tmp_path, cfg, "-n", "--quiet", "rules")
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)\s*$", run.stdout + run.stderr, re.M))
    assert jobs["federated_site_baseline"] == "2" and jobs["federated_site_round"] == "6"
    assert jobs["federated_comparison"] == "1" and jobs["train"] == "1"
    plan = run_snakemake(tmp_path, cfg, "-n", str(results / "clinical/C/comparators/federated/metrics.json"))
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert re.search(r"rule federated_train:\s*\n\s*input:[^\n]*sites/A/baseline.json", plan.stdout + plan.stderr)


def test_federated_cox_primary_writes_survival_predictions_card_and_evidence(tmp_path):
    results = tmp_path / "results"
    cfg = write_config(tmp_path / "config.yaml", _config(results, primary="federated", comparators=[]))
    # calibration at the horizon is left out: 8 external cases make risk groups of one or two cases,
    # whose Kaplan-Meier estimate is undefined at the horizon (the survival calibration's own limit)
    targets = [results / p for p in ("clinical/site_C/metrics.json", "utility/site_C/decision_curve.tsv", "clinical/federated/comparison.tsv",
                                     "clinical/train/predictions.tsv")]
    run = run_snakemake(tmp_path, cfg, *map(str, targets))
    assert run.returncode == 0, run.stderr[-4000:]
    card = json.loads((results / "clinical/model/model_card.json").read_text())
    assert card["model"] == "federated" and card["role"] == "primary" and card["threshold"] is None
    assert card["learner"].startswith("penalised_cox (federated, site-stratified")
    assert card["horizons_days"] == [90, 180] and card["horizon_days"] == 180
    assert len(card["risk_train"]) == card["n_train"]
    # a site's baseline job read its own table and the server's files only
    n = 0
    for site in ("site_A", "site_B"):
        shared = json.loads((results / f"clinical/federated/sites/{site}/baseline.json").read_text())
        table = pd.read_csv(results / f"clinical/federated/sites/{site}/table.tsv", sep="\t")
        assert list(table.columns[:3]) == ["case_id", "time", "event"]
        assert shared["n"] == len(table) and shared["n_events"] == table["event"].sum()
        n += len(table)
        assert shared["risk"] == sorted(shared["risk"]) and sorted(shared["event_table"]["time"]) == sorted(
            table["time"].unique())
    assert n == card["n_train"]
    preds = pd.read_csv(results / "clinical/site_C/predictions.tsv", sep="\t")
    assert list(preds.columns) == ["case_id", "time", "event", "risk", "risk_at_horizon"] and len(preds) == 8
    metrics = json.loads((results / "clinical/site_C/metrics.json").read_text())
    assert 0 <= metrics["c_index"] <= 1 and "hr_per_sd" in metrics
    comparison = pd.read_csv(results / "clinical/federated/comparison.tsv", sep="\t")
    assert list(comparison["model"]) == ["federated", "central", "local_site_A", "local_site_B"]
    fed = comparison.iloc[0]
    assert metrics["c_index"] == pytest.approx(fed["c_index"])  # the same model, the same cases
    assert comparison["c_difference"].iloc[1:].notna().all() and comparison["p_value"].iloc[1:].between(0, 1).all()
