"""Clinical-validity additions to the dossier: operating point, model comparison, optimism
correction, coefficient CIs and permutation importance (each shown when its file exists)."""

from __future__ import annotations

from acceflow.report import figures as F
from acceflow.report import html as h
from acceflow.report.view import Results, ResultsView


def clinical_extras(view: ResultsView) -> str:
    """HTML blocks for the clinical-validity section (operating point, model comparison, optimism,
    coefficients, permutation importance), each shown when its file exists."""
    cohorts = view.cohorts
    out = []
    rows = []
    for c in cohorts:
        m = view.metrics(c)
        if "at_threshold_threshold" not in m:
            continue
        rows.append([h.cohort_name(c), m.get("at_threshold_threshold"),
                     *(h.Html(h.ci(m.get(f"at_threshold_{k}"), m.get(f"at_threshold_{k}_ci_low"),
                                     m.get(f"at_threshold_{k}_ci_high")))
                       for k in ("sensitivity", "specificity", "ppv", "npv")),
                     h.Html(h.ci(m.get("auc"), m.get("auc_bootstrap_ci_low"), m.get("auc_bootstrap_ci_high")))])
    if rows:
        card = view.card
        method = (card.get("threshold") or {}).get("method", "youden")
        out += ["<h3>Operating point</h3>",
                h.table(["Cohort", "Threshold", "Sensitivity", "Specificity", "PPV", "NPV",
                          "AUC [bootstrap 95% CI]"], rows),
                h.p(f"The threshold was fixed on the training cohorts' out-of-fold predictions ({h.e(method)}) "
                     f"and applied unchanged to every cohort; Wilson 95% CIs. The last column gives the AUC "
                     f"with a stratified bootstrap CI beside the DeLong CI above.", "note")]
    blocks = []
    for c in cohorts:
        table = view.tsv(Results.MODEL_COMPARISON, cohort=c)
        if table is None:
            continue
        ref = table["reference"].iloc[0]
        rows = [[r.model, h.Html(h.ci(r.auc, r.auc_ci_low, r.auc_ci_high)),
                 "reference" if r.model == ref else r.auc_difference, "" if r.model == ref else r.p_value]
                for r in table.itertuples()]
        blocks += [f"<h4>{h.e(h.cohort_name(c))} (n = {int(table['n'].iloc[0])}, "
                   f"{int(table['n_events'].iloc[0])} events)</h4>",
                   h.table(["Model", "AUC [95% CI]", f"ΔAUC vs {ref}", "p (paired DeLong)"], rows, "compact")]
    if blocks:
        out += ["<h3 id=\"model-comparison\">Model comparison</h3>",
                h.p("Every model on the same cases. The paired DeLong test (DeLong et al. 1988) compares each "
                     "model's AUC with the reference model's (the clinical baseline when it exists): does the "
                     "biomarker add to what the clinic already knows? <em>train</em> rows are out-of-fold.",
                     "note"), *blocks]
    opt = view.tsv(Results.OPTIMISM)
    if opt is not None and len(opt):
        rows = [[r.metric, r.apparent, r.optimism, r.corrected, int(r.n_boot)] for r in opt.itertuples()]
        out += ["<h3>Internal validation: optimism correction</h3>",
                h.table(["Metric", "Apparent", "Optimism", "Corrected", "Bootstrap replicates"], rows, "compact"),
                h.p("Harrell's bootstrap optimism correction (Harrell, Lee & Mark 1996): the whole modelling "
                     "procedure refitted on each bootstrap sample; corrected = apparent − mean optimism. Shown "
                     "beside the repeated cross-validation estimate above; with many candidate features and few "
                     "events the bootstrap correction is known to stay optimistic, so the cross-validated "
                     "figure is the one to quote.", "note")]
    coefs = view.tsv(Results.COEFFICIENTS)
    if coefs is not None and len(coefs):
        coefs = coefs[(coefs["coefficient"] != 0) | (coefs["selected_fraction"] >= 0.5)]
        coefs = coefs.reindex(coefs["coefficient"].abs().sort_values(ascending=False).index).head(25)
        rows = [[r.feature, h.Html(h.ci(r.coefficient, r.ci_low, r.ci_high)), r.selected_fraction]
                for r in coefs.itertuples()]
        out += ["<h3>Coefficients with bootstrap CIs</h3>",
                h.table(["Feature", "Coefficient [95% CI]", "Selected in (share of refits)"], rows, "compact"),
                h.p("The whole model (inner search included) refitted on stratified bootstrap samples of the "
                     "training cases; percentile CIs per standard deviation of each input; the last column is "
                     "how often the L1 penalty kept the feature (a measure of selection stability).", "note")]
    for c in cohorts:
        imp = view.tsv(Results.PERMUTATION_IMPORTANCE, cohort=c)
        if imp is None or not len(imp):
            continue
        rows = [[r.feature, r.importance_mean, r.importance_sd] for r in imp.head(10).itertuples()]
        out += [f"<h3>Permutation importance on {h.e(h.cohort_name(c))}</h3>",
                h.table(["Feature", "AUC drop (mean)", "SD"], rows, "compact"),
                h.p(f"Drop in the frozen model's AUC on this cohort when one input is shuffled "
                     f"(baseline AUC {h.num(imp['auc_baseline'].iloc[0])}); ten largest.", "note")]
    return "\n".join(out)


