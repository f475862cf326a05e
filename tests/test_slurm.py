"""Integration: the demo DAG through the SLURM executor on a single-node cluster started here.

The cluster comes from Debian's packages (munge slurmctld slurmd slurm-client; `.ci/run` installs
them). The test skips, with the reason, only when the scheduler cannot start on this machine (the
packages are absent or it is not root); a missing executor plugin is a failure (it is in the test
extra). The run uses profiles/slurm as a user would, plus what a cluster without an accounting
daemon needs (status from squeue, short status intervals).
"""
import pandas as pd
import pytest
from conftest import check_contract

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_dag_runs_to_the_dossier_under_slurm(otsu_slurm_run):
    results, slurm = otsu_slurm_run
    if "skip" in slurm:
        pytest.skip(slurm["skip"])
    log = slurm["log"]
    submitted = log.count("has been submitted with SLURM jobid")
    print(f"\nSLURM run of the small demo DAG (32 scans, Otsu masks): wall {slurm['wall_s']:.1f} s, "
          f"{submitted} SLURM jobs")
    check_contract(results, ["train", "site_B", "site_C"], "outcome")
    assert (pd.read_csv(results / "ingest/qc.tsv", sep="\t")["status"] == "ok").all()
    # the jobs went through sbatch, and the per-scan rules ran in batches (job groups)
    assert "Job" in log and "has been submitted with SLURM jobid" in log, log[-3000:]
    assert submitted < 20, f"{submitted} SLURM jobs: the per-scan and per-cohort rules were not grouped"
