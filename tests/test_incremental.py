"""Integration: adding one case to a finished study re-runs only that case's imaging jobs.

Extraction is one job per case (``extract_case``: every scan and modality of the case in one
process, issue 21); this checks that the grouping kept the incremental property on the smallest
cohort that shows it: 8 cases (one with a rescan) are extracted to ``features/features.tsv``, a
ninth case (a copy of the first case's scans under a new id) is added to the manifest, and the
re-run must preprocess and extract that case alone (two scans: 2 ``preprocess`` jobs, 1
``extract_case`` job), then re-assemble the table; no other case's files are rewritten.
"""
import re

import pandas as pd
import pytest
import yaml
from conftest import REPO, run_snakemake, write_config

from acceflow.demo import make_demo_cohort

pytestmark = pytest.mark.integration


def _jobs(log: str) -> dict[str, int]:
    """Jobs that ran, per rule, from Snakemake's log (``rule X:`` / ``localrule X:`` headers)."""
    counts: dict[str, int] = {}
    for rule in re.findall(r"^(?:local)?(?:checkpoint|rule) (\w+):$", log, re.M):
        counts[rule] = counts.get(rule, 0) + 1
    return counts


def test_adding_one_case_reruns_only_that_case(tmp_path):
    data = tmp_path / "data"
    make_demo_cohort(data, n_train=4, n_external=(2, 2), n_retest=1, n_reader=0, seed=3)
    manifest = pd.read_csv(data / "manifest.tsv", sep="\t", dtype=str).assign(cohort="site_A")  # one cohort
    manifest.to_csv(data / "manifest.tsv", sep="\t", index=False)
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    results = tmp_path / "results"
    config.update(results=str(results), demo={"enabled": False})
    config["input"]["images"] = str(data / "manifest.tsv")
    config["cohorts"] = {"column": "cohort", "train": ["site_A"], "external": []}
    config["extraction"]["params"] = str(REPO / "config/radiomics/default.yaml")
    cfg = write_config(tmp_path / "config.yaml", config)
    # a flag before the target ends --configfile's list of values
    target = ("--keep-going", str(results / "features/features.tsv"))

    first = run_snakemake(tmp_path, cfg, *target)
    assert first.returncode == 0, first.stderr[-4000:]
    n_cases = manifest["case_id"].nunique()
    assert _jobs(first.stderr)["extract_case"] == n_cases == 8
    assert _jobs(first.stderr)["preprocess"] == len(manifest) == 9
    before = {f: f.stat().st_mtime_ns for f in results.glob("features/cases/*.tsv")}
    before |= {f: f.stat().st_mtime_ns for f in results.glob("preprocessed/*/*.nii.gz")}

    copied = manifest.loc[manifest["repeat"] == "scan2", "case_id"].iloc[0]  # the rescanned case: two scans
    extra = manifest[manifest["case_id"] == copied].assign(case_id="demo_new")
    pd.concat([manifest, extra], ignore_index=True).to_csv(data / "manifest.tsv", sep="\t", index=False)
    second = run_snakemake(tmp_path, cfg, *target)
    assert second.returncode == 0, second.stderr[-4000:]
    jobs = _jobs(second.stderr)
    assert jobs.get("extract_case") == 1 and jobs.get("preprocess") == len(extra) == 2, jobs
    assert jobs.get("feature_table") == 1, jobs
    rewritten = [f.name for f, mtime in before.items() if f.stat().st_mtime_ns != mtime]
    assert not rewritten, f"files of unchanged cases were rewritten: {rewritten}"
    assert len(pd.read_csv(results / "features/cases/demo_new.tsv", sep="\t")) == 2
    assert "demo_new" in set(pd.read_csv(target[1], sep="\t", dtype=str)["case_id"])
