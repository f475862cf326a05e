"""Shared fixtures and helpers: paths to the real data in ../shared/data, small synthetic images,
tiny demo study configs, running the real Snakemake DAG, and the results-contract check that every
end-to-end run passes.

Markers (registered in pyproject.toml): ``integration`` runs the DAG; ``slow`` takes minutes even
on a quiet machine; ``gpu`` needs CUDA (skipped without it); ``shared_data`` reads ../shared/data
(added here to every test that uses the ``shared_data`` fixture or ``SHARED_DATA``). ``make test``
runs them all; ``pytest -m "not integration"`` gives the unit tests in about two minutes.
"""
import importlib.util
import inspect
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def pytest_configure(config):
    """Refuse ``--dist loadgroup`` where it cannot keep a group on one worker (make test uses it)."""
    if getattr(config.option, "dist", "no") == "loadgroup":
        import xdist

        pytest_version = tuple(int(p) for p in pytest.__version__.split(".")[:2])
        xdist_version = tuple(int(p) for p in xdist.__version__.split(".")[:2])
        if pytest_version >= (9, 2) and xdist_version <= (3, 8):
            raise pytest.UsageError(
                f"pytest {pytest.__version__} with pytest-xdist {xdist.__version__}: --dist loadgroup would split the "
                "tests that share a DAG run across workers (pytest 9.2 ignores xdist's group suffix); install the "
                "pinned versions with `make setup` (constraints.txt: pytest<9.2) or run pytest without -n")


#: Session-scoped fixtures that run a whole DAG: every test using one runs on the same xdist worker.
SESSION_RUNS = ("otsu_slurm_run", "demo_run")

#: The longest work units first (the slowest in ``--durations`` on the 2-core machine), so that
#: ``pytest -n 2 --dist loadgroup --no-loadscope-reorder`` (make test) starts them first and the
#: short ones fill in at the end. A unit not listed keeps its place after these, slow and
#: integration modules before unit tests.
LONGEST_FIRST = ("otsu_slurm_run", "test_segmentation_workflow", "test_nnunet_workflow", "test_deep_workflow",
                 "test_workflow", "demo_run", "test_faults")


def xdist_group(item) -> str:
    """The xdist group of a test: the session DAG run it reads, else its module (module-scoped
    fixtures, such as test_faults.py's runs, are then built once)."""
    for name in SESSION_RUNS:
        if name in getattr(item, "fixturenames", ()):
            return name
    return item.module.__name__ if getattr(item, "module", None) else item.nodeid.split("::")[0]


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's worker hook reads the xdist_group marks
def pytest_collection_modifyitems(config, items):
    """Mark every test that reads ../shared/data ``shared_data``; put every test in its xdist group
    and the longest groups first (see :data:`LONGEST_FIRST`)."""
    uses_shared, groups = {}, {}
    for item in items:
        module = getattr(item, "module", None)
        if module not in uses_shared:
            try:
                uses_shared[module] = "SHARED_DATA" in inspect.getsource(module)
            except (OSError, TypeError):
                uses_shared[module] = False
        if "shared_data" in getattr(item, "fixturenames", ()) or uses_shared[module]:
            item.add_marker(pytest.mark.shared_data)
        groups[item] = xdist_group(item)
        item.add_marker(pytest.mark.xdist_group(groups[item]))

    def rank(item):
        group = groups[item]
        if group in LONGEST_FIRST:
            return LONGEST_FIRST.index(group)
        return len(LONGEST_FIRST) + (0 if item.get_closest_marker("slow") else
                                     1 if item.get_closest_marker("integration") else 2)

    items.sort(key=rank)  # stable: the order within a rank is the collection order


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not available (../shared/data is expected beside the checkout)")
    return path


@pytest.fixture
def shared_data() -> Path:
    return need(SHARED_DATA)


def make_image(array: np.ndarray, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0)) -> sitk.Image:
    """SimpleITK image from a (z, y, x) array with the given spacing (mm) and origin (mm)."""
    img = sitk.GetImageFromArray(array)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    return img


@pytest.fixture
def sphere_case():
    """A 40^3 image (1 mm) with a bright sphere of radius 8 mm and its mask."""
    z, y, x = np.mgrid[:40, :40, :40]
    inside = (z - 20) ** 2 + (y - 20) ** 2 + (x - 20) ** 2 <= 8 ** 2
    rng = np.random.default_rng(0)
    arr = (40 + 60 * inside + rng.normal(0, 5, inside.shape)).astype(np.float32)
    return make_image(arr), make_image(inside.astype(np.uint8))


# ------------------------------------------------------------------------- DAG runs (integration)

