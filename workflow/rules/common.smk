# Loads and validates the config, and holds the input functions shared by the rules.
import functools
import os
import re
import sys
from types import SimpleNamespace

import pandas as pd
from snakemake.utils import update_config

from acceflow.study import scans
from acceflow.study.results import Results, comparator, fill
from acceflow.study.settings import (DANN_KIND, DEEP_FEDERATED_KIND, DEEP_KIND, FEDERATED_KIND, SYNTHETIC_KINDS,
                                     ConfigError, check_config,
                                     command_line_values, internal_external_sites, model_names, validate_config)
from acceflow.study.task import task_for

from acceflow.report.browser import find_chromium
from acceflow.runtime import put_on_pythonpath


def _one_scheduler_timer():
    """Keep at most one pending re-evaluation timer in Snakemake's scheduler (Snakemake 9.27).

    For its job rate limit (--max-jobs-per-timespan, default 100/1s), every pass of the scheduler
    starts a threading.Timer that triggers another pass one timespan later, and a finished job
    triggers a pass too: the timer chains multiply with every finished job, and every pass stats
    each input of each ready job. On 60 + 2 x 40 demo cases (358 jobs) Snakemake's own process
    spent 115 s of CPU, 21% of the run's; one pending timer keeps the rate limit's wake-up and drops
    the rest. The timer is a daemon thread, so the end of a run no longer waits for it. Nothing
    changes when Snakemake's scheduler no longer has this method (a later version)."""
    import threading

    try:
        from snakemake.scheduling.job_scheduler import JobScheduler
    except ImportError:
        return
    if getattr(JobScheduler, "_acceflow_one_timer", False) or not hasattr(JobScheduler, "_schedule_reevalutation"):
        return

    def _schedule_reevalutation(self, delay):
        pending = getattr(self, "_acceflow_timer", None)
        if pending is not None and pending.is_alive():
            return
        timer = threading.Timer(delay, self._open_jobs.release)
        timer.daemon = True
        self._acceflow_timer = timer
        timer.start()

    JobScheduler._schedule_reevalutation = _schedule_reevalutation
    JobScheduler._acceflow_one_timer = True


_one_scheduler_timer()


# The demo config applies unless a --configfile is given (which replaces it; the two are never merged);
# --config key=value overrides single keys of either (nested: --config 'model={learner: svm}').
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# --config parses nested values with YAML's BaseLoader (every value a string): read them as YAML values
update_config(config, command_line_values(dict(workflow.config_settings.config)))
try:
    validate_config(config)  # unknown keys at any depth, types, enums; fills the schema's defaults
    check_config(config)
except ConfigError as error:  # one line, not a traceback or a schema dump
    sys.exit(f"acceflow: config error: {error}")


def _want_pdf(setting):
    """report.pdf: true always asks for report/dossier.pdf (rule dossier_pdf fails without Chromium);
    auto asks for it only when a Chromium is found, and says so when it is not; false never."""
    if setting is True or (setting == "auto" and find_chromium()):
        return True
    if setting == "auto":
        print("acceflow: report.pdf is auto and no Chromium was found (chromium, chromium-browser, google-chrome "
              "or ACCEFLOW_CHROMIUM): report/dossier.pdf is not made; the HTML dossier is complete without it.",
              file=sys.stderr)
    return False


PDF = _want_pdf(config["report"]["pdf"])

RESULTS = config["results"].rstrip("/")
IMAGES = bool(config["input"]["images"])
EXTERNAL = list(config["cohorts"]["external"])
COHORTS = ["train"] + EXTERNAL
SOURCE = config["segmentation"]["source"]
PRIMARY, COMPARATORS = model_names(config)
TASK = task_for(config)  # what differs between outcome types (acceflow.study.task)
EXTERNAL_PATTERN = "|".join(EXTERNAL) if EXTERNAL else "(?!)"
# comparators of the generic train / predict rules (the deep models have their own rules, deep.smk; the
# federated model its own training rules, federated.smk, and the generic predict rule)
GENERIC_COMPARATORS = "|".join(m for m in COMPARATORS
                               if m not in (DEEP_KIND, DANN_KIND, FEDERATED_KIND, DEEP_FEDERATED_KIND,
                                            *SYNTHETIC_KINDS)) or "(?!)"
