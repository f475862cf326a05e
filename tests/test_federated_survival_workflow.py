"""model.primary / model.comparators federated with outcome.type: survival: the federated Cox learner runs
through the unrolled federated rules and gets the survival evidence of any Cox model.

Dry run (no job executed): as a comparator, the site-baseline jobs (one per site) feed federated_train, and
the comparator's survival evidence is planned on the external cohorts. One DAG run on a synthetic feature table
of three sites with a known hazard (seconds, no image): the model is the primary one, so no central Cox
model is cross-validated; the comparison still fits the central and local-only models."""
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_snakemake, small_statistics, write_config

pytestmark = pytest.mark.integration


def survival_table(path: Path, n_per_site: int = 40, seed: int = 7) -> Path:
    """A feature table of three sites (``site_A``, ``site_B`` training, ``site_C`` external) whose hazard
    rises with ``f1`` and falls with ``f2`` (log-HR 0.9 and -0.6 per unit; exponential times, median
    ~200 days at f = 0; uniform censoring 60-500 days); ``f3``-``f5`` are noise, ``site_B`` has a
    shift of +0.5 in every feature (a scanner effect)."""
    rng = np.random.default_rng(seed)
    rows = []
    for s, site in enumerate(("site_A", "site_B", "site_C")):
        f = rng.normal(size=(n_per_site, 5)) + (0.5 if site == "site_B" else 0.0)
        lp = 0.9 * f[:, 0] - 0.6 * f[:, 1]
        event_time = rng.exponential(200 / np.log(2) * np.exp(-lp))
        censor = rng.uniform(60, 500, n_per_site)
        for i in range(n_per_site):
            rows.append({"case_id": f"{site}_{i:02d}", "cohort": site,
                         "time": round(float(min(event_time[i], censor[i])), 1) + 0.5,
                         "event": int(event_time[i] <= censor[i]), **{f"f{j + 1}": f[i, j] for j in range(5)}})
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    return path


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
    """A feature-table study of 3 x 40 cases (no image: the federated Cox learner and its evidence are
    what is tested; the image path is the same as any primary model's)."""
    results = tmp_path / "results"
    config = small_statistics({
        "results": str(results), "seed": 1, "input": {"features": str(survival_table(tmp_path / "features.tsv"))},
        "cohorts": {"column": "cohort", "train": ["site_A", "site_B"], "external": ["site_C"]},
        "outcome": {"type": "survival", "time": "time", "event": "event", "horizons": [90, 180]},
        "model": {"primary": "federated", "comparators": []}, "federated": {"rounds": 3, "local_epochs": 5},
        "validation": {"cv_folds": 3, "cv_repeats": 1},
        "utility": {"horizon": 180, "thresholds": [0.05, 0.95, 0.01], "recalibration": []}})
    cfg = write_config(tmp_path / "config.yaml", config)
    targets = [results / p for p in ("clinical/site_C/metrics.json", "utility/site_C/decision_curve.tsv",
                                     "utility/site_C/calibration.json", "clinical/federated/comparison.tsv",
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
    assert list(preds.columns) == ["case_id", "time", "event", "risk", "risk_at_horizon"] and len(preds) == 40
    metrics = json.loads((results / "clinical/site_C/metrics.json").read_text())
    assert metrics["c_index"] > 0.6  # log-HR 0.9 and -0.6 per SD: a C well above chance;
    assert metrics["c_index"] <= 1 and "hr_per_sd" in metrics
    comparison = pd.read_csv(results / "clinical/federated/comparison.tsv", sep="\t")
    assert list(comparison["model"]) == ["federated", "central", "local_site_A", "local_site_B"]
    fed = comparison.iloc[0]
    assert metrics["c_index"] == pytest.approx(fed["c_index"])  # the same model, the same cases
    assert comparison["c_difference"].iloc[1:].notna().all() and comparison["p_value"].iloc[1:].between(0, 1).all()
