"""Integration: faults and determinism of the real DAG on a small demo cohort.

* a bad case is excluded with its reason while the rest continues (on_case_error: exclude), or
  stops the run naming the case (stop);
* a run killed with SIGKILL mid-way and run again finishes without redoing finished scans;
* two runs with the same config (the second of them the killed and resumed one, so that the
  module runs the DAG twice rather than three times) give byte-identical result tables.
"""
import base64
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO, small_statistics, write_config

from acceflow.demo import make_demo_cohort

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--cores", "2"]
BAD_CASE = "demo_0020"  # an external (site_B) case whose image is corrupted
DETERMINISTIC = ["features/features.tsv", "analytical/icc.tsv", "clinical/model/model_card.json",
                 *[f"clinical/{c}/{f}" for c in ("train", "site_B", "site_C") for f in ("predictions.tsv",
                                                                                        "metrics.json")],
                 *[f"utility/{c}/calibration.json" for c in ("train", "site_B", "site_C")]]


def cmd(work: Path, *extra) -> list[str]:
    return [*SNAKEMAKE, "--directory", str(work), "--configfile", str(work / "config.yaml"), *extra]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A demo cohort written once (outside any run), with one corrupt image, and its config."""
    data = tmp_path_factory.mktemp("data")
    make_demo_cohort(data, n_train=16, n_external=(8, 8), n_retest=5, n_reader=0, seed=42)
    manifest = pd.read_csv(data / "manifest.tsv", sep="\t", dtype=str)
    assert manifest.set_index("case_id").loc[BAD_CASE, "cohort"] == "site_B"
    image = data / manifest.set_index("case_id").loc[BAD_CASE, "image"]
    image.write_bytes(b"\x1f\x8b truncated export")
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config.update(results="results", demo={"enabled": False})
    config["input"]["images"] = str(data / "manifest.tsv")
    config["extraction"]["params"] = str(REPO / "config/radiomics/default.yaml")
    config["validation"] = {"cv_folds": 3, "cv_repeats": 2}
    config["model"]["min_events"] = 3  # 5 events in the 16 training cases
    config["utility"] = {"recalibration": []}  # 8-case external cohorts: too small for its CV
    return small_statistics(config)


def workdir(factory, name: str, config: dict) -> Path:
    work = factory.mktemp(name)
    write_config(work / "config.yaml", config)
    return work


@pytest.fixture(scope="module")
def reference_run(study, tmp_path_factory):
    work = workdir(tmp_path_factory, "run_a", study)
    proc = subprocess.run(cmd(work), capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return work / "results"


def test_bad_case_is_excluded_and_the_rest_continues(reference_run):
    qc = pd.read_csv(reference_run / "ingest/qc.tsv", sep="\t", keep_default_na=False)
    bad = qc[qc["case_id"] == BAD_CASE].iloc[0]
    assert bad["status"] == "excluded"
    assert "cannot be read as an image" in bad["reason"] and "re-export" in bad["reason"]
    assert (qc.loc[qc["case_id"] != BAD_CASE, "status"] == "ok").all() and len(qc) == 37
    features = pd.read_csv(reference_run / "features/features.tsv", sep="\t")
    assert len(features) == 31 and BAD_CASE not in set(features["case_id"])
    assert (reference_run / "report/dossier.html").is_file()


def test_on_case_error_stop_ends_the_run_naming_the_case(study, tmp_path_factory):
    work = workdir(tmp_path_factory, "run_stop", {**study, "on_case_error": "stop"})
    proc = subprocess.run(cmd(work), capture_output=True, text=True, timeout=900)
    log = proc.stdout + proc.stderr
    log += "".join(p.read_text() for p in (work / "results/logs").glob("ingest.log"))
    assert proc.returncode != 0
    assert f"case {BAD_CASE}" in log and "on_case_error is 'stop'" in log, log[-3000:]
    # the failing rule's message reaches the console, not only its log file (acceflow.runtime.log_to)
    summary = [line for line in proc.stderr.splitlines() if line.startswith("error: ") and f"case {BAD_CASE}" in line]
    assert summary and "on_case_error is 'stop'" in summary[0], proc.stderr[-3000:]
    assert f"full log: {work / 'results/logs/ingest.log'}" in proc.stderr or "full log: results/logs/ingest.log" in proc.stderr
    assert not (work / "results/features/features.tsv").exists()


def _incomplete_markers(work: Path) -> set[Path]:
    """Outputs Snakemake had started but not finished (its .snakemake/incomplete markers)."""
    marked = set()
    for marker in (work / ".snakemake/incomplete").rglob("*"):
        try:
            name = marker.name + "=" * (-len(marker.name) % 4)
            marked.add((work / base64.urlsafe_b64decode(name.encode()).decode()).resolve())
        except Exception:  # noqa: BLE001 - an unreadable marker name: not ours to judge
            continue
    return marked


@pytest.fixture(scope="module")
def resumed_run(study, tmp_path_factory):
    """A second run of the same study, killed with SIGKILL after a dozen cases and run again."""
    work = workdir(tmp_path_factory, "run_killed", study)
    scans = work / "results/features/cases"
    proc = subprocess.Popen(cmd(work), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and len(list(scans.glob("*.tsv"))) < 12:
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    unfinished = _incomplete_markers(work)
    finished = {f: f.stat().st_mtime_ns for f in scans.glob("*.tsv") if f.resolve() not in unfinished}
    killed_early = not (work / "results/features/features.tsv").exists()
    subprocess.run(cmd(work, "--unlock"), capture_output=True, timeout=300)
    resumed = subprocess.run(cmd(work), capture_output=True, text=True, timeout=1800)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    return work / "results", finished, killed_early


def test_killed_run_resumes_without_redoing_finished_scans(resumed_run):
    results, finished, killed_early = resumed_run
    assert len(finished) >= 10 and killed_early
    redone = [f.name for f, mtime in finished.items() if f.stat().st_mtime_ns != mtime]
    assert not redone, f"finished cases were extracted again: {redone}"
    # one feature file per case (extract_case), one row per usable scan: 31 cases, 36 scans
    files = list((results / "features/cases").glob("*.tsv"))
    assert len(files) == 31
    assert sum(len(pd.read_csv(f, sep="\t")) for f in files) == 36


def test_two_runs_give_byte_identical_results(reference_run, resumed_run):
    results, _, _ = resumed_run
    for rel in DETERMINISTIC:
        assert (results / rel).read_bytes() == (reference_run / rel).read_bytes(), rel