def cohort_figures(view: ResultsView, template: str, name: str, caption: str) -> list[str]:
    """The per-cohort figures a rule drew (``utility_figures``: calibration, decision curves), one per
    cohort, PNG embedded with the SVG named beside it; each is embedded once, here."""
    out = []
    for c in view.cohorts:
        fig = h.png_file_figure(view.path(template, cohort=c, ext="png"),
                                f"<strong>{h.e(h.cohort_name(c))}</strong>: {caption} (also "
                                f"<code>{h.e(view.relative(template, cohort=c, ext='svg'))}</code>).",
                                f"{name} {c}")
        if fig is not None:
            out.append(fig)
    return out


def survival_clinical(view: ResultsView) -> str:
    """Discrimination of a survival model: C-indices, time-dependent AUC, HR, risk groups, KM."""
    cohorts = view.cohorts
    rows = []
    for c in cohorts:
        m = view.metrics(c)
        td = ", ".join(f"{k[7:-1]} d: {h.num(v)}" for k, v in m.items() if k.startswith("td_auc_"))
        rows.append([h.cohort_name(c), m.get("n"), m.get("n_events"),
                     h.Html(h.ci(m.get("c_index"), m.get("c_index_ci_low"), m.get("c_index_ci_high"))),
                     h.Html(h.ci(m.get("uno_c"), m.get("uno_c_ci_low"), m.get("uno_c_ci_high"))), td or "—",
                     h.Html(h.ci(m.get("hr_per_sd"), m.get("hr_per_sd_ci_low"), m.get("hr_per_sd_ci_high"))),
                     m.get("logrank_p_value")])
    out = ["<h3>Discrimination (survival)</h3>",
           h.table(["Cohort", "n", "Events", "Harrell's C [95% CI]", "Uno's C [95% CI]", "Time-dependent AUC",
                     "HR per SD [95% CI]", "Log-rank p"], rows),
           h.p("Harrell's C and Uno's IPCW C (Uno et al. 2011) with percentile bootstrap CIs; cumulative/dynamic "
                "AUC at each horizon (Uno et al. 2007); hazard ratio per training standard deviation of the risk "
                "score (univariable Cox); log-rank test of the two risk groups cut at the training median. "
                "<em>train</em> rows are out-of-fold.", "note")]
    curves = {c: view.tsv(Results.DISCRIMINATION_CURVE, cohort=c) for c in cohorts}
    curves = {c: df for c, df in curves.items() if df is not None and len(df)}
    if curves:
        out.append(h.figure(lambda: F.km_figure(curves),
                             "<strong>Kaplan–Meier curves by risk group.</strong> Cases split at the median risk "
                             "score of the training cohort (the cut-off is fixed on training and applied "
                             "unchanged); shaded bands are 95% CIs. Separated curves mean the score stratifies "
                             "prognosis. Under each panel, the number at risk at each time tick (counted as "
                             "lifelines' <code>add_at_risk_counts</code> counts it, from lifelines' event table "
                             "written by the discrimination rule).", "Kaplan-Meier curves by risk group", name="km"))
    return "\n".join(out)


