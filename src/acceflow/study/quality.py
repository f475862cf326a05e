"""METRICS and the Radiomics Quality Score, scored from a run's own results and the config's ``study:`` section.

Two published quality tools for radiomics studies:

* **METRICS** (Kocak B et al. *METhodological RadiomICs Score (METRICS): a quality scoring tool for
  radiomics research endorsed by EuSoMII.* Insights Imaging 2024;15:8): 30 items in 9 categories, each
  with a weight; score = Σ weights of the items met / Σ weights of the applicable items × 100 (%). Items
  whose condition (segmentation, fully automated segmentation, hand-crafted features, tabular data,
  end-to-end deep learning) is "no" leave both sums.
* **RQS** (Lambin P et al. *Radiomics: the bridge between medical imaging and personalized medicine.*
  Nat Rev Clin Oncol 2017;14:749–762): 16 items, total from −8 to 36, also given as total / 36 × 100 (%).

Items and weights / points are data (``quality_tools/metrics.yaml``, ``rqs.yaml``, with their source).
Each item is answered from one of three places, recorded as its ``source``:

1. the run's results (files of :class:`~acceflow.study.results.Results`: the model card, ICC table,
   calibration, decision curves, model comparison, ...) — what the workflow itself did;
2. the config's ``study:`` section (eligibility criteria, reference standard, prospective design, open
   data, ...), for what only the authors know: ``true`` or a non-empty text = met, ``false`` = not met;
3. neither: the item is **author to answer**, scored as not met and listed as missing.

A ``study:`` answer may also claim an item the run cannot show (e.g. ``study.confounders`` when the model
does not harmonise); it never overrides what the run shows it did.

:func:`gather_facts` reads the results folder into a flat dict of facts; :func:`score_metrics` and
:func:`score_rqs` are pure functions of ``(facts, study)``, so a test changes one fact and sees one item
move; :func:`quality_scores` does both and is what the ``quality_scores`` rule writes as
``report/quality_scores.json``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import yaml

from acceflow.study.results import Results, comparator, path_in
from acceflow.study.settings import DANN_KIND, DEEP_FEDERATED_KIND, DEEP_KIND, model_names, section_settings
from acceflow.study.task import task_for

__all__ = ["AUTHOR", "gather_facts", "load_tool", "quality_scores", "score_metrics", "score_rqs"]

#: The answer of an item that neither the run nor the ``study:`` section answers.
AUTHOR = "author to answer"

_TOOLS = Path(__file__).with_name("quality_tools")


def load_tool(name: str) -> dict:
    """The item list of ``"metrics"`` or ``"rqs"`` (``quality_tools/{name}.yaml``: name, reference, items)."""
    if name not in ("metrics", "rqs"):
        raise ValueError(f"quality tool {name!r}: use 'metrics' or 'rqs'")
    with open(_TOOLS / f"{name}.yaml", encoding="utf-8") as fh:
        return yaml.safe_load(fh)


# ------------------------------------------------------------------------------------------ facts


def _json(path: Path) -> dict | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _tsv(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path, sep="\t")
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return None


def _reduction(card: Mapping, repro_filter: bool) -> list[str]:
    """The dimension-reduction steps the primary model's pipeline applied (from its card)."""
    steps = []
    if repro_filter:
        steps.append("reproducibility filter (stable features only)")
    hp = card.get("hyperparameters") or {}
    if hp.get("selection") not in (None, "none"):
        steps.append(f"{hp['selection']} feature selection")
    if hp.get("correlation_threshold") is not None:
        steps.append(f"correlation filter (|r| > {hp['correlation_threshold']})")
    learner = card.get("learner")
    learners = learner if isinstance(learner, list) else [learner]
    if any(str(x) in ("l1_logistic", "elasticnet_logistic") for x in learners):
        steps.append(f"L1-penalised learner ({'/'.join(map(str, learners))})")
    l1 = hp.get("l1_ratio", hp.get("cox_l1_ratio"))
    if task_for(card).time_to_event and (l1 is None or float(l1) > 0):
        steps.append("elastic-net penalised Cox model")
    return steps