PREDICTED_COMPARATORS = "|".join(m for m in COMPARATORS if m not in (DEEP_KIND, DANN_KIND, DEEP_FEDERATED_KIND)) or "(?!)"
FEDERATED = FEDERATED_KIND in COMPARATORS or PRIMARY == FEDERATED_KIND
# the comparator the federated model writes as (None: the primary model's paths, model.primary: federated)
FEDERATED_AS = None if PRIMARY == FEDERATED_KIND else FEDERATED_KIND
# synthetic cases with an audit (synthetic.smk): the audit when enabled, its comparators when listed by model_names
SYNTHETIC = bool(config["synthetic"]["enabled"])
SYNTHETIC_ARMS = [m for m in COMPARATORS if m in SYNTHETIC_KINDS]
SYNTHETIC_PATTERN = "|".join(SYNTHETIC_ARMS) or "(?!)"


def config_subset(*keys):
    """Only the config sections a rule uses, so that other changes do not re-run it."""
    return {k: config[k] for k in keys}


MODEL_CONFIG = {
    **config_subset("seed", "cohorts", "outcome", "clinical", "features", "model", "reproducibility"),
    # the internal-external settings are not the frozen model's: switching them re-runs no training
    "validation": {k: v for k, v in config["validation"].items() if not k.startswith("internal_external")},
    "utility": {"horizon": config["utility"]["horizon"]},  # survival models predict risk at this horizon
}
# the synthetic stage's settings: the split and generator (synthetic.smk) re-run only when these change
SYNTHETIC_CONFIG = config_subset("seed", "cohorts", "outcome", "clinical", "features", "synthetic")
SYNTHETIC_GENERATOR = config["synthetic"]["generator"]
# the image generator's training: what changes it (not the job's GPU or thread count)
SYNTHETIC_GAN_CONFIG = {**SYNTHETIC_CONFIG,
                        "synthetic": {**config["synthetic"], "gan": {k: v for k, v in config["synthetic"]["gan"].items()
                                                                     if k not in ("gpus", "threads")}}}
# internal-external cross-validation: one job per held-out site (acceflow.study.internal_external)
IECV_SITES = internal_external_sites(config) if config["validation"]["internal_external"] else []
IECV_SITE_PATTERN = "|".join(re.escape(s) for s in IECV_SITES) or "(?!)"
IECV_CONFIG = {**MODEL_CONFIG, "validation": config["validation"]}


def internal_external_outputs():
    """The per-site table and the pooled meta-analysis (validation.internal_external), for the dossier."""
    return [R(Results.IECV_SITE_METRICS), R(Results.IECV_POOLED)] if IECV_SITES else []


def R(template, model=None, **wildcards):
    """A results file inside the results folder: a template of acceflow.study.results.Results, of the
    comparator ``model`` when given ("{model}" for the wildcard), with the given wildcards filled in."""
    if model is not None:
        template = comparator(template, model)
    return f"{RESULTS}/{fill(template, **wildcards)}"


wildcard_constraints:
    scan=r"[A-Za-z0-9._-]+",
    cohort="|".join(COHORTS),
    model="|".join(COMPARATORS) if COMPARATORS else "(?!)",


@functools.lru_cache(maxsize=4)
def _read_scans(path, mtime):
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False).set_index("scan_id")


def scans_table():
    """The usable scans written by the ingest checkpoint (re-evaluates the DAG after it)."""
    path = checkpoints.ingest.get().output.scans
    return _read_scans(path, os.path.getmtime(path))


def scan_row(wildcards):
    return scans_table().loc[wildcards.scan]


def scan_inputs(wildcards):
    row = scan_row(wildcards)
    return {"image": row["image"], "mask": row["mask"]} if row["mask"] else {"image": row["image"]}


def mask_settings(wildcards):
    """How one scan's raw image and mask are read: DICOM series and ROI choice, label, geometry tolerance."""
    row = scan_row(wildcards)
    return {"series_uid": row.get("series_uid", ""), "roi": row.get("roi", "") or config["input"]["roi"],
            "label": config["extraction"]["label"], "tolerance": config["input"]["geometry_tolerance_mm"]}


def segmentation_mask(wildcards):
    if SOURCE == "otsu":
        return R(Results.OTSU_MASK, scan=wildcards.scan)
    if SOURCE in ("model", "nnunet"):
        return R(Results.MODEL_MASK_PREPROCESSED, scan=wildcards.scan)
    return R(Results.PREPROCESSED_MASK, scan=wildcards.scan)


def extraction_params(wildcards):
    modality = scan_row(wildcards)["modality"]
    return config["extraction"]["modality_params"].get(modality, config["extraction"]["params"])