def survival_utility(view: ResultsView) -> str:
    """Calibration at the horizon (grouped and smoothed) and its figure."""
    cohorts = view.cohorts
    rows, horizon = [], None
    for c in cohorts:
        cal = view.calibration(c)
        horizon = cal.get("horizon_days", horizon)
        rows.append([h.cohort_name(c), cal.get("mean_predicted"), cal.get("observed_risk_km"),
                     cal.get("observed_expected_ratio"),
                     h.Html(h.ci(cal.get("calibration_slope"), cal.get("calibration_slope_ci_low"),
                                   cal.get("calibration_slope_ci_high"))),
                     cal.get("ici"), cal.get("e50"), cal.get("e90")])
    out = [f"<h3 id=\"calibration\">Calibration at {h.num(horizon)} days (survival)</h3>",
           h.table(["Cohort", "Mean predicted risk", "Observed risk (KM)", "O/E", "Slope [95% CI]", "ICI", "E50",
                     "E90"], rows),
           h.p("Observed risk from the Kaplan–Meier estimate at the horizon; ICI/E50/E90 from a Cox model on a "
                "restricted cubic spline of the complementary log-log of the predicted risk (Austin, Harrell &amp; "
                "van Klaveren 2020), its baseline read as a step function at the horizon (as R's "
                "<code>survfit.coxph</code>); slope: Cox regression on the linear predictor (1 ideal).", "note")]
    flags = [f"{h.e(h.cohort_name(c))}: {int(h.f(view.calibration(c).get('n_prob_at_bounds')))} predicted risks of "
             "exactly 0 or 1 (moved to the nearest representable probability for the smoother)"
             for c in cohorts if h.f(view.calibration(c).get("n_prob_at_bounds")) > 0]
    if flags:
        out.append(h.p("<strong>Read with care.</strong> " + "; ".join(flags) + ".", "warn"))
    out.extend(cohort_figures(view, Results.CALIBRATION_FIGURE, "calibration",
                              f"mean predicted risk against the Kaplan–Meier observed risk at {h.num(horizon)} days "
                              "in groups of predicted risk, with 95% CIs; the dotted diagonal is perfect calibration"))
    return "\n".join(out)


def utility_extras(view: ResultsView) -> str:
    """Calibration level (Van Calster hierarchy) and recalibration (the per-cohort utility figures
    are embedded in the calibration and decision-curve parts of the dossier)."""
    cohorts = view.cohorts
    out = []
    rows = []
    for c in cohorts:
        cal = view.calibration(c)
        if "calibration_level" in cal:
            rows.append([h.cohort_name(c), cal["calibration_level"], cal.get("calibration_level_evidence", "")])
    if rows:
        out += ["<h3>Level of calibration</h3>",
                h.table(["Cohort", "Level reached", "Evidence"], rows),
                h.p("The calibration hierarchy of Van Calster et al. (2016): <em>mean</em> (intercept's CI contains "
                     "0), <em>weak</em> (and the slope's CI contains 1), <em>moderate</em> (and the flexible "
                     "calibration curve's 95% bootstrap band contains the diagonal over at least 90% of the range "
                     "of predictions). <em>Strong</em> calibration cannot be shown from data and is never claimed; "
                     "<em>none</em> means calibration-in-the-large already fails.", "note")]
    for c in cohorts:
        recal = view.tsv(Results.RECALIBRATION, cohort=c)
        if recal is None or not len(recal):
            continue
        rows, notes = [], []
        for r in recal.to_dict("records"):
            label = "original model" if r["method"] == "original" else f"RECALIBRATED ({r['method']})"
            note = r.get("note") if isinstance(r.get("note"), str) else ""
            if r["method"] == "isotonic" and "n_steps_min" in r:  # a step function: no intercept, no slope
                steps = "–".join(dict.fromkeys(str(int(v)) if h.isnum(v) and v == v else "?"
                                               for v in (r["n_steps_min"], r["n_steps_max"])))
                cells = [h.Html(f"not applicable (step function, {steps} steps per fold)"),
                         h.Html(f"not applicable (range {h.num(r.get('recalibrated_low'), 6)} – "
                                f"{h.num(r.get('recalibrated_high'), 6)})")]
            else:
                cells = [h.Html(h.ci(r.get(f"calibration_{k}"), r.get(f"calibration_{k}_ci_low"),
                                     r.get(f"calibration_{k}_ci_high"))) for k in ("intercept", "slope")]
                if note:
                    notes.append(f"{label}: {note}")
            rows.append([label, r.get("evaluation"), *cells, r.get("ici"), r.get("brier")])
        out += [f"<h3>Recalibration on {h.e(h.cohort_name(c))}</h3>",
                h.table(["Probabilities", "Evaluated", "Intercept [95% CI]", "Slope [95% CI]", "ICI", "Brier"],
                         rows, "compact"),
                *([h.p("<strong>Not estimable</strong> (shown as —): " + h.e("; ".join(notes)) + ".", "warn")]
                  if notes else []),
                h.p("Recalibrated probabilities are <strong>not</strong> the frozen model's: each update "
                     "(intercept only; logistic intercept and slope; isotonic) was fitted on part of this cohort "
                     "and judged on the held-out part (cross-validation within the cohort), so the figures show "
                     "what updating the model for this site would achieve on its new cases.", "note")]
    return "\n".join(out)