def gather_facts(results_dir: str | os.PathLike, config: Mapping) -> dict:
    """What the run did, read from its results folder (and the config as run), as a flat dict.

    Keys (each ``None`` when the run holds no file to tell): ``images`` (image entry, bool),
    ``segmentation_source`` (``reference``/``otsu``/``model``/None), ``reproducibility_assessed``,
    ``reproducibility_design``, ``n_stable``, ``stable_filter`` (the model saw stable features only),
    ``harmonisation`` (``combat``/``none``), ``feature_reduction`` (list of steps), ``n_events_train``,
    ``n_final_features``, ``events_per_final_feature``, ``primary``, ``comparators``, ``deep``,
    ``clinical_comparison`` / ``model_comparison`` (a paired comparison file exists against the
    clinical-only model / any model), ``combined_model``, ``n_cohorts``, ``external_cohorts`` (with
    metrics), ``discrimination_ci``, ``internal_resampling``, ``calibration_cohorts``,
    ``calibration_oof`` (calibration of out-of-fold predictions), ``decision_curve_cohorts``,
    ``segmentation_quality``, ``segmentation_icc``, ``deep_icc``, ``ibsi_match_rate``, ``n_modalities``,
    ``survival``, ``internal_validation`` (text).
    """
    root = Path(results_dir)
    card = _json(path_in(root, Results.MODEL_CARD)) or {}
    primary, comparators = model_names(dict(config))
    images = bool((config.get("input") or {}).get("images"))
    repro = config.get("reproducibility") or {}
    icc = _tsv(path_in(root, Results.ICC))
    assessed = icc is not None and len(icc) > 0
    design = (str(icc["design"].iloc[0]) if assessed and "design" in icc else repro.get("design")) if assessed else None
    n_stable = int(icc["stable"].astype(str).str.lower().isin(["true", "1", "1.0"]).sum()) if assessed else None
    stable_filter = bool(assessed and repro.get("filter_model_features", True) and n_stable)
    external = [c for c in (config.get("cohorts") or {}).get("external") or []
                if path_in(root, Results.METRICS, cohort=c).is_file()]
    cohorts_tab = _tsv(path_in(root, Results.COHORTS))
    n_cohorts = len(cohorts_tab) if cohorts_tab is not None else None
    all_cohorts = ["train", *external]
    train_metrics = _json(path_in(root, Results.METRICS, cohort="train")) or {}
    ci = any(k in train_metrics for k in ("auc_ci_low", "c_index_ci_low", "harrell_c_ci_low"))
    calib = [c for c in all_cohorts if path_in(root, Results.CALIBRATION, cohort=c).is_file()]
    dca = [c for c in all_cohorts if path_in(root, Results.DECISION_CURVE, cohort=c).is_file()]
    comparisons = [_tsv(path_in(root, Results.MODEL_COMPARISON, cohort=c)) for c in all_cohorts]
    comparisons = [t for t in comparisons if t is not None and len(t)]
    refs = {str(r) for t in comparisons if "reference" in t for r in t["reference"].dropna()}
    models = {str(m) for t in comparisons if "model" in t for m in t["model"].dropna()}
    scans = _tsv(path_in(root, Results.SCANS)) if images else None
    n_events = card.get("n_events_train")
    n_final = card.get("n_nonzero", len(card.get("features") or []) or None)
    ibsi = _tsv(path_in(root, Results.IBSI_SUMMARY))
    ibsi_rate = None
    if ibsi is not None and len(ibsi) and "n_computed" in ibsi:
        done = ibsi[(pd.to_numeric(ibsi["n_computed"], errors="coerce") > 0)
                    & (ibsi["configuration"].astype(str) != "study")]
        if len(done):
            ibsi_rate = float(pd.to_numeric(done["n_match"]).sum() / pd.to_numeric(done["n_computed"]).sum())
    deep_card = _json(path_in(root, comparator(Results.MODEL_CARD, DEEP_KIND)))
    return {
        "images": images,
        "segmentation_source": (config.get("segmentation") or {}).get("source") if images else None,
        "reproducibility_assessed": assessed,
        "reproducibility_design": design,
        "n_stable": n_stable,
        "stable_filter": stable_filter,
        "harmonisation": (card.get("harmonisation") or {}).get("method"),
        "feature_reduction": _reduction(card, stable_filter) if card else None,
        "n_events_train": n_events,
        "n_final_features": n_final,
        "events_per_final_feature": (n_events / n_final) if n_events is not None and n_final else None,
        "primary": card.get("model", primary),
        "comparators": list(comparators),
        "deep": DEEP_KIND in [primary, *comparators] and (deep_card is not None or card.get("model") == DEEP_KIND),
        "model_comparison": bool(comparisons),
        "clinical_comparison": bool(comparisons) and "clinical" in (refs | models) and primary != "clinical",
        "combined_model": (any(m.startswith("combined") for m in [primary, *comparators])
                           or bool((config.get("model") or {}).get("include_clinical"))),
        "n_cohorts": n_cohorts,
        "external_cohorts": external,
        "discrimination_ci": ci,
        "internal_resampling": path_in(root, Results.CV_FOLDS, cohort="train").is_file() or bool(
            card.get("internal_validation")),
        "calibration_cohorts": calib,
        "calibration_oof": "train" in calib,
        "decision_curve_cohorts": dca,
        "segmentation_quality": path_in(root, Results.SEGMENTATION_QUALITY_SUMMARY).is_file(),
        "segmentation_icc": path_in(root, Results.SEGMENTATION_ICC).is_file(),
        "deep_icc": path_in(root, Results.DEEP_ICC).is_file(),
        "ibsi_match_rate": ibsi_rate,
        "n_modalities": (int(scans["modality"].nunique()) if scans is not None and "modality" in scans else None),
        "survival": task_for(card).time_to_event if card else task_for(dict(config)).time_to_event,
        "internal_validation": card.get("internal_validation"),
    }


