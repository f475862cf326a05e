"""Integration: the demo DAG through the SLURM executor on a single-node cluster started here.

The cluster comes from Debian's packages (munge slurmctld slurmd slurm-client; `.ci/run` installs
them). The test skips, with the reason, only when the scheduler cannot start on this machine (the
packages are absent or it is not root); a missing executor plugin is a failure (it is in the test
extra). The run uses profiles/slurm as a user would, plus what a cluster without an accounting
daemon needs (status from squeue, short status intervals).
"""
import importlib.util
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from conftest import REPO
from slurm_cluster import ClusterUnavailable, single_node_cluster
from test_workflow import check_contract, write_config

pytestmark = pytest.mark.integration


def test_demo_dag_runs_to_the_dossier_under_slurm(tmp_path):
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.fail("snakemake-executor-plugin-slurm is not installed; run make setup (pip install -e '.[test]')")
    results = tmp_path / "results"
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config.update(results=str(results), demo={"enabled": True, "n_train": 30, "n_external": [15, 15],
                                               "n_retest": 0, "n_reader": 0})
    config["input"]["images"] = str(results / "demo/manifest.tsv")
    config["extraction"]["params"] = str(REPO / "config/radiomics/default.yaml")
    config["validation"] = {"cv_folds": 3, "cv_repeats": 1}
    cfg = write_config(tmp_path / "slurm.yaml", config)
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(cfg), "--profile", str(REPO / "profiles/slurm"), "--jobs", "4",
           # no slurmdbd here: poll squeue (MinJobAge=600 keeps finished jobs visible), and poll often
           "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "5",
           "--seconds-between-status-checks", "5", "--slurm-no-account", "--latency-wait", "5"]
    try:
        with single_node_cluster():
            start = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=2400)  # a loaded 2-core machine took >1200 s
            wall = time.perf_counter() - start
    except ClusterUnavailable as exc:
        pytest.skip(f"SLURM cluster cannot start here: {exc}")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    submitted = log.count("has been submitted with SLURM jobid")
    print(f"\nSLURM run of the small demo DAG (60 scans): wall {wall:.1f} s, {submitted} SLURM jobs")
    check_contract(results, ["train", "site_B", "site_C"], "outcome")
    assert (pd.read_csv(results / "ingest/qc.tsv", sep="\t")["status"] == "ok").all()
    # the jobs went through sbatch, and the per-scan rules ran in batches (job groups)
    assert "Job" in log and "has been submitted with SLURM jobid" in log, log[-3000:]
    assert submitted < 20, f"{submitted} SLURM jobs: the per-scan and per-cohort rules were not grouped"