def extraction_overrides(wildcards):
    """The scan's modality settings merged into its pyradiomics parameters (acceflow.imaging.extract.scan_params)."""
    modality = scan_row(wildcards)["modality"]
    e = config["extraction"]
    return {key: e[key].get(modality) for key in ("discretisation", "resegment", "outlier_sd")}


def model_predictions(cohort):
    """Predictions of every model (primary first) on one cohort."""
    return [R(Results.PREDICTIONS, cohort=cohort)] + [
        R(Results.PREDICTIONS, model=m, cohort=cohort) for m in COMPARATORS
    ]


def comparator_outputs():
    """Every per-cohort file of the comparator models (empty without comparators)."""
    files = []
    for m in COMPARATORS:
        for c in COHORTS:
            files += [R(Results.METRICS, model=m, cohort=c),
                      R(Results.CALIBRATION, model=m, cohort=c),
                      R(Results.DECISION_CURVE, model=m, cohort=c)]
    if COMPARATORS and not TASK.time_to_event:  # the paired DeLong comparison is of AUCs (binary outcomes)
        files += [R(Results.MODEL_COMPARISON, cohort=c) for c in COHORTS]
    if DEEP_FEDERATED_KIND in (PRIMARY, *COMPARATORS):
        files.append(R(Results.FEDERATED_DEEP_ROUNDS))
    if FEDERATED:
        files += [R(Results.FEDERATED_ROUNDS), R(Results.FEDERATED_SUMMARY)]
        if EXTERNAL:
            files.append(R(Results.FEDERATED_COMPARISON))
    return files


def synthetic_outputs():
    """The synthetic cases, their audit and the TRTR / TSTR / augmented comparison per cohort (synthetic.enabled)."""
    if not SYNTHETIC:
        return []
    files = [R(Results.SYNTHETIC_FEATURES), R(Results.SYNTHETIC_FIDELITY), R(Results.SYNTHETIC_SUMMARY),
             R(Results.SYNTHETIC_CORRELATIONS), R(Results.SYNTHETIC_DISTANCES)]
    if SYNTHETIC_GENERATOR != "smote":
        files += [R(Results.SYNTHETIC_GENERATOR_CARD), R(Results.SYNTHETIC_GENERATOR_HISTORY),
                  R(Results.SYNTHETIC_EXTRACTION_QC), R(Results.SYNTHETIC_SLICES)]
    if SYNTHETIC_ARMS:
        files += [R(Results.SYNTHETIC_COMPARISON, cohort=c) for c in COHORTS]
    return files


def synthetic_extraction():
    """The reference modality of the deep crops, and its pyradiomics parameter file and overrides: the
    settings the extract_case rule uses for that modality's real scans (the image generators)."""
    from acceflow.study.deep import study_modalities

    modality = study_modalities(scans_table(), DEEP_CFG)[0]
    e = config["extraction"]
    return {"modality": modality, "params": e["modality_params"].get(modality, e["params"]), "label": e["label"],
            "overrides": {key: e[key].get(modality) for key in ("discretisation", "resegment", "outlier_sd")}}


def model_curves(cohort):
    """Decision curves of every model (primary first) on one cohort."""
    return [R(Results.DECISION_CURVE, cohort=cohort)] + [
        R(Results.DECISION_CURVE, model=m, cohort=cohort) for m in COMPARATORS
    ]


def utility_outputs():
    """Per-cohort figures, and recalibration of the primary model on each external cohort (binary)."""
    files = [R(figure, cohort=c, ext=ext) for c in COHORTS
             for figure in (Results.CALIBRATION_FIGURE, Results.DECISION_CURVE_FIGURE)
             for ext in ("png", "svg")]
    if TASK.recalibration and config["utility"]["recalibration"]:
        files += [R(Results.RECALIBRATION, cohort=c) for c in EXTERNAL]
    return files


def explanation_outputs():
    """Optimism correction (internal validation only), coefficient CIs, permutation importance."""
    v = config["validation"]
    # they explain a centrally trained primary model on a feature table
    if not TASK.explanations or PRIMARY in (DEEP_KIND, FEDERATED_KIND, DEEP_FEDERATED_KIND):
        return []
    files = [R(Results.PERMUTATION_IMPORTANCE, cohort=c) for c in EXTERNAL]
    if not EXTERNAL and v["optimism_bootstrap"]:
        files.append(R(Results.OPTIMISM))
    if v["coefficient_bootstrap"]:
        files.append(R(Results.COEFFICIENTS))
    return files