# ------------------------------------------------------------------------------------------ scoring


def _study_answer(study: Mapping, key: str | None):
    """``(met, source)`` from ``study.<key>``: true / non-empty text = met, false = not, null = author."""
    if not key:
        return None, None
    value = study.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, None
    met = bool(value) if not isinstance(value, str) else True
    text = f"config: study.{key}" + (f" ({value.strip()})" if isinstance(value, str) else f" = {str(value).lower()}")
    return met, text


def _item(base: Mapping, met, source: str, note: str = "") -> dict:
    return {**base, "answer": AUTHOR if met is None else ("yes" if met else "no"), "met": bool(met),
            "source": source, "note": note}


def _metrics_conditions(f: Mapping, study: Mapping) -> dict:
    """Each METRICS condition: ``(True/False/None, source)``; None = unknown (items stay applicable)."""
    src = f.get("segmentation_source")
    cond = {}
    if f.get("images"):
        cond["segmentation"] = (True, f"run: image entry, masks from segmentation.source = {src}")
        auto = src in ("otsu", "model")
        cond["automated_segmentation"] = (auto, f"run: segmentation.source = {src}")
        cond["handcrafted"] = (True, "run: pyradiomics features extracted from the images")
    else:
        for key, skey in (("segmentation", "segmentation"), ("automated_segmentation", "automated_segmentation"),
                          ("handcrafted", "handcrafted_features")):
            met, s = _study_answer(study, skey)
            cond[key] = (met, s or f"feature-table entry: {AUTHOR} (study.{skey})")
    kinds = [f.get("primary"), *(f.get("comparators") or [])]
    cond["tabular"] = (any(k not in (DEEP_KIND, DANN_KIND, DEEP_FEDERATED_KIND) for k in kinds if k), "run: a model on a feature table")
    cond["deep_learning"] = (bool(f.get("deep")), "run: deep model " + ("built" if f.get("deep") else "not built"))
    return cond


