"""Answers to the reporting checklists (TRIPOD+AI 2024, CLEAR 2023), derived from the run's results.

The checklist files (``acceflow/report/checklists/*.yaml``) hold each item's number, section and
paraphrased text, and name an *answer*: a function of this module that reads the run (the
:class:`~acceflow.report.view.ResultsView`: which results files exist, the model card, the comparison
tables, the outcome type, segmentation, the deep model, calibration, decision curves, external
cohorts ...) and says whether and where the dossier shows the item, with a note built from the
run's own values. An item without an answer, or whose answer finds nothing in the run, is the
authors' to complete, and says so with the reason. No answer is fixed text: a run with comparator
models says where their paired tests are, a run without says that none was built.

Each answer returns an :class:`Answer` (``covered``: the run shows the item; ``partly``: the run
shows part of it and the authors complete it) or ``None`` together with the reason (``author``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property

from acceflow.report import html as h
from acceflow.report.figures import feature_group
from acceflow.report.view import Results, ResultsView
from acceflow.study.task import task_for

__all__ = ["Answer", "RunFacts", "ANSWERS", "answer_item"]

COVERED, PARTLY, AUTHOR = "covered", "partly", "author"


@dataclass(frozen=True)
class Answer:
    """An item's answer: ``status`` (``covered``, ``partly`` or ``author``), ``where`` (a dossier
    anchor ``#...``, a results file relative to the results folder, or ``None``) and ``note``
    (HTML, built from the run's values)."""

    status: str
    where: str | None
    note: str


class RunFacts:
    """What the checklist answers need to know about one run, each read from its results files."""

    def __init__(self, view: ResultsView):
        self.view = view
        self.config: Mapping = view.config or {}
        self.card: dict = view.card
        self.cohorts = list(view.cohorts)
        self.external = [c for c in self.cohorts if c != "train"]

    # ------------------------------------------------------------------ data and features
    @property
    def images(self) -> bool:
        """The run started from images (not from a feature table)."""
        return bool((self.config.get("input") or {}).get("images")) or self.view.exists(Results.SCANS)

    @cached_property
    def cohort_rows(self) -> list[dict]:
        t = self.view.tsv(Results.COHORTS, dtype={"cohort": str})
        return [] if t is None else t.to_dict("records")

    @cached_property
    def qc(self):
        return self.view.tsv(Results.QC, dtype={"case_id": str})

    @property
    def n_excluded(self) -> int | None:
        qc = self.qc
        if qc is None or "status" not in qc:
            return None
        extra = self.view.tsv(Results.EXTRACTION_QC, dtype={"case_id": str})
        n = int((qc["status"] != "ok").sum())
        if extra is not None and "status" in extra:
            n += int((extra["status"] != "ok").sum())
        return n

    @property
    def n_candidate(self):
        return (self.view.json(Results.FEATURE_SUMMARY) or {}).get("n_candidate_features")

    @cached_property
    def icc(self):
        t = self.view.tsv(Results.ICC)
        return t if t is not None and len(t) else None

    @property
    def n_stable(self):
        return None if self.icc is None or "stable" not in self.icc else int(self.icc["stable"].astype(bool).sum())

    @property
    def icc_design(self) -> str | None:
        if self.icc is None:
            return None
        if "design" in self.icc and self.icc["design"].notna().any():
            return ", ".join(sorted(map(str, self.icc["design"].dropna().unique())))
        return "repeated measurements"

    @property
    def icc_forms(self) -> str:
        if self.icc is None or "icc_form" not in self.icc:
            return ""
        return ", ".join(sorted(map(str, self.icc["icc_form"].dropna().unique())))

    @cached_property
    def segmentation_agreement(self):
        t = self.view.tsv(Results.SEGMENTATION_AGREEMENT)
        return t if t is not None and len(t) else None

    @property
    def segmentation_source(self) -> str | None:
        return (self.config.get("segmentation") or {}).get("source") if self.images else None

    @property
    def segmentation_model(self) -> bool:
        return self.segmentation_source == "model" or self.view.exists(Results.SEGMENTATION_QUALITY_SUMMARY)

    # ------------------------------------------------------------------------- the model
    @property
    def survival(self) -> bool:
        return self.view.survival

    @property
    def outcome(self) -> Mapping:
        return self.card.get("outcome") or self.config.get("outcome") or {}

    @property
    def pipeline(self) -> list[str]:
        return [str(s) for s in self.card.get("pipeline") or []]

    def steps(self, *words) -> list[str]:
        return [s for s in self.pipeline if any(w in s.lower() for w in words)]

    @property
    def harmonisation(self) -> str:
        return (self.card.get("harmonisation") or {}).get("method", "none")

    @cached_property
    def comparators(self) -> list[str]:
        found = set()
        for c in self.cohorts:
            found.update(self.view.comparators(c))
        return sorted(found)

    @cached_property
    def comparisons(self) -> dict:
        """Cohort -> the paired model-comparison table (``model_comparison.tsv``) of that cohort."""
        out = {}
        for c in self.cohorts:
            t = self.view.tsv(Results.MODEL_COMPARISON, cohort=c)
            if t is not None and len(t):
                out[c] = t
        return out

    @property
    def deep(self) -> bool:
        return bool(self.view.json(Results.MODEL_CARD, "deep")) or "deep" in self.comparators

    def metrics(self, c):
        return self.view.metrics(c)

    def has(self, template, cohorts=None) -> list[str]:
        """The cohorts (``train`` and external) with this per-cohort file."""
        return [c for c in (cohorts or self.cohorts) if self.view.exists(template, cohort=c)]


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _cohorts(cs) -> str:
    return ", ".join(h.e(c) for c in cs) or "none"


def _model_names(f: RunFacts) -> str:
    primary = f.card.get("model") or "primary"
    return f"{h.e(primary)} (primary), " + ", ".join(h.e(m) for m in f.comparators)


# ---------------------------------------------------------------------------------- answers
# Each: RunFacts -> Answer, or a str: the reason the item is the authors' in this run.


def a_checklists(f):
    return Answer(COVERED, "#checklists", "This appendix: each item answered from the run's results.")


def a_sample_size(f):
    epv = (f.view.summary or {}).get("events_per_variable")
    if epv is None:
        return "No events-per-variable figure could be computed from the run."
    return Answer(PARTLY, "#limitations", f"Events per candidate variable in training: {h.num(epv)}; events per "
                  "external cohort are checked among the limitations. The sample size calculation is the authors'.")


def a_exclusions(f):
    n = f.n_excluded
    if n is None:
        return "No quality-control table (ingest/qc.tsv) in this run."
    return Answer(PARTLY, "#exclusions", f"{n} of {len(f.qc)} entries excluded by quality control, each with its "
                  "reason; clinical eligibility criteria and the flow diagram are the authors'.")


def a_rulegraph(f):
    if not f.view.rulegraph_svg:
        return "No rule graph was recorded for this run."
    return Answer(COVERED, "#rulegraph", "The workflow's rule graph as run (Snakemake).")


def a_cohorts(f):
    rows = f.cohort_rows
    if not rows:
        return "No cohort table (features/cohorts.tsv) in this run."
    text = "; ".join(f"{h.e(r['cohort'])} ({h.e(r['role'])}, {h.num(h.count(r['n']))} cases"
                     + (f", {h.num(h.count(r['n_events']))} events" if h.count(r.get("n_events")) is not None else "")
                     + ")" for r in rows)
    return Answer(PARTLY, "#study", f"{len(rows)} cohort(s): {text}. Institutions, dates and setting are the authors'.")


def a_split(f):
    train = f.card.get("training_cohorts") or []
    iv = f.card.get("internal_validation") or "not recorded"
    return Answer(COVERED, "#clinical", f"Development on {_cohorts(train)} (internal validation: {h.e(iv)}); "
                  + (f"external validation on {_cohorts(f.external)}." if f.external
                     else "no external cohort: internal validation only."))


def a_clinical_predictors(f):
    clinical = list(f.config.get("clinical") or [])
    if not clinical:
        return Answer(COVERED, "#config", "No non-radiomic predictor was used in this run (<code>clinical</code> "
                      "is empty).")
    return Answer(PARTLY, "#config", f"Clinical covariates: {', '.join(f'<code>{h.e(c)}</code>' for c in clinical)}; "
                  "their definitions and measurement are the authors'.")


def a_outcome(f):
    o = f.outcome
    if task_for(o).time_to_event:
        what = (f"time to event: time <code>{h.e(o.get('time'))}</code> (days), event <code>{h.e(o.get('event'))}"
                f"</code>" + (f", horizons {h.e(o.get('horizons'))} days" if o.get("horizons") else ""))
    else:
        what = f"binary: <code>{h.e(o.get('column'))}</code> = <code>{h.e(o.get('positive'))}</code>"
    return Answer(PARTLY, "#study", f"Outcome {what}. How and when it was assessed is the authors'.")


def a_segmentation(f):
    if not f.images:
        return "The run started from a feature table: segmentation happened before it."
    src = f.segmentation_source or "reference"
    text = {"reference": "reference masks supplied with the images (the authors describe who drew them)",
            "otsu": "automatic Otsu thresholding within the supplied region",
            "model": "a MONAI network trained on the training cohorts' reference masks (section 2b)"}.get(src, src)
    return Answer(COVERED if src != "reference" else PARTLY, "#segmentation" if src == "model" else "#config",
                  f"<code>segmentation.source: {h.e(src)}</code>: {text}.")


def a_preprocessing(f):
    if not f.images:
        return "The run started from a feature table: image pre-processing happened before it."
    p = f.config.get("preprocessing") or {}
    keys = ", ".join(f"{h.e(k)} = {h.e(v)}" for k, v in p.items()) or "defaults"
    return Answer(COVERED, "#config", f"<code>preprocessing</code> as run: {keys}.")


def a_resampling(f):
    if not f.images:
        return "The run started from a feature table: resampling happened before it."
    p = f.config.get("preprocessing") or {}
    return Answer(COVERED, "#config", f"Spacing {h.e(p.get('spacing', 'as schema default'))} mm, image "
                  f"interpolator {h.e(p.get('image_interpolator', 'schema default'))}, mask interpolator "
                  f"{h.e(p.get('mask_interpolator', 'schema default'))}.")


def a_extraction_settings(f):
    if not f.images:
        return "The run started from a feature table: the extraction settings are the authors' to report."
    params = (f.config.get("extraction") or {}).get("params", "config/radiomics/default.yaml")
    return Answer(COVERED, "#config", f"The pyradiomics parameter file <code>{h.e(params)}</code> (checksummed in the "
                  "provenance).")


def a_software(f):
    if not f.images:
        return "The run started from a feature table: the extraction software is the authors' to report."
    v = ((f.view.provenance or {}).get("versions") or {}).get("pyradiomics")
    return Answer(COVERED, "#versions", f"Extraction software: pyradiomics {h.e(v or '(version not recorded)')}.")


def a_feature_classes(f):
    groups = sorted({feature_group(x)[0] for x in f.card.get("features") or []})
    if not groups:
        return "The model card names no features."
    return Answer(COVERED, "#model", f"Model inputs by class: {', '.join(h.e(g) for g in groups)}.")


def a_n_features(f):
    parts = []
    if f.n_candidate is not None:
        parts.append(f"{h.num(h.count(f.n_candidate))} candidate features")
    if f.n_stable is not None:
        parts.append(f"{f.n_stable} of {len(f.icc)} assessed stable")
    if f.card.get("features") is not None:
        parts.append(f"{len(f.card['features'])} model inputs")
    nz = sum(1 for v in (f.card.get("coefficients") or {}).values() if h.isnum(v) and v != 0)
    if nz:
        parts.append(f"{nz} non-zero coefficients")
    if not parts:
        return "No feature count in the run's results."
    return Answer(COVERED, "#study", "; ".join(parts) + ".")


def a_defaults(f):
    filled = (f.view.provenance or {}).get("defaults_filled")
    if filled is None:
        return Answer(PARTLY, "#config", "The configuration as run is shown in full.")
    return Answer(COVERED, "#config", f"The configuration as run in full; {len(filled)} key(s) took the schema's "
                  "default (listed there).")


def a_missing(f):
    imp = f.steps("imput")
    n = f.n_excluded
    parts = ([f"model pipeline step {h.e(imp[0])} (fitted inside each training fold)"] if imp else []) + (
        [f"{n} entries excluded with reasons"] if n is not None else [])
    if not parts:
        return "Neither an imputation step nor an exclusion table in this run."
    return Answer(COVERED, "#model" if imp else "#exclusions", _cap("; ".join(parts)) + ".")


def a_imbalance(f):
    rows = [r for r in f.cohort_rows if r.get("role") == "training"]
    prev = [r.get("prevalence") for r in rows if h.isnum(r.get("prevalence"))]
    steps = f.steps("balanc", "smote", "sampl", "weight")
    if f.survival:
        return Answer(PARTLY, "#study", "Time-to-event outcome: events and censoring per cohort; any handling of "
                      "imbalance is the authors'.")
    text = (f"Training prevalence {h.num(sum(prev) / len(prev))}; " if prev else "") + (
        f"model pipeline step(s): {h.e('; '.join(steps))}." if steps else
        "no resampling or class weighting in the model pipeline.")
    return Answer(COVERED, "#study", _cap(text))


def a_segmentation_reliability(f):
    seg = f.segmentation_agreement
    parts, where = [], "#analytical"
    if seg is not None and "dice" in seg:
        parts.append(f"Dice between repeated masks: median {h.num(seg['dice'].median())} over {len(seg)} pairs")
    if f.view.exists(Results.SEGMENTATION_ICC):
        parts.append("feature ICC across sampled model segmentations")
    if f.view.exists(Results.SEGMENTATION_QUALITY_SUMMARY):
        parts.append("model segmentation against reference masks (Dice, HD95)")
        where = "#segmentation"
    if f.icc is not None:
        parts.append(f"feature reproducibility ({h.e(f.icc_design)}, {h.e(f.icc_forms)})")
    if not parts:
        return "No repeated segmentation or repeated measurement in this run: reliability was not assessed."
    return Answer(COVERED if seg is not None or where == "#segmentation" else PARTLY, where, _cap("; ".join(parts)) + ".")


def a_scaling(f):
    s = f.steps("scal", "standard", "combat")
    if not s:
        return "The model card records no scaling step."
    return Answer(COVERED, "#model", f"Pipeline step(s) fitted inside each training fold: {h.e('; '.join(s))}.")


def a_dimension(f):
    parts = []
    if f.n_stable is not None:
        parts.append(f"reproducibility filter ({f.n_stable} of {len(f.icc)} features stable)")
    sel = f.steps("select", "correl", "drop")
    if sel:
        parts.append(h.e("; ".join(sel)))
    learner = f.card.get("learner")
    if learner:
        parts.append(f"learner {h.e(learner)}")
    if not parts:
        return "The model card records no dimension reduction."
    return Answer(COVERED, "#model", _cap("; ".join(parts)) + ".")


def a_algorithm(f):
    if not f.card:
        return "No model card in this run."
    hp = f.card.get("hyperparameters") or {}
    return Answer(COVERED, "#model", f"Learner {h.e(f.card.get('learner'))}; hyper-parameters "
                  + (", ".join(f"{h.e(k)} = {h.e(v)}" for k, v in hp.items()) or "none") + ".")


def a_tuning(f):
    if not f.card:
        return "No model card in this run."
    hp = f.card.get("hyperparameters") or {}
    inner = hp.get("inner_folds")
    return Answer(COVERED, "#model", (f"Hyper-parameters chosen by inner {h.e(inner)}-fold cross-validation; "
                                      "internal validation: "
                                      if inner else "Internal validation: ") + f"{h.e(f.card.get('internal_validation', '—'))}.")


def a_confounders(f):
    if f.harmonisation == "none":
        return "No harmonisation or confounder adjustment in this run (model.harmonisation: none)."
    return Answer(PARTLY, "#analytical", f"Site effect: {h.e(f.harmonisation)} harmonisation inside the model "
                  "pipeline (fitted on the training folds); other confounders are the authors'.")


def a_testing(f):
    return Answer(COVERED, "#clinical", (f"External validation on {_cohorts(f.external)} with the frozen model"
                                         if f.external else "Internal validation only (no external cohort)")
                  + f"; internal: {h.e(f.card.get('internal_validation', '—'))}.")


def a_metrics(f):
    names = ["Harrell's and Uno's C, time-dependent AUC" if f.survival else "AUC, Brier score"]
    if f.has(Results.CALIBRATION):
        names.append("calibration" + (" at the horizon" if f.survival else " (intercept, slope, ICI)"))
    if f.has(Results.DECISION_CURVE):
        names.append("net benefit (decision curves)")
    return Answer(COVERED, "#utility" if len(names) > 1 else "#discrimination", ", ".join(names) + ".")


def a_uncertainty(f):
    methods = sorted({str(f.metrics(c).get("auc_ci_method") or ("bootstrap" if f.survival else ""))
                      for c in f.cohorts} - {""})
    if not any(f.metrics(c) for c in f.cohorts):
        return "No performance metrics in this run."
    return Answer(COVERED, "#discrimination", "95% confidence intervals for every estimate"
                  + (f" ({h.e(', '.join(methods))})" if methods else "") + ".")


def a_comparison_test(f):
    if f.comparisons:
        t = next(iter(f.comparisons.values()))
        ref = t["reference"].iloc[0] if "reference" in t else "the reference model"
        return Answer(COVERED, "#model-comparison", f"Paired DeLong test of each model's AUC against "
                      f"{h.e(ref)} on {_cohorts(list(f.comparisons))}; models: {_model_names(f)}.")
    if f.comparators:
        return Answer(PARTLY, "#clinical", f"Comparator models {', '.join(map(h.e, f.comparators))} evaluated on the "
                      "same cohorts with their own CIs; no paired test in this run.")
    return "No comparator model was built in this run (model.comparators): there is no comparison to report."


def a_model_building(f):
    a, t = a_algorithm(f), a_tuning(f)
    if isinstance(a, str):
        return a
    return Answer(COVERED, "#model", f"{a.note} {t.note} Pipeline: {h.e('; '.join(f.pipeline) or 'not recorded')}.")


def _non_radiomic(f):
    return [m for m in f.comparators if m == "clinical" or m.startswith("combined")]


def a_comparison_methods(f, where="#clinical"):
    kinds = _non_radiomic(f)
    if kinds:
        return Answer(COVERED, "#model-comparison" if f.comparisons else where,
                      f"Clinical-only and combined comparators built in this run: {', '.join(map(h.e, kinds))}"
                      + (" (paired DeLong tests against the clinical baseline)." if f.comparisons else "."))
    if f.comparators:
        return Answer(PARTLY, "#clinical", f"Comparators built: {', '.join(map(h.e, f.comparators))}; no clinical-only "
                      "or combined model (no clinical covariates).")
    return "No comparator model was built in this run: no non-radiomic or combined method to compare."


def a_explain(f):
    parts = []
    if f.card.get("coefficients"):
        parts.append("coefficients of the frozen model")
    if f.view.exists(Results.COEFFICIENTS):
        parts.append("bootstrap CIs and selection frequency of the coefficients")
    if f.has(Results.PERMUTATION_IMPORTANCE):
        parts.append(f"permutation importance on {_cohorts(f.has(Results.PERMUTATION_IMPORTANCE))}")
    if f.deep and any(f.view.exists(Results.GRADCAM, cohort=c) for c in f.cohorts):
        parts.append("Grad-CAM maps of the deep model")
    if not parts:
        return "No explanation of the model in this run."
    return Answer(COVERED, "#model", _cap("; ".join(parts)) + ".")


def a_feature_stats(f):
    if f.icc is None:
        return "Reproducibility was not assessed in this run (no repeated measurements)."
    return Answer(COVERED, "analytical/icc.tsv", f"{len(f.icc)} features: {h.e(f.icc_forms)} with 95% CIs "
                  f"({h.e(f.icc_design)}); {f.n_stable} stable.")


def a_performance(f):
    key = "c_index" if f.survival else "auc"
    vals = "; ".join(f"{h.e(c)}: {h.num(f.metrics(c).get(key))}" for c in f.cohorts if f.metrics(c))
    if not vals:
        return "No performance metrics in this run."
    return Answer(COVERED, "#discrimination", f"{'Harrell C' if f.survival else 'AUC'} per cohort with 95% CI ({vals}).")


def a_decision_curves(f):
    dc = f.has(Results.DECISION_CURVE)
    if not dc:
        return "No decision curve in this run."
    return Answer(PARTLY, "#decision-curve", f"Decision curves on {_cohorts(dc)}, with the threshold range where the "
                  "model beats treat-all and treat-none; the clinical discussion is the authors'.")


def a_limitations(f):
    n = len((f.view.summary or {}).get("limitations") or [])
    return Answer(PARTLY, "#limitations", f"{n} limitation(s) detected from the results; others are the authors'.")


def a_feature_data(f):
    if not f.view.exists(Results.FEATURES):
        return "No feature table in the results."
    return Answer(COVERED, Results.FEATURES, "The feature table of the run (share it if the data use allows).")


def a_settings(f):
    if not f.view.exists(Results.PROVENANCE) and not f.view.provenance:
        return "No provenance record in this run."
    return Answer(COVERED, Results.PROVENANCE, "Configuration as run, input and parameter-file checksums, acceflow "
                  f"commit {h.e((f.view.provenance or {}).get('commit') or 'not recorded')}.")


def a_code(f):
    commit = (f.view.provenance or {}).get("commit")
    return Answer(PARTLY, "#appendix", f"acceflow commit {h.e(commit or 'not recorded')}, package versions; the "
                  "repository address is the authors'.")


def a_model_file(f):
    if not f.card.get("model_file"):
        return "No frozen model file recorded in the model card."
    return Answer(COVERED, Results.MODEL_CARD, f"Frozen model <code>{h.e(f.card['model_file'])}</code>, SHA-256 "
                  f"{h.e(str(f.card.get('model_sha256'))[:12])}…")


def a_objectives(f):
    return Answer(PARTLY, "#clinical", "Development with " + ("external validation." if f.external else
                                                              "internal validation only."))


def a_centres(f):
    if not f.cohort_rows:
        return "No cohort table in this run."
    return Answer(PARTLY, "#study", f"{len(f.cohort_rows)} cohort(s) (centres): {_cohorts(r['cohort'] for r in f.cohort_rows)}; "
                  "setting and location are the authors'.")


def a_data_quality(f):
    return Answer(PARTLY, "#exclusions", "Quality control at ingest and extraction with reasons"
                  + ("; pre-processing settings in the configuration" if f.images else "")
                  + ". Comparison across sociodemographic groups is the authors'.")


def a_predictors_choice(f):
    if f.icc is None:
        return Answer(PARTLY, "#study", "Every candidate feature entered the model (reproducibility not assessed); "
                      "the choice of candidates is the authors'.")
    return Answer(PARTLY, "#analytical", f"Pre-selection by reproducibility: {f.n_stable} of {len(f.icc)} features "
                  "stable; the choice of candidates is the authors'.")


def a_predictor_definition(f):
    if not f.images:
        return "The run started from a feature table: predictor definitions are the authors'."
    return a_extraction_settings(f)


def a_heterogeneity(f):
    if not f.external:
        return "A single training site: no heterogeneity across clusters could be assessed."
    return Answer(PARTLY, "#discrimination", f"Performance per cohort ({_cohorts(f.cohorts)}) side by side; no pooled "
                  "heterogeneity estimate.")


def a_updating(f):
    recal = f.has(Results.RECALIBRATION)
    if not recal:
        return "The frozen model was not updated in this run."
    return Answer(PARTLY, "#utility", f"Recalibration on {_cohorts(recal)}, judged by cross-validation within the "
                  "cohort; the frozen model itself is not changed.")


def a_model_output(f):
    thr = (f.card.get("threshold") or {})
    text = "Risk scores and predicted risk at the horizon" if f.survival else "Predicted probabilities"
    if thr:
        text += f"; operating point {h.num(thr.get('value'))} fixed on training ({h.e(thr.get('method'))})"
    if f.has(Results.DECISION_CURVE):
        text += "; threshold ranges from the decision curves"
    return Answer(COVERED, "#decision-curve" if f.has(Results.DECISION_CURVE) else "#clinical", text + ".")


def a_case_mix(f):
    if not f.external:
        return "No evaluation data set other than the training data."
    return a_cohorts(f)


def a_participants_flow(f):
    a = a_cohorts(f)
    if isinstance(a, str):
        return a
    return Answer(PARTLY, "#study", f"Cases and {'events' if f.survival else 'outcome events'} per cohort after "
                  f"{f.n_excluded if f.n_excluded is not None else 'no recorded'} exclusions; follow-up summary and "
                  "flow diagram are the authors'.")


def a_n_per_analysis(f):
    rows = [f"{h.e(c)}: n = {h.num(h.count(f.metrics(c).get('n')))}, {h.num(h.count(f.metrics(c).get('n_events')))} "
            "events" for c in f.cohorts if f.metrics(c)]
    if not rows:
        return "No performance metrics in this run."
    return Answer(COVERED, "#discrimination", "Per cohort: " + "; ".join(rows) + ".")


def a_model_spec(f):
    if not f.card:
        return "No model card in this run."
    return Answer(COVERED, "#model", ("Coefficients in the dossier" if f.card.get("coefficients") else "Model card")
                  + f"; the frozen model <code>{h.e(f.card.get('model_file'))}</code> with its SHA-256 in clinical/model/.")


def a_usability(f):
    return a_exclusions(f)



ANSWERS: dict[str, Callable] = {name[2:]: fn for name, fn in globals().items()
                                if name.startswith("a_") and callable(fn)}


def answer_item(item: Mapping, facts: RunFacts) -> Answer:
    """The answer to one checklist item (``item["answer"]`` names a function of :data:`ANSWERS`;
    without it, or when the run cannot answer, the item is the authors', with the reason)."""
    name = item.get("answer")
    author_note = item.get("author_note", "")
    if not name:
        return Answer(AUTHOR, None, author_note)
    try:
        result = ANSWERS[name](facts)
    except KeyError as exc:
        raise KeyError(f"checklist item {item.get('id')}: unknown answer {name!r}; known: {sorted(ANSWERS)}") from exc
    if isinstance(result, Answer):
        return result
    return Answer(AUTHOR, None, " ".join(x for x in (str(result), author_note) if x))