#: every section of the dossier (anchors), checked on every end-to-end run
DOSSIER_SECTIONS = ("study", "exclusions", "analytical", "clinical", "model", "discrimination", "utility",
                    "calibration", "decision-curve", "limitations", "appendix", "rulegraph", "runtimes",
                    "versions", "config", "checklists", "tripod-ai", "clear")

CONTRACT_COLUMNS = {
    "ingest/qc.tsv": ["case_id", "status", "reason"],
    "analytical/icc.tsv": ["feature", "icc_form", "icc", "ci_low", "ci_high", "wcv", "n_subjects", "n_repeats",
                           "stable"],
}


def run_snakemake(workdir: Path, configfile: Path, *extra, timeout: int = 1800) -> subprocess.CompletedProcess:
    """The workflow of this checkout in ``workdir`` with ``configfile`` on 2 cores; ``extra`` (options,
    targets) goes before ``--configfile``, which would take targets after it for more config files."""
    cmd = [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", "2",
           *extra, "--configfile", str(configfile)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def write_config(path: Path, config: dict) -> Path:
    """Write a test's study config. The grouped explanations (SHAP's Partition explainer, ~25 s of CPU
    per DAG, more on PI-CAI) are off unless the test's config sets ``explain`` itself: only the
    session's ``demo_run`` and the tests of the explain rule need them (CI time, issue 21)."""
    if "explain" not in config:
        config = {**config, "explain": {"enabled": False}}
    path.write_text(yaml.safe_dump(config))
    return path


def demo_config(results: Path, base: str = "config/config.yaml", *, n_train: int = 30, n_external=(15, 15),
                n_retest: int = 0, n_reader: int = 0, manifest: str = "manifest.tsv", **sections) -> dict:
    """A study config for a tiny demo cohort written by the DAG's demo rule into ``results``.

    ``base`` is the config it starts from (a file of this checkout); ``sections`` replace whole
    top-level sections (``validation={"cv_folds": 3, "cv_repeats": 1}``).
    """
    config = yaml.safe_load((REPO / base).read_text())
    config.update(results=str(results), demo={"enabled": True, "n_train": n_train, "n_external": list(n_external),
                                               "n_retest": n_retest, "n_reader": n_reader})
    config["input"]["images"] = str(results / "demo" / manifest)
    config["extraction"]["params"] = str(REPO / "config/radiomics/default.yaml")
    config.update(sections)
    return config


#: The fewest resampling replicates the schema allows or a rule still exercises every code path
#: with: for DAG tests that check files, the executor, faults or determinism rather than the
#: intervals' values (which the unit tests check against published and hand-computed answers).
#: Replicates cost time, not coverage: the AUC bootstrap, coefficient bootstrap, permutation
#: importance and curve bands run as they do with the defaults (2000, 200, 20, 200).
SMALL_STATISTICS = {"validation": {"n_bootstrap": 100, "coefficient_bootstrap": 20, "optimism_bootstrap": 20,
                                   "permutation_repeats": 2},
                    "utility": {"curve_bootstrap": 20}}


def small_statistics(config: dict) -> dict:
    """``config`` with :data:`SMALL_STATISTICS` merged into its sections (other keys kept); returned."""
    for section, values in SMALL_STATISTICS.items():
        config[section] = {**(config.get(section) or {}), **values}
    return config


def check_contract(results: Path, cohorts: list[str], outcome_column: str) -> None:
    """The results contract's files, columns and dossier sections of a finished binary-outcome run."""
    for rel, columns in CONTRACT_COLUMNS.items():
        table = pd.read_csv(results / rel, sep="\t")
        assert set(columns) <= set(table.columns), rel
    features = pd.read_csv(results / "features/features.tsv", sep="\t")
    assert list(features.columns[:2]) == ["case_id", "cohort"] and outcome_column in features
    card = json.loads((results / "clinical/model/model_card.json").read_text())
    assert {"features", "learner", "hyperparameters", "training_cohorts", "seed"} <= set(card)
    assert (results / "clinical/model" / card["model_file"]).is_file()
    for cohort in cohorts:
        preds = pd.read_csv(results / f"clinical/{cohort}/predictions.tsv", sep="\t")
        assert list(preds.columns) == ["case_id", "outcome", "probability"] and preds["probability"].between(0, 1).all()
        metrics = json.loads((results / f"clinical/{cohort}/metrics.json").read_text())
        assert {"n", "n_events", "auc", "auc_ci_low", "auc_ci_high", "brier"} <= set(metrics)
        assert metrics["auc_ci_low"] <= metrics["auc"] <= metrics["auc_ci_high"] and metrics["n"] == len(preds)
        cal = json.loads((results / f"utility/{cohort}/calibration.json").read_text())
        assert {"calibration_intercept", "calibration_slope", "ici", "e50", "e90", "emax"} <= set(cal)
        curve = pd.read_csv(results / f"utility/{cohort}/decision_curve.tsv", sep="\t")
        assert {"threshold", "net_benefit_model", "net_benefit_all", "net_benefit_none"} <= set(curve.columns)
    html = (results / "report/dossier.html").read_text()
    for heading in ("Analytical validity", "Clinical validity", "Clinical utility"):
        assert heading in html
    for anchor in DOSSIER_SECTIONS:
        assert f'id="{anchor}"' in html, anchor
    assert (results / "report/rulegraph.svg").read_text().startswith("<svg")
    summary = json.loads((results / "report/summary.json").read_text())
    assert set(cohorts) <= set(summary["cohorts"])
    provenance = json.loads((results / "report/provenance.json").read_text())
    assert provenance["inputs"] and all(provenance["inputs"].values())
    n_models = 1 + len(list((results / "clinical/model/comparators").glob("*/model_card.json")))
    assert provenance["rulegraph"]["dot"] and provenance["benchmarks"]["train"]["jobs"] == n_models
    assert "report/dossier.html" in provenance["outputs"] and provenance["config_files"]


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The default demo DAG on a small cohort (60 training, 2 x 40 external, 12 rescans), with the
    internal-external cross-validation over its three sites, run once per session and shared by every
    test that only reads its results."""
    work = tmp_path_factory.mktemp("demo")
    results = work / "results"
    config = demo_config(results, n_train=60, n_external=(40, 40), n_retest=12,
                         validation={"cv_folds": 5, "cv_repeats": 2, "internal_external": True},
                         explain={"enabled": True})
    cfg = write_config(work / "demo.yaml", config)
    proc = run_snakemake(work, cfg)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return work, cfg, results


@pytest.fixture(scope="session")
def otsu_slurm_run(tmp_path_factory):
    """A small demo (16 training, 2 x 8 external cases, no rescans) with Otsu segmentation, run
    once per session: through the SLURM executor on a single-node cluster started here when one can
    start (CI, as root, with Debian's slurm packages), else locally. Returns ``(results, slurm)``
    where ``slurm`` is ``{"log", "wall_s"}`` of the SLURM run or ``{"skip": reason}``.

    Sized for time: under SLURM every job of a group is its own ``srun ... snakemake`` (the
    jobstep executor), run one after another within a group; each costs a Snakemake start-up
    (about 3 s of CPU, what a no-op run of this workflow costs; 13-25 s of wall at load 10-30). 32 scans make two per-scan
    groups of 16 (``--group-components perscan=16``: one per CPU of the node) with three jobs per
    scan. The seeded demo gives 5 events in the 16 training cases (3-fold CV) and 4 and 2 in the
    8-case external cohorts. One comparator (clinical) keeps every comparator rule in the run.
    Small external cohorts are too small for recalibration's cross-validation (as in
    test_deep_workflow.py)."""
    from slurm_cluster import ClusterUnavailable, single_node_cluster

    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.fail("snakemake-executor-plugin-slurm is not installed; run make setup (pip install -e '.[test]')")
    work = tmp_path_factory.mktemp("otsu_slurm")
    results = work / "results"
    config = demo_config(results, n_train=16, n_external=(8, 8), segmentation={"source": "otsu", "margin_mm": 4.0},
                         validation={"cv_folds": 3, "cv_repeats": 1}, utility={"recalibration": []})
    config["model"].update(comparators=["clinical"], min_events=3)  # 5 events in 16 training cases
    cfg = write_config(work / "otsu.yaml", small_statistics(config))
    slurm = [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(work), "--configfile", str(cfg),
             "--profile", str(REPO / "profiles/slurm"), "--jobs", "4",
             # the profile's groups, with the per-scan batches cut to one per CPU of the node
             "--group-components", "perscan=16", "models=10", "percohort=100", "analytical=10",
             # no slurmdbd here: poll squeue (MinJobAge=600 keeps finished jobs visible), and poll often
             "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "5",
             "--seconds-between-status-checks", "5", "--slurm-no-account", "--latency-wait", "5"]
    try:
        with single_node_cluster():
            start = time.perf_counter()
            proc = subprocess.run(slurm, capture_output=True, text=True, timeout=2400)  # a loaded 2-core machine took >1200 s
            info = {"log": proc.stdout + proc.stderr, "wall_s": time.perf_counter() - start}
    except ClusterUnavailable as exc:
        info = {"skip": f"SLURM cluster cannot start here: {exc}"}
        proc = run_snakemake(work, cfg)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    return results, info
