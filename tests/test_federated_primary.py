"""model.primary: federated — the federated model writes the primary paths of the results contract.

Settings: accepted for binary studies with two or more training sites; refused, with the fix, with
internal–external cross-validation (which refits a centrally trained model) and with one site. DAG
(dry run, no job executed): rule federated_train writes clinical/model/model.skops and its card,
federated_apparent the training predictions, and rule train does not run.
"""
import re

import pytest
import yaml
from conftest import REPO, SHARED_DATA, need, run_snakemake, write_config

from acceflow.study.settings import ConfigError, model_names, with_defaults

BASE = {"input": {"features": "t.csv"}, "cohorts": {"train": ["A", "B"], "external": ["C"]},
        "outcome": {"type": "binary", "column": "y", "positive": 1}, "clinical": ["age"],
        "model": {"primary": "federated", "comparators": ["clinical"]}}


def test_federated_primary_is_accepted_and_its_limits_are_named():
    assert model_names(with_defaults(BASE)) == ("federated", ["clinical"])
    with pytest.raises(ConfigError, match="internal_external: true is not supported.*set validation.internal_external"):
        model_names(with_defaults({**BASE, "validation": {"internal_external": True}}))
    with pytest.raises(ConfigError, match=r"cohorts.train has 1 \(\['A'\]\): name at least two"):
        model_names(with_defaults({**BASE, "cohorts": {"train": ["A"], "external": ["C"]}}))


@pytest.mark.integration
@pytest.mark.shared_data
def test_the_federated_rules_write_the_primary_paths_and_rule_train_does_not_run(tmp_path):
    config = yaml.safe_load((REPO / "config/studies/picai_federated.yaml").read_text())
    results = tmp_path / "results"
    config.update(results=str(results), model={"primary": "federated", "comparators": ["combined_early"]})
    config["input"]["features"] = str(need(SHARED_DATA / "picai" / "marksheet.csv"))
    config["federated"]["rounds"] = 2
    cfg = write_config(tmp_path / "config.yaml", config)
    run = run_snakemake(tmp_path, cfg, "-n", "--quiet", "rules")
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)\s*$", run.stdout + run.stderr, re.M))
    assert "train" not in jobs and jobs["federated_train"] == "1" and jobs["federated_apparent"] == "1"
    assert jobs["federated_site_round"] == "4" and jobs["predict"] == "1" and jobs["train_comparator"] == "1"
    plan = run_snakemake(tmp_path, cfg, "-n", str(results / "clinical/model/model.skops"))
    assert re.search(r"rule federated_train:\s*\n\s*input:.*\n\s*output: \S*clinical/model/model.skops, "
                     r"\S*clinical/model/model_card.json", plan.stdout + plan.stderr)