def _metrics_item(i: int, f: Mapping, study: Mapping):
    """``(met, source, note)`` of METRICS item ``i`` from the facts; ``met`` None = not answered by the run."""
    images, src = f.get("images"), f.get("segmentation_source")
    if i == 4 and (f.get("n_cohorts") or 0) >= 2:
        return True, f"run: {f['n_cohorts']} cohorts ({Results.COHORTS})", "Each cohort is taken as a centre."
    if i == 8 and src in ("otsu", "model"):
        return True, f"run: segmentation.source = {src} (method and settings in the config as run)", ""
    if i == 9:
        if f.get("segmentation_quality"):
            return True, f"run: {Results.SEGMENTATION_QUALITY_SUMMARY}", "Automatic masks against the reference masks."
        if src == "otsu":
            return False, "run: Otsu masks, no reference to evaluate them against", ""
    if i == 10 and src in ("otsu", "model"):
        return True, f"run: every mask from the automated tool (segmentation.source = {src})", ""
    if images and i == 11:
        return True, "run: preprocessing.* in the config as run (resampling, intensity handling)", ""
    if images and i == 12:
        rate = f.get("ibsi_match_rate")
        note = ("IBSI 1 conformance checked: match rate "
                f"{rate:.3f} ({Results.IBSI_SUMMARY})." if rate is not None else "IBSI conformance not checked in this run.")
        return True, "run: pyradiomics (IBSI-referenced), version in report/provenance.json", note
    if images and i == 13:
        return True, "run: extraction parameter files named in the config, checksummed in report/provenance.json", ""
    if i == 14:
        if f.get("stable_filter"):
            return True, f"run: {Results.ICC} ({f.get('reproducibility_design')}), model on {f.get('n_stable')} stable features", ""
        return False, ("run: no repeated measurements, reproducibility not assessed" if not f.get("reproducibility_assessed")
                       else "run: ICC assessed but the model did not use the stable-feature filter"), ""
    if i == 15:
        red = [s for s in (f.get("feature_reduction") or []) if not s.startswith("reproducibility")]
        if red:
            return True, f"run: {Results.MODEL_CARD} ({'; '.join(red)})", ""
        return False, f"run: {Results.MODEL_CARD} (no selection, decorrelation or sparse learner)", ""
    if i == 16 and f.get("events_per_final_feature") is not None:
        epv = f["events_per_final_feature"]
        return (epv >= 10, (f"run: {Results.MODEL_CARD}: {f.get('n_events_train')} training events / "
                            f"{f.get('n_final_features')} features in the final model = {epv:.2f}"),
                "Met when the final model has at least 10 events per feature (Peduzzi et al. 1996).")
    if i == 17:
        return bool(f.get("deep_icc")), f"run: {Results.DEEP_ICC}" + ("" if f.get("deep_icc") else " absent"), ""
    if i == 18:
        return True, f"run: {f.get('internal_validation') or 'nested cross-validation'}", (
            "Every learned step is fitted inside the training folds; external cohorts are touched only by the frozen model.")
    if i == 19 and f.get("harmonisation") == "combat":
        return True, "run: ComBat harmonisation of the site effect inside the model pipeline (model.harmonisation)", ""
    if i == 20:
        what = "C-index, time-dependent AUC, calibration at a horizon" if f.get("survival") else "AUC, Brier score, calibration, net benefit"
        return True, f"run: {what}", ""
    if i == 21:
        if f.get("discrimination_ci"):
            return True, f"run: 95% CIs in {Results.METRICS}", ""
        return False, f"run: no confidence interval in {Results.METRICS}", ""
    if i == 22:
        cal = f.get("calibration_cohorts") or []
        return bool(cal), f"run: {Results.CALIBRATION} for {', '.join(cal) or 'no cohort'}", ""
    if i == 23 and f.get("n_modalities") == 1:
        return True, f"run: one imaging modality ({Results.SCANS})", ""
    if i == 24:
        if f.get("clinical_comparison"):
            return True, f"run: paired comparison with the clinical-only model ({Results.MODEL_COMPARISON})", ""
        return None, None, ("No clinical-only comparator in this run (model.comparators); decision curves alone are "
                            "not taken as proof of added clinical value.")
    if i == 1:
        return None, None, "The dossier's appendix B maps this run onto CLEAR and TRIPOD+AI; adherence in the paper is the authors'."
    if i == 25 and f.get("model_comparison"):
        return True, f"run: paired comparison with comparator models ({Results.MODEL_COMPARISON})", ""
    if i == 26:
        met, s = _study_answer(study, "internal_test_set")
        if met is not None:
            return met, s, ""
        return False, "run: internal validation by cross-validation only, no held-out same-source test set", (
            "Set study.internal_test_set: true when an external cohort is a held-out sample of the training source.")
    if i == 27:
        ext = f.get("external_cohorts") or []
        return bool(ext), "run: external cohort(s) " + (", ".join(ext) if ext else "none"), ""
    if i == 29:
        return True, "run: the analysis is the open-source acceflow workflow; code and config versions in report/provenance.json", (
            "Publish the config (and acceflow's version) with the paper.")
    if i == 30:
        met, s = _study_answer(study, "open_model")
        return met, s or AUTHOR, f"The frozen model is saved ({Results.MODEL}, with its card); sharing it is the authors'."
    return None, None, ""


