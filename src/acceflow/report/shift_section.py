"""Dossier parts on domain shift: the feature-level domain shift (beside the site effect, in
analytical validity) and the domain-adapted deep model (DANN, in the deep-learning section).

Reads ``analytical/domain_shift.tsv`` / ``.json`` and the ``deep`` / ``deep_dann`` comparators'
cards and metrics; computes nothing.
"""

from __future__ import annotations

import pandas as pd

from acceflow.report import figures as F
from acceflow.report import html as h
from acceflow.report.view import Results, ResultsView
from acceflow.study.settings import DANN_KIND, DEEP_KIND

__all__ = ["domain_shift_html", "dann_html"]


def _has(x) -> bool:
    v = h.f(x)
    return v == v


def _p(x) -> str:
    v = h.f(x)
    return "" if v != v else (f"{v:.3g}" if v >= 0.001 else "&lt; 0.001")


def domain_shift_html(table: pd.DataFrame | None, summary: dict | None) -> str:
    """The domain-shift subsection (empty string when the rule did not run or assessed nothing)."""
    if not summary:
        return ""
    out = ['<h3 id="domain-shift">Domain shift between sites</h3>']
    if not summary.get("assessed"):
        out.append(h.p(f"Domain shift not assessed: {h.e(summary.get('reason') or 'see the log')}.", "note"))
        return "\n".join(out)
    sets = summary.get("feature_sets") or {}
    first = next((s for s in sets.values() if s.get("assessed")), {})
    mmd = first.get("mmd") or {}
    out.append(h.p(
        "How far each site's feature distribution is from the training sites' (<code>analytical/domain_shift.tsv</code>, "
        "<code>.json</code>). <strong>Domain classifier</strong>: how well the site is predicted from the features — "
        f"{h.e(first.get('domain_classifier', ''))}; 0.5 means the sites cannot be told apart, 1 perfectly (values "
        "below 0.5 are cross-validation's known pessimism when nothing separates the sites). "
        "Before and after ComBat fitted on the training sites (sites absent from training mapped on their own "
        "location and scale, so that their shift in mean and variance is removed by construction). "
        f"<strong>MMD²</strong>: {h.e(mmd.get('estimate', ''))}, {h.e(mmd.get('kernel', ''))} kernel, bandwidth by the "
        f"{h.e(mmd.get('bandwidth', ''))}, on {h.e(mmd.get('standardisation', ''))}; p value from "
        f"{h.e(mmd.get('permutations', ''))} permutations of the site labels; each site against the training pool "
        "(a training site against the other training sites). <strong>Performance drop</strong>: the site's "
        "performance minus the internal out-of-fold performance of the model built on those features (radiomics: "
        "the primary model; deep: the deep network; deep_dann: the domain-adapted network, whose embedding DANN "
        "trains to hide the site). The training cases' embeddings come from networks trained on those cases, the "
        "other sites' do not: part of an embedding's site signal can be that difference."))
    order = list(dict.fromkeys([*(table["feature_set"].astype(str) if table is not None and len(table) else []), *sets]))
    rows = []
    for name, s in ((n, sets[n]) for n in order if n in sets):
        if not s.get("assessed"):
            rows.append([name, "", "", "", "", h.e(s.get("reason", ""))])
            continue
        trend = s.get("drop_vs_mmd") or {}
        trend_text = (f"Spearman ρ = {h.num(trend.get('spearman_rho'))} (p {_p(trend.get('p_value'))}, "
                      f"{trend.get('n_sites')} sites)" if trend.get("spearman_rho") is not None else trend.get("note") or "")
        rows.append([name, s.get("n_features"), len(s.get("sites") or []), s.get("domain_auc_before"),
                     s.get("domain_auc_after"), trend_text])
    out.append(h.table(["Features", "n features", "Sites", "Domain-classifier AUC before ComBat", "after ComBat",
                        "Performance drop vs MMD² across external sites"], rows, "compact"))
    if table is not None and len(table):
        site_rows = []
        for r in table.itertuples():
            site_rows.append([r.feature_set, f"{r.site} ({r.role})", r.n, f"{r.reference} ({r.n_reference})",
                              h.Html(f"{h.num(r.mmd2_before)} (p {_p(r.mmd_p_before)})" if _has(r.mmd2_before) else "—"),
                              h.Html(f"{h.num(r.mmd2_after)} (p {_p(r.mmd_p_after)})" if _has(r.mmd2_after) else "—"),
                              r.domain_auc_ovr_before, r.domain_auc_ovr_after,
                              h.Html(f"{h.num(r.performance_internal)} → {h.num(r.performance_site)}")
                              if _has(r.performance_site) else "—", r.performance_drop])
        out.append(h.table(["Features", "Site", "n", "Reference (n)", "MMD² before ComBat (p)", "MMD² after (p)",
                            "Site-vs-rest AUC before", "after", "Internal → site", "Drop"], site_rows, "compact"))
        if (table["role"] == "external").any() and pd.to_numeric(table["performance_drop"], errors="coerce").notna().any():
            out.append(h.figure(lambda: F.domain_shift_figure(table),
                                "<strong>Performance drop against domain shift.</strong> One dot per external site and "
                                "feature set: the site's MMD² to the training pool (x) and its performance minus the "
                                "internal out-of-fold performance (y); below the dashed line the model lost "
                                "discrimination at that site.", "Performance drop against domain shift",
                                name="domain_shift"))
    return "\n".join(out)


