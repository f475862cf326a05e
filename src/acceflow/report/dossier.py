"""The evidence dossier: one self-contained HTML file and a ``summary.json`` of headline figures.

:func:`build_dossier` reads the results contract (see ``docs``/DESIGN: ``ingest/qc.tsv``,
``features/features.tsv``, ``analytical/icc.tsv``, ``clinical/model/model_card.json`` and, per
cohort, ``clinical/{cohort}/…`` and ``utility/{cohort}/…``) and writes a dossier organised by
the ACCE hierarchy:

1. Study and data, 2. Analytical validity, 3. Clinical validity, 4. Clinical utility,
5. Limitations detected from the results, 6. Appendix A: provenance (checksums, config as run,
seeds, versions, platform, rule graph, per-rule run times), 7. Appendix B: reporting checklists
(TRIPOD+AI 2024 and CLEAR 2023, from ``acceflow/report/checklists/*.yaml``).

Privacy: patient-level content is limited to the case ids of excluded entries (with cohort,
repeat, modality and the QC reason). No other manifest or clinical column and no image header
(DICOM) value is read into the dossier; file paths appear only in ``provenance.json``.

The HTML has inline CSS and figures embedded as base64 PNG: it opens without a network. Every
string taken from the data is HTML-escaped. Numbers are shown to 3 decimals; ``summary.json``
keeps them at full precision, equal to the files they come from.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import yaml

from acceflow.report import figures as F
from acceflow.report import html as h
from acceflow.report.checklist_answers import Answer, RunFacts, answer_item
from acceflow.report.clinical_section import (clinical_extras, cohort_figures, survival_clinical, survival_utility,
                                              utility_extras)
from acceflow.report.deep_section import deep_section
from acceflow.report.explain_section import grouped_explanations
from acceflow.report.federated_section import federated_block
from acceflow.report.internal_external_section import internal_external_block
from acceflow.report.shift_section import domain_shift_html
from acceflow.report.html import svg_figure
from acceflow.report.page import render_page
from acceflow.report.quality_section import quality_section
from acceflow.report.segmentation_section import segmentation_section, segmentation_summary
from acceflow.report.summary_section import summary_screen, tier_verdicts
from acceflow.report.synthetic_section import synthetic_section
from acceflow.report.view import Results, ResultsView, Section
from acceflow.runtime import atomic_write_bytes, to_jsonable, write_json
from acceflow.study.task import task_for

__all__ = ["build_dossier", "detect_limitations", "load_checklist", "checklist_answers", "CHECKLISTS"]

#: The reporting checklists shipped with acceflow (files in ``acceflow/report/checklists/``).
CHECKLISTS = {"tripod-ai": "tripod_ai.yaml", "clear": "clear.yaml"}

#: Koo & Li (2016) bands in order, for the ICC summary.
_BANDS = ("poor", "moderate", "good", "excellent")

# ------------------------------------------------------------------------------------ analysis


def _cohort_table(view: ResultsView) -> list[dict]:
    """Cases, events and prevalence per cohort (``features/cohorts.tsv``, the cohort_summary rule's)."""
    table = view.tsv(Results.COHORTS, dtype={"cohort": str})
    if table is None:
        return []
    rows = []
    for r in table.to_dict("records"):
        ev = r["n_events"]
        rows.append({"cohort": r["cohort"], "role": r["role"], "n": int(r["n"]),
                     "n_events": None if pd.isna(ev) else int(ev),
                     "prevalence": None if pd.isna(ev) else float(r["prevalence"])})
    return rows


def _n_candidate_features(view: ResultsView) -> int | None:
    """Feature columns of the feature table (``features/feature_summary.json``)."""
    return (view.json(Results.FEATURE_SUMMARY) or {}).get("n_candidate_features")


def _distinct_ints(df: pd.DataFrame, col: str) -> list[int]:
    return sorted({int(v) for v in pd.to_numeric(df[col], errors="coerce").dropna()}) if col in df else []


def _icc_summary(icc: pd.DataFrame | None, threshold: float) -> dict:
    if icc is None or icc.empty:
        return {"assessed": False, "n_features": 0, "n_stable": None}
    stable = icc["stable"].astype(str).str.strip().str.lower().isin(["true", "1", "1.0", "yes"])
    vals = pd.to_numeric(icc["icc"], errors="coerce")
    bands = (icc["koo_li_band"].astype(str).str.lower() if "koo_li_band" in icc
             else vals.map(F.koo_li_band))
    return {
        "assessed": True,
        "forms": sorted(icc["icc_form"].dropna().astype(str).unique()) if "icc_form" in icc else [],
        "n_features": int(len(icc)),
        "n_stable": int(stable.sum()),
        "threshold": threshold,
        "bands": {b: int((bands == b).sum()) for b in _BANDS},
        "median_icc": float(vals.median()),
        "n_subjects": _distinct_ints(icc, "n_subjects"),
        "n_repeats": _distinct_ints(icc, "n_repeats"),
        "form_warnings": (sorted({str(w) for w in icc["icc_form_warning"].dropna() if str(w).strip()})
                          if "icc_form_warning" in icc else []),
    }


def detect_limitations(summary: Mapping) -> list[str]:
    """Limitations that can be read off the results (plain sentences, in a fixed order).

    Checks: events per variable below 10; internal validation only; an external cohort with fewer
    than 100 events; a calibration slope whose CI excludes 1 or an intercept whose CI excludes 0;
    no repeated measurements (reproducibility not assessed); model features that are not stable
    under the reproducibility criterion; IBSI conformance mismatches (``analytical/ibsi.tsv``,
    when a run wrote one: unexplained ones, then those a documented pyradiomics deviation explains,
    or why the check could not run); missing result files.
    """
    out = []
    epv = summary.get("events_per_variable")
    if epv is not None and math.isfinite(epv) and epv < 10:
        out.append(
            f"Events per variable is {epv:.3f} ({summary.get('n_events_train')} training events for "
            f"{summary.get('n_model_features')} candidate model features), below 10: the model is prone to "
            "overfitting and its coefficients are unstable (Peduzzi et al. 1996; Riley et al. 2020).")
    if summary.get("validation") != "external":
        out.append("Internal validation only: no external cohort was available, so transportability to "
                   "other sites, scanners and populations is unknown.")
    for cohort, c in summary.get("cohorts", {}).items():
        if c.get("missing"):
            out.append(f"Cohort {cohort}: result files missing ({', '.join(c['missing'])}); its figures "
                       "are incomplete.")
        if cohort != "train" and c.get("n_events") is not None and c["n_events"] < 100:
            out.append(f"External cohort {cohort} has {c['n_events']} events (fewer than 100): its "
                       "performance estimates are imprecise (Collins et al. 2016 recommend at least 100 "
                       "events for external validation).")
        lo, hi = h.f(c.get("calibration_slope_ci_low")), h.f(c.get("calibration_slope_ci_high"))
        if math.isfinite(lo) and math.isfinite(hi) and not lo <= 1 <= hi:
            kind = ("too extreme (overfitting)" if hi < 1 else "too moderate (underfitting)")
            out.append(f"Cohort {cohort}: calibration slope {c['calibration_slope']:.3f} with 95% CI "
                       f"[{lo:.3f}, {hi:.3f}] excludes 1: predictions are {kind}.")
        lo, hi = h.f(c.get("calibration_intercept_ci_low")), h.f(c.get("calibration_intercept_ci_high"))
        if math.isfinite(lo) and math.isfinite(hi) and not lo <= 0 <= hi:
            kind = "over-estimate" if hi < 0 else "under-estimate"
            out.append(f"Cohort {cohort}: calibration intercept {c['calibration_intercept']:.3f} with 95% "
                       f"CI [{lo:.3f}, {hi:.3f}] excludes 0: predictions {kind} the risk on average "
                       "(calibration-in-the-large).")
    unstable = summary.get("unstable_model_features") or []
    if unstable:
        shown = ", ".join(unstable[:10]) + (f" and {len(unstable) - 10} more" if len(unstable) > 10 else "")
        out.append(f"{len(unstable)} feature(s) used by the model are not stable under the reproducibility "
                   f"criterion (95% CI lower bound of the ICC below the threshold): {shown}. Their measurement "
                   "error may change the predictions on repeated imaging.")
    ibsi = summary.get("ibsi_mismatches") or []
    if ibsi:
        shown = ", ".join(ibsi[:10]) + (f" and {len(ibsi) - 10} more" if len(ibsi) > 10 else "")
        out.append(f"IBSI conformance: {len(ibsi)} feature(s) differ from the IBSI reference values beyond "
                   f"tolerance: {shown}. These features are not computed as IBSI defines them.")
    known = summary.get("ibsi_known_deviations") or []
    if known:
        shown = ", ".join(known[:10]) + (f" and {len(known) - 10} more" if len(known) > 10 else "")
        out.append(f"IBSI conformance: {len(known)} feature(s) differ from the IBSI reference values through a "
                   f"documented pyradiomics deviation (e.g. kurtosis not in excess form, fixed-bin-size bins "
                   f"starting at a multiple of the bin width): {shown}. Their values are not comparable with "
                   "IBSI-conformant software without correction (analytical/ibsi.tsv, column deviation).")
    if summary.get("ibsi_not_checked"):
        out.append(f"IBSI conformance was not checked: {summary['ibsi_not_checked']}")
    if not summary.get("reproducibility_assessed"):
        out.append("Reproducibility not assessed: no repeated measurements (test-retest, inter-reader or "
                   "perturbation) were available, so the measurement error of the features is unknown.")
    return out


# ------------------------------------------------------------------------------------- loading


def _load(view: ResultsView) -> dict:
    """The tables the summary and the sections read (each file read once, through the view)."""
    if "_data" in view._cache:
        return view._cache["_data"]
    per = {}
    for c in view.cohorts:
        templates = {"predictions": Results.PREDICTIONS, "metrics": Results.METRICS,
                     "calibration": Results.CALIBRATION, "decision_curve": Results.DECISION_CURVE}
        per[c] = {"predictions": view.tsv(Results.PREDICTIONS, cohort=c), "metrics": view.json(Results.METRICS, cohort=c),
                  "calibration": view.json(Results.CALIBRATION, cohort=c),
                  "decision_curve": view.tsv(Results.DECISION_CURVE, cohort=c),
                  "useful_thresholds": view.json(Results.USEFUL_THRESHOLDS, cohort=c)}
        per[c]["missing"] = [view.relative(t, cohort=c) for t in templates.values() if not view.exists(t, cohort=c)]
    repeats = None
    for path in ((view.config.get("input") or {}).get("repeats"), view.path(Results.REPEATS)):
        if path and Path(path).is_file():
            repeats = view.read_file(path, dtype={"case_id": str, "repeat": str})
            break
    data = {
        "qc": view.tsv(Results.QC, dtype=str, keep_default_na=False),
        "extraction_qc": view.tsv(Results.EXTRACTION_QC, dtype=str, keep_default_na=False),
        "icc": view.tsv(Results.ICC),
        "icc_exists": view.exists(Results.ICC),
        "ibsi": view.tsv(Results.IBSI),
        "ibsi_summary": view.tsv(Results.IBSI_SUMMARY),
        "card": view.card,
        "cohorts": per,
        "agreement": view.tsv(Results.AGREEMENT), "dropped": view.tsv(Results.DROPPED_FEATURES),
        "segmentation": view.tsv(Results.SEGMENTATION_AGREEMENT), "site_effect": view.tsv(Results.SITE_EFFECT),
        "domain_shift": view.tsv(Results.DOMAIN_SHIFT), "domain_shift_summary": view.json(Results.DOMAIN_SHIFT_SUMMARY),
        "repeats": repeats,
    }
    view._cache["_data"] = data
    return data


_TRUE = ["true", "1", "1.0", "yes"]


def _ibsi_status(ib: pd.DataFrame | None) -> dict:
    """What ``analytical/ibsi.tsv`` says about conformance (the ``study`` rows are left out).

    The ``match`` column holds ``match`` / ``mismatch`` / ``not computed`` (acceflow.imaging.ibsi);
    a mismatch with ``known_deviation`` true is explained by a documented pyradiomics deviation.
    Older tables with a boolean ``match`` (or ``conformant`` / ``within_tolerance``) column are
    read as match / mismatch. Features are named by the ``feature`` column (else the first column).
    """
    out = {"checked": False, "mismatches": [], "known": [], "not_checked": None, "match_rates": {}}
    if ib is None or ib.empty:
        return out
    if "configuration" in ib:
        ib = ib[ib["configuration"].astype(str) != "study"]
    flag = next((c for c in ("match", "conformant", "within_tolerance") if c in ib), None)
    if flag is None:
        return out
    name = "feature" if "feature" in ib else ib.columns[0]
    status = ib[flag].astype(str).str.strip().str.lower()
    if status.isin(["match", "mismatch", "not computed"]).all():
        computed = status != "not computed"
        bad = status == "mismatch"
        known = (ib["known_deviation"].astype(str).str.strip().str.lower().isin(_TRUE) if "known_deviation" in ib
                 else pd.Series(False, index=ib.index))
        out["checked"] = bool(computed.any())
        if not out["checked"]:
            notes = ib["deviation"].dropna().astype(str) if "deviation" in ib else pd.Series(dtype=str)
            out["not_checked"] = notes.iloc[0] if len(notes) else "no IBSI feature was computed"
        out["mismatches"] = sorted(ib.loc[bad & ~known, name].astype(str).unique())
        out["known"] = sorted(set(ib.loc[bad & known, name].astype(str)) - set(out["mismatches"]))
        if "configuration" in ib:
            for cfg, grp in ib[computed].groupby("configuration", sort=False):
                diag = grp["ibsi_family"].astype(str).str.startswith("Diagnostics") if "ibsi_family" in grp else False
                feats = status[grp.index][~diag] if isinstance(diag, pd.Series) else status[grp.index]
                if len(feats):
                    out["match_rates"][str(cfg)] = float((feats == "match").mean())
        return out
    ok = status.isin(_TRUE)
    out["checked"] = True
    out["mismatches"] = sorted(ib.loc[~ok, name].astype(str).unique())
    return out


def _excluded(qc: pd.DataFrame | None) -> pd.DataFrame | None:
    """Rows of the QC table with status ``excluded``."""
    return None if qc is None else qc[qc["status"].str.strip().str.lower() == "excluded"]


def _exclusions(data: Mapping) -> pd.DataFrame | None:
    """Every excluded entry: at ingest (``ingest/qc.tsv``) and scans whose feature extraction failed
    (``features/extraction_qc.tsv``, reason prefixed ``feature extraction:``)."""
    excl = _excluded(data["qc"])
    failed = _excluded(data.get("extraction_qc"))
    if excl is None or failed is None or not len(failed):
        return excl
    return pd.concat([excl, failed.assign(reason="feature extraction: " + failed["reason"])], ignore_index=True)


def _summarise(view: ResultsView, data: dict, icc: dict, config: Mapping, cohorts: Sequence[str]) -> dict:
    card = data["card"]
    coefs = card.get("coefficients") or {}
    n_model = len(card.get("features") or [])
    n_ev_train = card.get("n_events_train")
    excluded = _exclusions(data)
    unstable = []
    icc_table = data["icc"]
    if icc_table is not None and not icc_table.empty and "stable" in icc_table:
        is_stable = dict(zip(icc_table["feature"].astype(str),
                             icc_table["stable"].astype(str).str.strip().str.lower().isin(["true", "1", "1.0", "yes"])))
        used = ([k for k, v in coefs.items() if h.f(v) != 0] if coefs else list(card.get("features") or []))
        unstable = sorted(f for f in used if f in is_stable and not is_stable[f])
    ib = data.get("ibsi")
    ibsi = _ibsi_status(ib)
    summary = {
        "validation": card.get("validation"),
        "internal_validation": card.get("internal_validation"),
        "learner": card.get("learner"),
        "outcome": card.get("outcome") or config.get("outcome"),
        "training_cohorts": card.get("training_cohorts"),
        "external_cohorts": card.get("external_cohorts"),
        "n_train": card.get("n_train"),
        "n_events_train": n_ev_train,
        "n_features": _n_candidate_features(view),
        "n_model_features": n_model,
        "n_nonzero_coefficients": int(sum(1 for v in coefs.values() if h.f(v) != 0)),
        "events_per_variable": (n_ev_train / max(1, n_model)) if n_ev_train is not None else None,
        "reproducibility_assessed": icc["assessed"],
        "icc_form": ", ".join(icc.get("forms", [])) or None,
        "n_features_icc": icc["n_features"],
        "n_stable_features": icc["n_stable"],
        "stability_threshold": icc.get("threshold"),
        "unstable_model_features": unstable,
        "ibsi_checked": ibsi["checked"],
        "ibsi_mismatches": ibsi["mismatches"],
        "ibsi_known_deviations": ibsi["known"],
        "ibsi_not_checked": ibsi["not_checked"],
        "ibsi_match_rates": ibsi["match_rates"],
        "n_excluded_entries": None if excluded is None else int(len(excluded)),
        "n_excluded_cases": None if excluded is None else int(excluded["case_id"].nunique()),
        "cohorts": {},
    }
    for c in cohorts:
        d = data["cohorts"][c]
        m, cal = d["metrics"] or {}, d["calibration"] or {}
        entry = {"role": "internal validation (out-of-fold)" if c == "train" else "external",
                 "validation": m.get("validation")}
        for k in ("n", "n_events", "prevalence", "auc", "auc_ci_low", "auc_ci_high", "auc_ci_method", "brier"):
            entry[k] = m.get(k)
        for k in ("calibration_intercept", "calibration_intercept_ci_low", "calibration_intercept_ci_high",
                  "calibration_slope", "calibration_slope_ci_low", "calibration_slope_ci_high", "ici"):
            entry[k] = cal.get(k)
        rng = d["useful_thresholds"] or {}  # utility/{cohort}/useful_thresholds.json (rule useful_thresholds)
        low, high = rng.get("useful_threshold_low"), rng.get("useful_threshold_high")
        entry["net_benefit_threshold_range"] = [low, high] if low is not None else None
        if d["missing"]:
            entry["missing"] = d["missing"]
        summary["cohorts"][c] = entry
    summary["limitations"] = detect_limitations(summary)
    return to_jsonable(summary)


# ------------------------------------------------------------------------------------ sections


def _section_study(view: ResultsView, data: dict, config: Mapping, summary: dict) -> str:
    rows = _cohort_table(view)
    out = ["<h2 id=\"study\">1. Study and data</h2>"]
    outcome = summary.get("outcome") or {}
    if task_for(outcome).time_to_event:
        odesc = f"survival: time <code>{h.e(outcome.get('time'))}</code>, event <code>{h.e(outcome.get('event'))}</code>"
    else:
        odesc = (f"binary: <code>{h.e(outcome.get('column'))}</code> = "
                 f"<code>{h.e(outcome.get('positive'))}</code> is an event")
    out.append(h.p(f"Outcome — {odesc}. Candidate features in the feature table: "
                  f"{h.num(summary.get('n_features'))}."))
    if rows:
        total_n = sum(r["n"] for r in rows)
        ev = [r["n_events"] for r in rows if r["n_events"] is not None]
        table_rows = [[r["cohort"], r["role"], r["n"], r["n_events"], r["prevalence"]] for r in rows]
        table_rows.append([h.Html("<strong>all</strong>"), "", total_n, sum(ev) if ev else None,
                           (sum(ev) / total_n) if ev and total_n else None])
        out.append(h.table(["Cohort", "Role", "Cases", "Events", "Prevalence"], table_rows))
        out.append(h.p("Cases after quality control, from <code>features/features.tsv</code>.", "note"))
    else:
        out.append(h.p("The feature table <code>features/features.tsv</code> was not found.", "warn"))

    qc = data["qc"]
    out.append("<h3 id=\"exclusions\">Exclusions</h3>")
    if qc is None:
        out.append(h.p("No quality-control table (<code>ingest/qc.tsv</code>) was found.", "warn"))
        return "\n".join(out)
    excl = _exclusions(data)
    out.append(h.p(f"Quality control checked {len(qc)} entries; {len(excl)} were excluded "
                  f"({excl['case_id'].nunique()} distinct cases), at ingest (<code>ingest/qc.tsv</code>) or at "
                  f"feature extraction (<code>features/extraction_qc.tsv</code>)."))
    if len(excl):
        reasons = excl["reason"].replace("", "(no reason given)").value_counts()
        out.append(h.table(["Reason", "Entries"], [[r, int(n)] for r, n in reasons.items()]))
        cols = [c for c in ("case_id", "cohort", "repeat", "modality", "reason") if c in excl]
        out.append(h.table(cols, excl[cols].head(200).itertuples(index=False), "compact"))
        if len(excl) > 200:
            out.append(h.p(f"First 200 of {len(excl)} exclusions shown; the full list is in "
                          "<code>ingest/qc.tsv</code>.", "note"))
    return "\n".join(out)


def _harmonisation_note(card: Mapping) -> dict:
    """ComBat in the model: method, training sites, policy, and the external cohorts it never saw."""
    hm = card.get("harmonisation") or {"method": "none"}
    unseen = [c for c in (card.get("external_cohorts") or []) if c not in (hm.get("training_sites") or [])]
    return {"harmonisation": hm.get("method", "none"), "harmonisation_training_sites": hm.get("training_sites"),
            "harmonisation_unseen_policy": hm.get("unseen"),
            "harmonisation_unseen_cohorts": unseen if hm.get("method", "none") != "none" else []}


def _analytical_summary(data: dict, config: Mapping) -> dict:
    rep = config.get("reproducibility") or {}
    icc = data.get("icc")
    out = {"reproducibility_design": rep.get("design"), "max_wcv": rep.get("max_wcv"),
           "n_dropped_features": None if data.get("dropped") is None else int(len(data["dropped"]))}
    seg = data.get("segmentation")
    if seg is not None and len(seg):
        out.update(n_mask_pairs=int(len(seg)), median_dice=float(seg["dice"].median()),
                   median_hd95_mm=float(seg["hd95_mm"].median()))
    se = data.get("site_effect")
    if se is not None and len(se):
        out.update(n_features_site_effect_before=int((pd.to_numeric(se["kw_p_before"], errors="coerce") < 0.05).sum()),
                   n_features_site_effect_after=int((pd.to_numeric(se["kw_p_after"], errors="coerce") < 0.05).sum()))
    out.update(_harmonisation_note(data.get("card") or {}))
    if icc is not None and "design" in icc and len(icc):
        out["reproducibility_design"] = str(icc["design"].iloc[0])
    return out


def _section_analytical_more(data: dict, summary: Mapping) -> str:
    """Agreement, dropped features, segmentation agreement, site effect and IBSI conformance (after the ICC part)."""
    out = []
    agr, card = data.get("agreement"), data.get("card") or {}
    coefs = card.get("coefficients") or {}
    top = [f for f, c in sorted(coefs.items(), key=lambda kv: -abs(h.f(kv[1]) or 0)) if h.f(c)]
    if agr is not None and len(agr):
        out.append("<h3>Agreement between repeats</h3>")
        shown = agr.set_index("feature")
        feats = [f for f in top if f in shown.index][:10] or list(shown.index[:10])
        rows = [[f, h.num(r["wcv"]), h.num(r["rc"]), h.ci(r["ccc"], r["ccc_ci_low"], r["ccc_ci_high"]),
                 h.num(r["ba_bias"]), f"{h.num(r['ba_loa_low'])} to {h.num(r['ba_loa_high'])}"]
                for f, r in shown.loc[feats].iterrows()]
        out.append(h.p("Within-subject CV (root-mean-square), repeatability coefficient (1.96·√2·wSD), Lin's "
                      "concordance correlation coefficient with 95% CI and Bland–Altman bias with 95% limits of "
                      "agreement (second repeat minus first) of the model's most weighted features (all features: "
                      "<code>analytical/agreement.tsv</code>). CCC and Bland–Altman need two repeats."))
        out.append(h.table(["Feature", "wCV", "RC", "CCC (95% CI)", "BA bias", "BA 95% limits"], rows))
        rep = data.get("repeats")
        if rep is not None and "repeat" in rep and rep["repeat"].nunique() == 2:
            out.append(h.figure(lambda: F.bland_altman_figure(rep, feats[:4], agr),
                               "<strong>Bland–Altman plots</strong> of the model's most weighted features: "
                               "difference of the repeats against their mean; solid line the bias, dashed lines "
                               "the 95% limits of agreement.", "Bland–Altman plots", name="bland_altman"))
    dropped = data.get("dropped")
    if dropped is not None and len(dropped):
        out.append("<h3>Features dropped as not reproducible</h3>")
        out.append(h.p(f"{len(dropped)} feature(s) did not meet the stability criterion and were not offered to "
                      "the model; the reason for each is below (also <code>analytical/dropped_features.tsv</code>)."))
        out.append(h.table(["Feature", "ICC", "CI lower bound", "wCV", "Reason"],
                          [[r["feature"], h.num(r["icc"]), h.num(r["ci_low"]), h.num(r["wcv"]), r["reason"]]
                           for _, r in dropped.head(300).iterrows()]))
    seg = data.get("segmentation")
    if seg is not None and len(seg):
        out.append("<h3>Segmentation agreement</h3>")
        out.append(h.p(f"{len(seg)} pair(s) of masks of one image (<code>analytical/segmentation_agreement.tsv</code>)."))
        q = seg[["dice", "jaccard", "hd95_mm", "msd_mm"]].apply(pd.to_numeric, errors="coerce")
        out.append(h.table(["Measure", "Median", "IQR"],
                          [[name, h.num(q[c].median()), f"{h.num(q[c].quantile(0.25))} – {h.num(q[c].quantile(0.75))}"]
                           for name, c in (("Dice", "dice"), ("Jaccard", "jaccard"), ("HD95 (mm)", "hd95_mm"),
                                           ("Mean surface distance (mm)", "msd_mm"))]))
    se = data.get("site_effect")
    if se is not None and len(se):
        out.append("<h3>Site effect and harmonisation</h3>")
        method = summary.get("harmonisation", "none")
        text = (f"Kruskal–Wallis test across cohorts per candidate model feature: {summary.get('n_features_site_effect_before')} "
                f"of {len(se)} features differ between cohorts at p &lt; 0.05 before ComBat, "
                f"{summary.get('n_features_site_effect_after')} after ComBat fitted on the training cohorts "
                "(cohorts absent from training mapped on their own location and scale for this comparison). ")
        if method == "none":
            text += "The model does <strong>not</strong> harmonise (<code>model.harmonisation: none</code>)."
        else:
            text += (f"The model harmonises with ComBat inside its pipeline (refitted per cross-validation fold, "
                     f"frozen with the model; training sites {h.e(h.join(summary.get('harmonisation_training_sites') or []))}).")
            unseen = summary.get("harmonisation_unseen_cohorts") or []
            if unseen:
                policy = summary.get("harmonisation_unseen_policy")
                text += (f" External cohort(s) {h.e(h.join(unseen))} were never seen in training: " + (
                    "<strong>their location and scale were estimated on their own cases</strong> (features only, no "
                    "outcomes; <code>model.harmonisation_unseen: self</code>), so their predictions depend on the "
                    "other cases of the same cohort." if policy == "self" else "the policy is to stop with an error."))
        out.append(h.p(text, "warn" if summary.get("harmonisation_unseen_cohorts") else ""))
        out.append(h.figure(lambda: F.site_effect_figure(se),
                           "<strong>Site effect before and after ComBat.</strong> One dot per feature: −log10 of the "
                           "Kruskal–Wallis p value across cohorts before (x) and after (y) harmonisation; dashed lines "
                           "p = 0.05. Dots below the diagonal lost site effect.", "Site effect before and after",
                           name="site_effect"))
    shift = domain_shift_html(data.get("domain_shift"), data.get("domain_shift_summary"))
    if shift:
        out.append(shift)
    ibsi = _section_ibsi(data)
    if ibsi:
        out.append(ibsi)
    return "\n".join(out)


def _ibsi_summary_table(data: dict) -> pd.DataFrame | None:
    """``analytical/ibsi_summary.tsv``, or the same counts from ``ibsi.tsv`` when only that exists."""
    summ = data.get("ibsi_summary")
    if summ is not None and len(summ):
        return summ
    ib = data.get("ibsi")
    if ib is None or ib.empty or not {"configuration", "match"} <= set(ib.columns):
        return None
    status = ib["match"].astype(str).str.strip().str.lower()
    if not status.isin(["match", "mismatch", "not computed"]).all():
        return None
    known = (ib["known_deviation"].astype(str).str.lower().isin(_TRUE) if "known_deviation" in ib
             else pd.Series(False, index=ib.index))
    diag = (ib["ibsi_family"].astype(str).str.startswith("Diagnostics") if "ibsi_family" in ib
            else pd.Series(False, index=ib.index))
    rows = []
    for cfg, idx in ib[~diag].groupby("configuration", sort=False).groups.items():
        st = status[idx]
        n_comp = int((st != "not computed").sum())
        ref = (str(ib.loc[idx, "reference_configuration"].iloc[0]) if "reference_configuration" in ib else cfg)
        rows.append({"configuration": cfg, "reference_configuration": ref, "n_reference": len(idx),
                     "n_computed": n_comp,
                     "n_match": int((st == "match").sum()), "n_mismatch": int((st == "mismatch").sum()),
                     "n_mismatch_known_deviation": int(((st == "mismatch") & known[idx]).sum()),
                     "match_rate": (st == "match").sum() / n_comp if n_comp else float("nan")})
    return pd.DataFrame(rows)


def _section_ibsi(data: dict) -> str:
    """IBSI 1 conformance: match rate per configuration, the study's settings, the deviation groups."""
    summ = _ibsi_summary_table(data)
    if summ is None:
        return ""
    out = ["<h3 id=\"ibsi\">IBSI conformance of the extraction</h3>"]
    n_comp = pd.to_numeric(summ["n_computed"], errors="coerce").fillna(0)
    if not (n_comp > 0).any():
        note = next((str(x) for x in summ.get("note", pd.Series(dtype=str)).dropna() if str(x)), "")
        out.append(h.p(f"<strong>IBSI conformance was not checked</strong>: {h.e(note or 'no feature was computed')}.",
                      "warn"))
        return "\n".join(out)
    rows = []
    for _, r in summ.iterrows():
        name = str(r["configuration"])
        ref = str(r.get("reference_configuration", name))
        label = f"study settings (vs {ref})" if name == "study" else name.replace("_", " ")
        settings = "; ".join(str(r[c]) for c in ("dimension", "spacing_mm", "interpolation", "resegmentation",
                                                "discretisation") if c in r and isinstance(r[c], str) and r[c])
        n_mis, n_known = int(r.get("n_mismatch", 0) or 0), int(r.get("n_mismatch_known_deviation", 0) or 0)
        # the study's other mismatches come from its settings, not from an unexplained deviation
        other = f"{n_mis - n_known} (settings differ)" if name == "study" else n_mis - n_known
        rows.append([label, h.Html(h.e(settings) or "—"), int(r["n_reference"]), int(r["n_computed"]),
                     int(r["n_match"]), n_known, other, r["match_rate"]])
    caption = ("<strong>IBSI 1 conformance.</strong> Per configuration (IBSI digital phantom; CT phantom PAT1 in "
               "configurations A–E, Zwanenburg et al. 2020, Radiology 295:328): the IBSI features with a reference "
               "value, those the extraction (pyradiomics) computes, and those within the IBSI tolerance. Mismatches "
               "are split into those a documented pyradiomics deviation explains and unexplained ones; match rate = "
               "matches / computed features. IBSI's diagnostic features (image and ROI sizes after each processing "
               "step) are left out of the counts. The <em>study settings</em> row applies this study's own "
               "preprocessing and pyradiomics parameters to PAT1 and compares them with the closest configuration: "
               "it measures the effect of the settings, not conformance. Per feature: "
               "<code>analytical/ibsi.tsv</code>.")
    out.append("<figure>" + h.table(["Configuration", "Settings", "IBSI features", "Computed", "Match",
                                    "Mismatch: documented deviation", "Mismatch: unexplained", "Match rate"],
                                   rows, "compact") + f"<figcaption>{caption}</figcaption></figure>")
    ib = data.get("ibsi")
    if ib is not None and {"configuration", "match", "deviation", "known_deviation"} <= set(ib.columns):
        conf = ib[ib["configuration"].astype(str) != "study"]
        bad = conf[conf["match"].astype(str) == "mismatch"]
        if len(bad):
            def _names(c):
                return ", ".join(dict.fromkeys(map(str, c)))

            groups = (bad.assign(deviation=bad["deviation"].fillna("").astype(str).replace("", "no known deviation"))
                      .groupby("deviation", sort=False)
                      .agg(n=("match", "size"), configurations=("configuration", _names))
                      .sort_values("n", ascending=False).head(8))
            out.append(h.table(["Mismatches", "Configurations", "Deviation"],
                              [[int(g.n), g.configurations, k] for k, g in groups.iterrows()], "compact"))
            out.append(h.p("The mismatches grouped by their deviation note (largest groups first).", "note"))
    return "\n".join(out)


def _section_analytical(data: dict, s: dict) -> str:
    out = ["<h2 id=\"analytical\">2. Analytical validity</h2>"]
    icc, threshold = data["icc"], s.get("threshold")
    if not s["assessed"]:
        why = ("<code>analytical/icc.tsv</code> has no rows" if data["icc_exists"]
               else "<code>analytical/icc.tsv</code> was not produced")
        out.append(h.p("<strong>Reproducibility was not assessed</strong>: the study has no repeated "
                      "measurements (no test-retest scans, second readers or perturbations), so no "
                      f"intraclass correlation could be computed ({why}). The measurement error of the "
                      "features is unknown and the model features could not be filtered for stability.",
                      "warn"))
        more = _section_analytical_more(data, s)
        out.append(more)
        return "\n".join(out)
    out.append(h.kv_table([
        ("Design", s.get("design") or "—"),
        ("ICC form", ", ".join(s["forms"]) or "—"),
        ("Features assessed", s["n_features"]),
        ("Subjects", ", ".join(map(str, s["n_subjects"])) or "—"),
        ("Repeats per subject", ", ".join(map(str, s["n_repeats"])) or "—"),
        ("Median ICC", s["median_icc"]),
        (f"Stable features (95% CI lower bound ≥ {threshold:g})", s["n_stable"]),
    ]))
    for warning in s.get("form_warnings", []):
        out.append(h.p(f"<strong>ICC form not valid for this design.</strong> {h.e(warning)}.", "warn"))
    out.append(h.table(["Koo & Li band", "ICC range", "Features"],
                      [[b, r, s["bands"][b]] for b, r in zip(
                          _BANDS, ("< 0.5", "0.5 – < 0.75", "0.75 – 0.9", "> 0.9"))]))
    out.append(h.figure(
        lambda: F.icc_figure(icc, threshold=threshold),
        f"<strong>Feature reproducibility.</strong> Each row is one feature: the dot is its ICC "
        f"({h.e(', '.join(s['forms']))}) and the bar its 95% confidence interval; features are grouped by "
        "image type and feature class and sorted by ICC within a group (with many features, one row per "
        "group and one dot per feature). Colours give the Koo &amp; Li (2016) band (poor &lt; 0.5, "
        "moderate &lt; 0.75, good ≤ 0.9, excellent &gt; 0.9). The dashed line is the stability threshold: a "
        "feature whose whole interval lies to its right is stable.",
        "ICC per feature with 95% CI", name="icc"))
    out.append(_section_analytical_more(data, s))
    return "\n".join(out)


def _validation_statement(card: Mapping, cohorts: Sequence[str]) -> str:
    iv = card.get("internal_validation") or "cross-validation"
    train = h.join(card.get("training_cohorts"))
    ext = [c for c in cohorts if c != "train"]
    if card.get("validation") == "external":
        return h.p(
            f"<strong>Validation: external.</strong> The model was fitted on {h.e(train)} "
            f"(n = {h.num(card.get('n_train'))}, {h.num(card.get('n_events_train'))} events), frozen, and applied "
            f"unchanged to the external cohort(s) {h.e(h.join(ext))}, which played no part in feature selection, "
            f"fitting or tuning. Rows labelled <em>train</em> are internal validation (out-of-fold predictions "
            f"of {h.e(iv)}) on the training data, not apparent performance.", "statement")
    return h.p(
        f"<strong>Validation: internal validation only.</strong> No external cohort was available. All "
        f"performance figures are internal validation on the single training site {h.e(train)}: out-of-fold "
        f"predictions of {h.e(iv)}. They do not show how the model transports to other sites, scanners or "
        "populations; an external validation is needed before any clinical use.", "statement warn")


def _section_clinical(view: ResultsView, data: dict, summary: dict, cohorts: Sequence[str]) -> str:
    card = data["card"]
    out = ["<h2 id=\"clinical\">3. Clinical validity</h2>", _validation_statement(card, cohorts),
           "<h3 id=\"model\">Model</h3>"]
    if not card:
        out.append(h.p("No model card (<code>clinical/model/model_card.json</code>) was found.", "warn"))
    hp = card.get("hyperparameters") or {}
    out.append(h.kv_table([
        ("Learner", card.get("learner", "—")),
        ("Hyper-parameters", ", ".join(f"{k} = {h.num(v) if h.isnum(v) else v}" for k, v in hp.items()) or "—"),
        ("Candidate features", summary["n_model_features"]),
        ("Non-zero coefficients", summary["n_nonzero_coefficients"]),
        ("Training cohorts", h.join(card.get("training_cohorts"))),
        ("External cohorts", h.join(card.get("external_cohorts"))),
        ("Training cases / events", f"{h.num(card.get('n_train'))} / {h.num(card.get('n_events_train'))}"),
        ("Events per variable", summary["events_per_variable"]),
        ("Internal validation", card.get("internal_validation", "—")),
        ("Seed", card.get("seed", "—")),
        ("Model file (SHA-256)", f"{card.get('model_file', '—')} ({card.get('model_sha256', '—')})"),
    ]))
    coefs = {k: h.f(v) for k, v in (card.get("coefficients") or {}).items()}
    nz = sorted(((k, v) for k, v in coefs.items() if v != 0), key=lambda kv: (-abs(kv[1]), kv[0]))
    if nz or "intercept" in card:
        rows = [[h.Html("<em>intercept</em>"), h.f(card.get("intercept"))]] + [[k, v] for k, v in nz]
        out.append(h.table(["Term", "Coefficient"], rows, "compact"))
        out.append(h.p("Non-zero coefficients of the frozen model, largest magnitude first (on the scale of "
                      "the model's inputs).", "note"))

    out.append("<h3 id=\"discrimination\">Discrimination</h3>")
    rows = []
    for c in cohorts:
        m = data["cohorts"][c]["metrics"] or {}
        rows.append([h.cohort_name(c), m.get("validation", "—"), m.get("n"), m.get("n_events"),
                     m.get("prevalence"), h.Html(h.ci(m.get("auc"), m.get("auc_ci_low"), m.get("auc_ci_high"))),
                     m.get("auc_ci_method", "—"), m.get("brier"), m.get("log_loss")])
    out.append(h.table(["Cohort", "Validation", "n", "Events", "Prevalence", "AUC [95% CI]", "CI method",
                       "Brier", "Log loss"], rows))
    curves = {c: view.tsv(Results.DISCRIMINATION_CURVE, cohort=c) for c in cohorts}
    curves = {c: df for c, df in curves.items() if df is not None and len(df)}
    if curves and not view.survival:
        out.append(h.figure(
            lambda: F.roc_figure(curves, {c: data["cohorts"][c]["metrics"] or {} for c in curves}),
            "<strong>ROC curves.</strong> Sensitivity against 1 − specificity as the decision threshold "
            "moves, one curve per cohort; the legend gives the AUC with its 95% CI. The dashed curve "
            "(<em>train</em>) is built from out-of-fold predictions of the internal validation; solid "
            "curves are external cohorts. A curve nearer the top-left corner discriminates better; the "
            "dotted diagonal is chance.",
            "ROC curves per cohort", name="roc"))
    if view.survival:
        out.append(survival_clinical(view))
    out.append(clinical_extras(view))
    out.append(internal_external_block(view))
    out.append(federated_block(view))
    out.append(grouped_explanations(view))
    return "\n".join(out)


def _binary_calibration(view: ResultsView, data: dict, cohorts: Sequence[str]) -> list[str]:
    out = []
    out.append("<h3 id=\"calibration\">Calibration</h3>")
    rows = []
    for c in cohorts:
        g = (data["cohorts"][c]["calibration"] or {}).get
        est = {k: h.Html(h.ci(g(k), g(f"{k}_ci_low"), g(f"{k}_ci_high")))
               for k in ("calibration_intercept", "calibration_slope")}
        rows.append([
            h.cohort_name(c), g("n"), g("n_events"), est["calibration_intercept"], est["calibration_slope"],
            g("ici"), g("e50"), g("e90"), g("emax"), g("brier"), g("brier_scaled"),
            h.Html(f"{h.num(g('spiegelhalter_z'))} (p = {h.num(g('spiegelhalter_p'))})"),
        ])
    out.append(h.table(["Cohort", "n", "Events", "Intercept [95% CI]", "Slope [95% CI]", "ICI", "E50", "E90",
                       "Emax", "Brier", "Scaled Brier", "Spiegelhalter z"], rows))
    flags = []
    for c in cohorts:
        g = (data["cohorts"][c]["calibration"] or {}).get
        if h.f(g("n_prob_at_bounds")) > 0:
            flags.append(f"{h.e(h.cohort_name(c))}: {int(h.f(g('n_prob_at_bounds')))} predicted probabilities "
                         "of exactly 0 or 1 (logit ∓∞; moved to the nearest representable probability, "
                         "5e-324 or 1 − 2<sup>−53</sup>, so intercept and slope depend on that choice)")
        if g("calibration_note"):
            flags.append(f"{h.e(h.cohort_name(c))}: {h.e(g('calibration_note'))} (shown as —)")
    if flags:
        out.append(h.p("<strong>Read with care.</strong> " + "; ".join(flags) + ".", "warn"))
    out.append(h.p("Ideal: intercept 0 (calibration-in-the-large, slope fixed at 1), slope 1 (below 1: "
                  "predictions too extreme), ICI/E50/E90/Emax 0 (mean, median, 90th percentile and maximum "
                  "absolute distance between the loess-smoothed and the ideal curve; Austin &amp; Steyerberg "
                  "2019). Scaled Brier: 1 − Brier / Brier of the prevalence, higher is better.", "note"))
    out.extend(cohort_figures(view, Results.CALIBRATION_FIGURE, "calibration",
                                "calibration curve (loess) with its 95% bootstrap band, decile proportions with "
                                "Wilson CIs, and the distribution of predictions (events up, non-events down). "
                                "A curve below the diagonal means the model over-estimates risk there"))
    return out


def _section_utility(view: ResultsView, data: dict, summary: dict, cohorts: Sequence[str]) -> str:
    out = ["<h2 id=\"utility\">4. Clinical utility</h2>"]
    if view.survival:
        out.append(survival_utility(view))
    else:
        out.extend(_binary_calibration(view, data, cohorts))
    out.append("<h3 id=\"decision-curve\">Decision-curve analysis</h3>")
    out.extend(cohort_figures(view, Results.DECISION_CURVE_FIGURE, "decision_curve",
                                "net benefit of every model on the same cases against treat-all (dashed) and "
                                "treat-none (dotted); the band is the primary model's 95% bootstrap interval. The "
                                "model is useful at thresholds where its curve lies above both defaults"))
    rows = []
    for c in cohorts:
        rng = summary["cohorts"][c]["net_benefit_threshold_range"]
        if data["cohorts"][c]["decision_curve"] is None:
            text = "no decision curve"
        elif rng is None:
            text = "none: the model never beats both treat-all and treat-none"
        else:
            text = f"{h.num(rng[0])} – {h.num(rng[1])}"
        rows.append([h.cohort_name(c), text])
    out.append(h.table(["Cohort", "Threshold range where the model beats treat-all and treat-none"], rows))
    out.append(h.p("The widest contiguous run of thresholds on the decision-curve grid at which the model's "
                  "net benefit exceeds both defaults.", "note"))
    out.append(utility_extras(view))
    return "\n".join(out)


def _section_limitations(summary: dict) -> str:
    out = ["<h2 id=\"limitations\">5. Limitations detected from the results</h2>"]
    lim = summary["limitations"]
    if lim:
        out.append("<ul>" + "".join(f"<li>{h.e(x)}</li>" for x in lim) + "</ul>")
    else:
        out.append(h.p("None of the automatic checks flagged a limitation."))
    out.append(h.p("Checks: events per variable &lt; 10; internal validation only; external cohort with "
                  "fewer than 100 events; calibration slope CI excluding 1 or intercept CI excluding 0; "
                  "no repeated measurements; model features that are not stable; IBSI conformance "
                  "mismatches (when checked). They do not replace a critical appraisal (e.g. TRIPOD+AI, "
                  "PROBAST, CLAIM).", "note"))
    return "\n".join(out)


def _config_text(config: Mapping) -> str:
    try:
        return yaml.safe_dump(to_jsonable(dict(config)), sort_keys=False, allow_unicode=True)
    except Exception:  # noqa: BLE001
        return json.dumps(to_jsonable(dict(config)), indent=2)


def _section_appendix(config: Mapping, provenance: Mapping | None, rulegraph: str | None) -> str:
    out = ["<h2 id=\"appendix\">6. Appendix A: provenance</h2>"]
    if not provenance:
        out.append(h.p("No provenance record was supplied.", "warn"))
    else:
        out.append(h.p("The full record is <code>report/provenance.json</code>: SHA-256 of every input and output "
                      "file, the configuration as run, every installed package, the platform. "
                      "<code>acceflow verify RESULTS_DIR</code> re-hashes the files it names and reports "
                      "any that changed since the run."))
        plat = provenance.get("platform") or {}
        gpus = plat.get("gpus")
        out.append(h.kv_table([
            ("Created (UTC)", provenance.get("created", "—")),
            ("acceflow commit", provenance.get("commit") or "unknown (not a git checkout, or no commit)"),
            ("Input files checksummed (SHA-256)", len(provenance.get("inputs") or {})),
            ("Output files checksummed (SHA-256)", len(provenance.get("outputs") or {})),
            ("Config files", ", ".join(Path(f).name for f in (provenance.get("config_files") or {})) or "—"),
            ("Seeds", ", ".join(f"{k} = {v}" for k, v in (provenance.get("seeds") or {}).items()) or "—"),
            ("Python", plat.get("python", "—")),
            ("Operating system", plat.get("os", "—")),
            ("CPU", f"{plat.get('cpu', '—')} ({plat.get('cpu_count', '—')} logical cores)"),
            ("Memory (GiB)", plat.get("memory_gib")),
            ("GPU", ", ".join(g.get("name", "?") for g in gpus) if gpus else "none detected"),
            ("Installed distributions recorded", len(provenance.get("environment") or {}) or "—"),
        ]))
        out.append("<h3 id=\"rulegraph\">Workflow: rule graph</h3>")
        if rulegraph:
            out.append(svg_figure(
                rulegraph,
                "<strong>Rule graph of this run.</strong> Each box is a Snakemake rule, with the number of jobs it "
                "ran or reused in this run (per-scan rules have one job per scan, extract_case one per case); "
                "an arrow runs from a rule to the rule that reads its output, so data flows from top to bottom: "
                "ingest, imaging, analytical validity, model, per-cohort metrics, the dossier. The same graph as "
                "<code>snakemake --rulegraph</code>; also in <code>report/rulegraph.svg</code>.",
                "Snakemake rule graph"))
        else:
            why = (provenance.get("rulegraph") or {}).get("error") or "not recorded (run outside Snakemake)"
            out.append(h.p(f"Rule graph: {h.e(why)}.", "note"))
        bench = provenance.get("benchmarks") or {}
        out.append("<h3 id=\"runtimes\">Run times per rule</h3>")
        if bench:
            rows = [[r, b.get("jobs"), b.get("total_s"), b.get("mean_s"), b.get("max_s"), b.get("max_rss_mb")]
                    for r, b in bench.items()]
            tot = sum(h.f(b.get("total_s")) for b in bench.values())
            rows.append([h.Html("<strong>all</strong>"), sum(int(b.get("jobs") or 0) for b in bench.values()),
                         tot, None, None, None])
            out.append(h.table(["Rule", "Jobs", "Total (s)", "Mean (s)", "Max (s)", "Peak RSS (MB)"], rows,
                              "compact"))
            out.append(h.p("Wall-clock seconds from Snakemake's <code>benchmark:</code> files "
                          "(<code>benchmarks/</code>); the dossier rule's own time is written after the dossier.",
                          "note"))
        else:
            out.append(h.p("No benchmark files were found.", "note"))
        versions = provenance.get("versions") or {}
        out.append("<h3 id=\"versions\">Package versions</h3>")
        out.append(h.table(["Package", "Version"],
                          [[k, v if v is not None else "not installed"] for k, v in sorted(versions.items())],
                          "compact"))
        out.append(h.p("Key packages; every installed distribution is listed under <code>environment</code> in "
                      "<code>provenance.json</code>.", "note"))
    out.append("<h3 id=\"config\">Configuration as run</h3>")
    filled = (provenance or {}).get("defaults_filled")
    if filled:
        out.append(h.p("Keys filled in from the schema's defaults (not set by the config files or "
                      f"<code>--config</code>): {', '.join(f'<code>{h.e(k)}</code>' for k in filled)}.", "note"))
    out.append(f"<pre>{h.e(_config_text(config))}</pre>")
    return "\n".join(out)


def load_checklist(name: str) -> dict:
    """A reporting checklist shipped with acceflow: ``"tripod-ai"`` or ``"clear"`` (see :data:`CHECKLISTS`).

    Returns the YAML's content: ``name``, ``reference`` and ``items`` (each ``id``, ``section``,
    ``text``; ``answer``: the function of :mod:`acceflow.report.checklist_answers` that answers it
    from the run's results, absent for items only the authors can answer; optional ``author_note``).
    """
    path = Path(__file__).with_name("checklists") / CHECKLISTS[name]
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _where_link(where: str | None) -> str:
    if not where:
        return ""
    if where.startswith("#"):
        return f'<a href="{h.e(where)}">dossier {h.e(where[1:])}</a>'
    return f'<a href="../{h.e(where)}"><code>{h.e(where)}</code></a>'


_STATUS = {"covered": "covered", "partly": "in part", "author": "<em>authors to complete</em>"}


def checklist_answers(view: ResultsView) -> dict[str, list[tuple[dict, Answer]]]:
    """Checklist key -> each item with its answer, derived from this run's results
    (:func:`acceflow.report.checklist_answers.answer_item`)."""
    facts = RunFacts(view)
    return {key: [(i, answer_item(i, facts)) for i in load_checklist(key)["items"]] for key in CHECKLISTS}


def _section_checklists(view: ResultsView) -> str:
    out = ["<h2 id=\"checklists\">7. Appendix B: reporting checklists</h2>",
           h.p("Each item of TRIPOD+AI and CLEAR is answered from this run's results: <strong>covered</strong> "
              "(with a link to the dossier section or the results file that shows it; file links resolve next to "
              "this dossier in the results folder), covered <strong>in part</strong>, or the <em>authors' to "
              "complete</em>, with the reason. Item texts are brief paraphrases; report against the published "
              "checklists.", "note")]
    for key, answered in checklist_answers(view).items():
        cl = load_checklist(key)
        n = {s: sum(1 for _, a in answered if a.status == s) for s in _STATUS}
        out.append(f"<h3 id=\"{key}\">{h.e(cl['name'])} ({h.e(cl['reference'])})</h3>")
        out.append(h.p(f"{n['covered']} of {len(answered)} items covered by this run, {n['partly']} in part; "
                      f"{n['author']} for the authors."))
        rows = [[str(i["id"]), i["section"], i["text"],
                 h.Html(" ".join(x for x in (_STATUS[a.status] + (":" if a.where else ""), _where_link(a.where)) if x)),
                 h.Html(a.note)] for i, a in answered]
        out.append(h.table(["Item", "Section", "Item (paraphrased)", "Status", "Answer from this run"], rows,
                           "compact checklist"))
    return "\n".join(out)


# ---------------------------------------------------------------------------------------- entry


def build_dossier(
    results_dir: str | os.PathLike,
    config: Mapping,
    cohorts: Sequence[str],
    out_html: str | os.PathLike,
    out_summary: str | os.PathLike,
    provenance: Mapping | None = None,
    rulegraph_svg: str | None = None,
    figures_dir: str | os.PathLike | None = None,
) -> dict:
    """Write the evidence dossier (self-contained HTML), its ``summary.json`` and its figures as files.

    Parameters
    ----------
    results_dir : the results folder holding the results contract
    config : the configuration as run (outcome, cohorts, reproducibility threshold, ...)
    cohorts : cohort folders to report, ``"train"`` (internal, out-of-fold) and each external one
    out_html, out_summary : where to write the dossier and the summary (written atomically)
    provenance : a record from :func:`acceflow.report.provenance.collect_provenance`; when
        ``None``, ``report/provenance.json`` under ``results_dir`` is used if it exists
    rulegraph_svg : the run's rule graph as SVG (embedded in the appendix); when ``None``,
        ``report/rulegraph.svg`` under ``results_dir`` is used if it exists
    figures_dir : where every figure the dossier draws is also written as ``{name}.png`` (the bytes
        embedded) and ``{name}.svg`` (default ``report/figures/`` under ``results_dir``; earlier
        PNG/SVG files there are removed first)

    Returns
    -------
    dict : the summary (what ``summary.json`` holds): validation type, feature counts, events per
        variable, and per cohort n, events, AUC with CI, Brier, calibration intercept / slope with
        CIs, ICI and the threshold range where the model beats both default strategies; plus the
        detected limitations; ``verdicts`` (per ACCE tier: verdict, reason, rule) and ``figures`` (the
        figure files written, relative to the results folder).
    """
    results = Path(results_dir)
    if provenance is None:
        provenance = ResultsView(results, config, cohorts).json(Results.PROVENANCE)
    rulegraph = results / Results.RULEGRAPH
    if rulegraph_svg is None and rulegraph.is_file():
        rulegraph_svg = rulegraph.read_text(encoding="utf-8")
    view = ResultsView(results, config, cohorts, provenance=provenance, rulegraph_svg=rulegraph_svg)
    summary = summarise(view)
    title = str(config.get("title") or config.get("name") or "Imaging biomarker evidence dossier")
    folder = Path(figures_dir) if figures_dir is not None else results / Results.REPORT_FIGURES
    for old in folder.glob("*.*g") if folder.is_dir() else []:  # figures of an earlier dossier
        if old.suffix in (".png", ".svg"):
            old.unlink()
    with h.figures_to(folder) as names:
        sections = [s for s in (section(view) for section in SECTIONS) if s is not None and s.html]
    page = render_page(title, sections, (provenance or {}).get("created"), NAV)
    atomic_write_bytes(page.encode("utf-8"), out_html)
    summary["figures"] = [f"{folder.parent.name}/{folder.name}/{n}.{ext}" for n in names for ext in ("png", "svg")]
    write_json(summary, out_summary)
    return summary


def summarise(view: ResultsView) -> dict:
    """The dossier's summary (what ``summary.json`` holds), also kept on ``view.summary`` / ``view.icc``."""
    if view.summary:
        return view.summary
    data = _load(view)
    config, cohorts = view.config, view.cohorts
    icc = _icc_summary(data["icc"], view.reproducibility_threshold)
    summary = _summarise(view, data, icc, config, cohorts)
    extra = _analytical_summary(data, config)
    summary.update(extra)
    summary.update(segmentation_summary(view))
    icc.update(extra, design=extra.get("reproducibility_design"))
    verdicts = tier_verdicts(view, summary)
    view._cache["_verdicts"] = verdicts
    summary["verdicts"] = {v.anchor: v.as_dict() for v in verdicts}
    view.summary, view.icc = summary, icc
    return summary


# --------------------------------------------------------------------------- sections: one signature


def summary_section(view: ResultsView) -> Section:
    """The summary screen: claim, headline figures and a verdict per ACCE tier (acceflow.report.summary_section)."""
    summary = summarise(view)
    return Section("summary", summary_screen(view, summary, view._cache["_verdicts"]))


def study_section(view: ResultsView) -> Section:
    return Section("study", _section_study(view, _load(view), view.config, summarise(view)))


def analytical_section(view: ResultsView) -> Section:
    summarise(view)
    return Section("analytical", _section_analytical(_load(view), view.icc))


def clinical_section(view: ResultsView) -> Section:
    return Section("clinical", _section_clinical(view, _load(view), summarise(view), view.cohorts))


def utility_section(view: ResultsView) -> Section:
    return Section("utility", _section_utility(view, _load(view), summarise(view), view.cohorts))


def limitations_section(view: ResultsView) -> Section:
    return Section("limitations", _section_limitations(summarise(view)))


def appendix_section(view: ResultsView) -> Section:
    return Section("appendix", _section_appendix(view.config, view.provenance, view.rulegraph_svg))


def checklists_section(view: ResultsView) -> Section:
    summarise(view)
    return Section("checklists", _section_checklists(view))


#: The dossier's sections in order; each ``section(view) -> Section | None``.
SECTIONS = (summary_section, study_section, analytical_section, segmentation_section, synthetic_section, clinical_section,
            utility_section,
            deep_section, limitations_section, appendix_section, checklists_section,
            quality_section)

#: The table of contents (anchor, label).
NAV = (("summary", "Summary: verdict per ACCE tier"), ("study", "Study and data"), ("analytical", "Analytical validity"), ("clinical", "Clinical validity"),
       ("utility", "Clinical utility"), ("limitations", "Limitations"), ("appendix", "Appendix A: provenance"),
       ("checklists", "Appendix B: reporting checklists"), ("quality-scores", "Appendix C: quality scores"))