def score_metrics(facts: Mapping, study: Mapping | None = None) -> dict:
    """The METRICS score of a run.

    Parameters
    ----------
    facts : what :func:`gather_facts` returns (or a hand-built dict with the same keys)
    study : the config's ``study:`` section (answers the run cannot give)

    Returns
    -------
    dict : ``score_percent`` (Σ met weights / Σ applicable weights × 100), ``met_weight``,
        ``applicable_weight``, ``max_percent_if_author_items_met``, counts (``n_applicable``, ``n_met``,
        ``n_not_met``, ``n_author``, ``n_not_applicable``), ``conditions`` and ``items`` (each with
        ``weight``, ``applicable``, ``answer`` yes / no / author to answer / not applicable, ``met``,
        ``source``, ``note``).
    """
    study = dict(study or {})
    tool = load_tool("metrics")
    cond = _metrics_conditions(facts, study)
    items = []
    for it in tool["items"]:
        base = {"id": it["id"], "category": it["category"], "text": it["text"], "weight": it["weight"],
                "condition": it.get("condition")}
        c = cond.get(it.get("condition")) if it.get("condition") else None
        applicable = c is None or c[0] is not False
        base["applicable"] = applicable
        if not applicable:
            items.append({**base, "answer": "not applicable", "met": False, "source": c[1], "note": ""})
            continue
        met, source, note = _metrics_item(it["id"], facts, study)
        if not met:  # the run does not show it: the authors may claim it (study:) or it stays theirs
            smet, ssrc = _study_answer(study, it.get("study"))
            if smet is not None:
                met, source, note = smet, ssrc, ""
        if met is None:
            source = f"{AUTHOR} (study.{it['study']})" if it.get("study") else AUTHOR
        items.append(_item(base, met, source, note))
    appl = [i for i in items if i["applicable"]]
    w_appl = sum(i["weight"] for i in appl)
    w_met = sum(i["weight"] for i in appl if i["met"])
    w_author = sum(i["weight"] for i in appl if i["answer"] == AUTHOR)
    return {
        "tool": tool["name"], "reference": tool["reference"], "doi": tool["doi"],
        "score_percent": 100 * w_met / w_appl if w_appl else None,
        "met_weight": w_met, "applicable_weight": w_appl,
        "max_percent_if_author_items_met": 100 * (w_met + w_author) / w_appl if w_appl else None,
        "n_applicable": len(appl), "n_met": sum(i["met"] for i in appl),
        "n_not_met": sum(i["answer"] == "no" for i in appl), "n_author": sum(i["answer"] == AUTHOR for i in appl),
        "n_not_applicable": len(items) - len(appl),
        "conditions": [{"id": c["id"], "number": c["number"], "text": c["text"],
                        "answer": ("unknown" if cond[c["id"]][0] is None else "yes" if cond[c["id"]][0] else "no"),
                        "source": cond[c["id"]][1]} for c in tool["conditions"]],
        "items": items,
    }


def _rqs_part(pid: str, f: Mapping, study: Mapping):
    """``(points, met, source, note)`` of one RQS part from the facts; ``met`` None = not answered by the run."""
    design = f.get("reproducibility_design")
    if pid == "multiple_segmentations":
        if f.get("reproducibility_assessed") and design in ("inter-reader", "perturbation"):
            return 1, True, f"run: {Results.ICC} ({design} design)", ""
        if f.get("segmentation_icc"):
            return 1, True, f"run: {Results.SEGMENTATION_ICC} (sampled segmentations)", ""
    if pid == "multiple_time_points" and f.get("reproducibility_assessed") and design == "test-retest":
        return 1, True, f"run: {Results.ICC} (test-retest design)", ""
    if pid == "phantom_study":
        return None, None, None, ("The IBSI phantom check (when run) tests the extraction software, not a phantom "
                                  "scanned on every scanner.")
    if pid == "feature_reduction":
        red = f.get("feature_reduction") or []
        if red:
            return 3, True, f"run: {Results.MODEL_CARD} ({'; '.join(red)})", ""
        return -3, False, f"run: {Results.MODEL_CARD} (no feature reduction)", ""
    if pid == "non_radiomic_features" and f.get("combined_model"):
        return 1, True, "run: a model combining the imaging features with clinical covariates", ""
    if pid == "cut_off":
        what = ("risk groups cut at the training median" if f.get("survival")
                else "continuous predicted probability reported per case")
        return 1, True, f"run: {what} ({Results.PREDICTIONS})", ""
    if pid == "discrimination" and f.get("discrimination_ci"):
        return 1, True, f"run: discrimination with 95% CI ({Results.METRICS})", ""
    if pid == "discrimination_resampling" and f.get("internal_resampling"):
        return 1, True, f"run: {f.get('internal_validation') or 'cross-validation'}", ""
    if pid == "calibration" and f.get("calibration_cohorts"):
        return 1, True, f"run: calibration statistics with CIs ({Results.CALIBRATION})", ""
    if pid == "calibration_resampling" and f.get("calibration_oof"):
        return 1, True, "run: calibration of the cross-validated (out-of-fold) predictions of the training cohort", ""
    if pid == "validation":
        return _rqs_validation(f, study)
    if pid == "gold_standard" and f.get("clinical_comparison"):
        return 2, True, f"run: paired comparison with the clinical-only model ({Results.MODEL_COMPARISON})", (
            "The clinical-only model stands for the clinical standard; say which standard it represents.")
    if pid == "clinical_utility" and f.get("decision_curve_cohorts"):
        return 2, True, f"run: decision-curve analysis ({Results.DECISION_CURVE}: {', '.join(f['decision_curve_cohorts'])})", ""
    if pid == "open_code":
        return 1, True, "run: the open-source acceflow workflow (version and config in report/provenance.json)", ""
    return None, None, None, ""