def dann_html(view: ResultsView) -> str:
    """The domain-adapted deep model beside the unadapted one (empty string without ``deep_dann``)."""
    card = view.json(Results.MODEL_CARD, DANN_KIND)
    if not card:
        return ""
    da = card.get("domain_adaptation") or {}
    targets = list(da.get("target_cohorts") or [])
    counts = da.get("target_cases") or {}
    out = ['<h3 id="dann">Domain adaptation (DANN)</h3>']
    used = ", ".join(f"{h.e(t)} ({h.e(counts.get(t, '?'))} cases)" for t in targets)
    out.append(h.p(
        f"<strong>Transductive adaptation: the images (never the outcomes) of {used} were used to train "
        f"<code>{DANN_KIND}</code>.</strong> {h.e(da.get('method', ''))}; {h.e(da.get('schedule', ''))}; "
        f"site discriminator: {h.e(da.get('discriminator', ''))}. Same network, settings and seed as "
        f"<code>{DEEP_KIND}</code>, which is trained without adaptation. An external AUC of <code>{DANN_KIND}</code> on "
        "a target cohort is not an external validation of a model frozen before it saw that site: it shows what "
        "adapting to that site's unlabelled images buys.", "warn"))
    rows = []
    for c in view.cohorts:
        a, b = view.metrics(c, DEEP_KIND), view.metrics(c, DANN_KIND)
        if not a and not b:
            continue
        rows.append([h.cohort_name(c) + (" (target: images used)" if c in targets else ""),
                     h.Html(h.ci(a.get("auc"), a.get("auc_ci_low"), a.get("auc_ci_high"))) if a else "—",
                     h.Html(h.ci(b.get("auc"), b.get("auc_ci_low"), b.get("auc_ci_high"))) if b else "—"])
    out.append(h.table(["Cohort", f"AUC {DEEP_KIND} (no adaptation) [95% CI]", f"AUC {DANN_KIND} [95% CI]"], rows,
                       "compact"))
    hist = card.get("training_history") or []
    if hist and "domain_accuracy" in hist[-1]:
        last = hist[-1]
        out.append(h.p(f"Final network, last epoch ({last.get('epoch')}): λ = {h.num(last.get('lambda'))}, site "
                       f"discriminator cross-entropy {h.num(last.get('domain_loss'))}, accuracy "
                       f"{h.num(last.get('domain_accuracy'))} over {len(da.get('sites') or [])} sites (chance "
                       "= the largest site's share of a batch).", "note"))
    return "\n".join(out)