def domain_shift_inputs(wildcards):
    """Features and the performance figures of the models built on them (the deep embeddings when made)."""
    files = {"features": R(Results.FEATURES), "stable": R(Results.STABLE_FEATURES),
             "metrics": expand(R(Results.METRICS), cohort=COHORTS)}
    if DEEP_KIND in COMPARATORS and config["deep"]["embedding"]["enabled"]:
        files["deep_features"] = R(Results.DEEP_FEATURES)
        files["deep_metrics"] = expand(R(Results.METRICS, model=DEEP_KIND), cohort=COHORTS)
        if DANN_KIND in COMPARATORS:
            files["dann_features"] = R(Results.DANN_FEATURES)
            files["dann_metrics"] = expand(R(Results.METRICS, model=DANN_KIND), cohort=COHORTS)
    return files


def domain_shift_outputs():
    """The domain-shift files the dossier reads (config domain_shift.enabled)."""
    if not config["domain_shift"]["enabled"]:
        return []
    return [R(Results.DOMAIN_SHIFT), R(Results.DOMAIN_SHIFT_SUMMARY)]


def grouped_explanation_outputs():
    """The grouped explanations (config explain) of the primary model and of the clinical comparator."""
    if not config["explain"]["enabled"] or PRIMARY in (DEEP_KIND, FEDERATED_KIND, DEEP_FEDERATED_KIND):
        return []
    names = ("FEATURE_CLUSTERS", "SHAP_VALUES", "SHAP_GROUPS", "SHAP_SUMMARY", "GROUPED_IMPORTANCE", "REFIT_RATIOS")
    files = [R(getattr(Results, n)) for n in names]
    if "clinical" in COMPARATORS and PRIMARY != "clinical":
        files += [R(getattr(Results, n), model="clinical") for n in names]
    return files


def case_scans(wildcards):
    """The scan ids of one case ({case}), in the scans table's order."""
    table = scans_table()
    return list(table.index[table["case_id"] == wildcards.case])


def case_extraction_inputs(wildcards):
    """Preprocessed image, segmentation mask and parameter file of every scan of one case."""
    files = {}
    for scan in case_scans(wildcards):
        wc = SimpleNamespace(scan=scan)
        files[f"image__{scan}"] = R(Results.PREPROCESSED_IMAGE, scan=scan)
        files[f"mask__{scan}"] = segmentation_mask(wc)
        files[f"params__{scan}"] = extraction_params(wc)
    return files


def case_extraction_settings(wildcards):
    """Per scan of one case: label and modality overrides (the files come in as inputs)."""
    return {scan: {"label": config["extraction"]["label"],
                   "overrides": extraction_overrides(SimpleNamespace(scan=scan))}
            for scan in case_scans(wildcards)}


def case_extraction_spec(wildcards, input, output, threads):
    """What extract_case.py runs, as one JSON argument: per scan its files, label and modality
    overrides; on_case_error; the job's threads and outputs (the log is the second argument)."""
    import json

    scans = {scan: {"image": input[f"image__{scan}"], "mask": input[f"mask__{scan}"],
                    "params": input[f"params__{scan}"], **settings}
             for scan, settings in case_extraction_settings(wildcards).items()}
    return json.dumps({"scans": scans, "on_error": config["on_case_error"], "threads": threads,
                       "features": output.features, "diagnostics": output.diagnostics})


def case_features(wildcards):
    return expand(R(Results.CASE_FEATURES), case=sorted(scans_table()["case_id"].unique()))


def case_diagnostics(wildcards):
    return expand(R(Results.CASE_DIAGNOSTICS), case=sorted(scans_table()["case_id"].unique()))


DESIGN = config["reproducibility"]["design"]
PERTURB = IMAGES and DESIGN == "perturbation" and not config["input"]["repeats"]


def repeats_input(wildcards):
    """The long repeat table of the design: input.repeats, the perturbed copies, or the manifest's repeats."""
    if config["input"]["repeats"]:
        return config["input"]["repeats"]
    if PERTURB:
        return R(Results.REPEATS_PERTURBATION)
    return R(Results.REPEATS) if IMAGES else []


def perturbed_scans():
    """Primary scans of the training cohorts (the first max_cases cases) for the perturbation design."""
    return scans.training_primary_scans(scans_table(), config["cohorts"]["train"],
                                        config["reproducibility"]["perturbation"]["max_cases"])