def _rqs_validation(f: Mapping, study: Mapping):
    ext = f.get("external_cohorts") or []
    published, psrc = _study_answer(study, "previously_published_signature")
    same, ssrc = _study_answer(study, "validation_same_institution")
    internal, isrc = _study_answer(study, "internal_test_set")
    note = ("Each external cohort is taken as a distinct institute; cross-validation is not a validation data set "
            "(RQS item 9 counts it).")
    if ext and same:
        pts, src = 2, f"run: external cohort(s) {', '.join(ext)}; {ssrc}"
    elif len(ext) >= 3:
        pts, src = 5, f"run: {len(ext)} external cohorts ({', '.join(ext)})"
    elif len(ext) == 2:
        pts, src = 4, f"run: 2 external cohorts ({', '.join(ext)})"
    elif len(ext) == 1:
        pts, src = 3, f"run: 1 external cohort ({ext[0]})"
    elif internal:
        pts, src = 2, f"run: no external cohort; {isrc}"
    else:
        pts, src = -5, "run: no external cohort (internal cross-validation only)"
    if published and pts < 4:
        pts, src = 4, psrc
    return pts, pts > 0, src, note


def score_rqs(facts: Mapping, study: Mapping | None = None) -> dict:
    """The Radiomics Quality Score of a run.

    Returns
    -------
    dict : ``total`` (−8 … 36), ``percent`` (total / 36 × 100; negative when the total is), ``min_total``,
        ``max_total``, ``author_points_open`` (points the author-to-answer parts could still add), counts and
        ``items`` (each with its ``parts``: ``points`` given, ``max_points``, ``answer``, ``source``, ``note``).
    """
    study = dict(study or {})
    tool = load_tool("rqs")
    items = []
    for it in tool["items"]:
        parts = []
        for p in it["parts"]:
            pts, met, source, note = _rqs_part(p["id"], facts, study)
            if not met and p.get("study"):
                smet, ssrc = _study_answer(study, p["study"])
                if smet is not None:
                    pts, met, source = (p["points"] if smet else 0), smet, ssrc
            if met is None:
                pts, source = 0, (f"{AUTHOR} (study.{p['study']})" if p.get("study") else AUTHOR)
            parts.append({"id": p["id"], "text": p["text"], "max_points": p["points"], "points": pts,
                          "answer": AUTHOR if met is None else ("yes" if met else "no"), "source": source,
                          "note": note or ""})
        items.append({"id": it["id"], "text": it["text"], "points": sum(q["points"] for q in parts),
                      "max_points": sum(q["max_points"] for q in parts), "parts": parts})
    total = sum(i["points"] for i in items)
    if not tool["min_total"] <= total <= tool["max_total"]:
        raise AssertionError(f"RQS total {total} outside [{tool['min_total']}, {tool['max_total']}]")
    allparts = [q for i in items for q in i["parts"]]
    return {
        "tool": tool["name"], "reference": tool["reference"], "doi": tool["doi"],
        "total": total, "percent": 100 * total / tool["max_total"],
        "min_total": tool["min_total"], "max_total": tool["max_total"],
        "author_points_open": sum(q["max_points"] for q in allparts if q["answer"] == AUTHOR),
        "n_parts": len(allparts), "n_met": sum(q["answer"] == "yes" for q in allparts),
        "n_not_met": sum(q["answer"] == "no" for q in allparts),
        "n_author": sum(q["answer"] == AUTHOR for q in allparts),
        "items": items,
    }


def quality_scores(results_dir: str | os.PathLike, config: Mapping) -> dict:
    """METRICS and RQS of a run: ``{"facts", "study", "metrics", "rqs"}`` (what ``report/quality_scores.json`` holds)."""
    study = section_settings("study", config.get("study"))
    facts = gather_facts(results_dir, config)
    return {"facts": facts, "study": study, "metrics": score_metrics(facts, study), "rqs": score_rqs(facts, study)}