def perturbation_features(wildcards):
    return expand(R(Results.PERTURBATION_FEATURES), scan=perturbed_scans())


def reader_masks(wildcards):
    """The masks of scans that share an image with another scan of the case (two readers)."""
    return scans.reader_masks(scans_table())


IBSI = IMAGES and config["ibsi"]["enabled"]


def ibsi_outputs():
    """The IBSI conformance tables (image studies with ibsi.enabled), for the dossier."""
    return [R(Results.IBSI), R(Results.IBSI_SUMMARY)] if IBSI else []


def ibsi_study_params(wildcards):
    """The pyradiomics parameter file a CT scan of the study uses (ibsi.study), as an input."""
    if not config["ibsi"]["study"]:
        return []
    return config["extraction"]["modality_params"].get("CT", config["extraction"]["params"])


def input_files(wildcards):
    """Every input file of the study (for checksums): manifest or table, repeats, params."""
    files = [f for f in (config["input"]["images"], config["input"]["features"], config["input"]["repeats"]) if f]
    if IMAGES:
        files.append(config["extraction"]["params"])
        files.extend(sorted(set(config["extraction"]["modality_params"].values())))
    return files


# Scripts import acceflow from this checkout, also inside per-rule conda environments.
put_on_pythonpath(os.path.join(workflow.basedir, "src"))

# The Python of rules that run a workflow script as a plain program (shell:, without Snakemake's
# script preamble): the rule's environment's where Snakemake deploys one, as for script: rules.
SCRIPTS = os.path.join(workflow.basedir, "workflow", "scripts")
JOB_PYTHON = ("python" if {m.name for m in workflow.deployment_settings.deployment_method} & {"CONDA", "APPTAINER"}
              else sys.executable)


def _without_back_edges(graph):
    """The rule-level graph (a dict, name -> the rules it depends on) without the edges that close a cycle: rules applied
    round after round (the federated rounds: a site's step reads the previous round's aggregate) make
    the rule-level graph cyclic, while the job DAG is not; the dossier draws the acyclic part."""
    kept, state = {n: set() for n in graph}, {}

    def visit(n):
        state[n] = "open"
        for d in sorted(graph[n]):
            if state.get(d) == "open":
                continue  # d is an ancestor on the current path: n -> d closes a cycle
            kept[n].add(d)
            if d not in state:
                visit(d)
        state[n] = "done"

    for n in sorted(graph):
        if n not in state:
            visit(n)
    return kept


def run_record(wildcards, input):
    """What the dossier records about this run from the running workflow (main process).

    Evaluated when the dossier job is scheduled, i.e. after the ingest checkpoint, so the DAG is
    complete: Snakemake's rule graph (dot text, as ``--rulegraph`` prints it), the number of jobs
    per rule, the config files given and the ``--config`` overrides. A function of ``input``, so
    Snakemake does not treat it as a parameter whose change triggers a re-run.
    """
    record = {"rulegraph_dot": None, "jobs_per_rule": {}, "workdir": os.getcwd(),
              "config_files": [os.path.abspath(f) for f in workflow.configfiles],
              "config_overrides": dict(workflow.config_settings.overwrite_config or {})}
    try:
        # what DAG.rule_dot() computes for `--rulegraph` (which prints only under that option)
        dag = workflow.dag
        graph, counts = {}, {}
        for job in dag.jobs:
            name = job.rule.name
            counts[name] = counts.get(name, 0) + 1
            graph.setdefault(name, set()).update(dep.rule.name for dep in dag.dependencies[job])
        graph = _without_back_edges(graph)
        ids = {name: i for i, name in enumerate(sorted(graph))}
        lines = ["digraph snakemake_dag {"]
        lines += [f'\t{ids[n]}[label = "{n}"];' for n in sorted(graph)]
        lines += [f"\t{ids[d]} -> {ids[n]}" for n in sorted(graph) for d in sorted(graph[n])]
        record["rulegraph_dot"] = "\n".join(lines + ["}"]) + "\n"
        record["jobs_per_rule"] = dict(sorted(counts.items()))
    except Exception as exc:  # noqa: BLE001 - the dossier says the graph is unavailable instead
        record["rulegraph_error"] = f"{type(exc).__name__}: {exc}"
    return record


def federated_deep_local(wildcards):
    """federated_deep.smk: the site's own private state of the previous round (none in round 1)."""
    r = int(wildcards.round)
    return [] if r == 1 else [R(Results.FEDERATED_DEEP_LOCAL, site=wildcards.site, round=r - 1)]
