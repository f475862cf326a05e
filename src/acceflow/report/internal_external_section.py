"""Clinical validity, internal–external cross-validation: the per-site table, the random-effects
pooling with its prediction interval, a sentence on heterogeneity and a forest plot per measure.

Reads ``clinical/internal_external/site_metrics.tsv`` and ``pooled.json`` (rules
``internal_external_site`` and ``internal_external_pool``); computes nothing.
"""

from __future__ import annotations

from acceflow.report import figures as F
from acceflow.report import html as h
from acceflow.report.view import Results, ResultsView

_NAMES = {"auc": "AUC", "c_index": "Harrell's C", "calibration_slope": "calibration slope",
          "calibration_intercept": "calibration intercept"}
_REFERENCE = {"auc": 0.5, "c_index": 0.5, "calibration_slope": 1.0, "calibration_intercept": 0.0}


def _pct(x) -> str:
    v = h.f(x)
    return "—" if v != v else f"{100 * v:.0f}%"


def _heterogeneity_sentence(pooled: dict, m: str) -> str:
    name, k = _NAMES[m], pooled.get(f"{m}_k") or 0
    if k < 2:
        return f"The {name} was estimated in {k} site(s): nothing to pool, no heterogeneity to measure."
    scale = " on the logit scale" if pooled.get(f"{m}_scale") == "logit" else ""
    text = (f"Across the {k} held-out sites, I² = {_pct(pooled.get(f'{m}_i2'))} of the variation in the {name} "
            f"between sites is beyond what sampling error explains (τ² = {h.num(pooled.get(f'{m}_tau2'), 4)}{scale}; "
            f"Cochran's Q = {h.num(pooled.get(f'{m}_q'))}, p = {h.num(pooled.get(f'{m}_q_p_value'))}). ")
    lo, hi = h.f(pooled.get(f"pooled_{m}_pi_low")), h.f(pooled.get(f"pooled_{m}_pi_high"))
    if lo == lo and hi == hi:
        text += f"At a new site, the {name} is expected between {h.num(lo)} and {h.num(hi)} (95% prediction interval)."
    else:
        text += f"No prediction interval: {pooled.get(f'{m}_pi_note') or 'not estimable'}."
    if k < 5:
        text += f" With {k} sites, τ² and I² are themselves very imprecise."
    return text


def internal_external_block(view: ResultsView) -> str:
    """The internal–external cross-validation part of the clinical-validity section ('' when not run)."""
    sites = view.tsv(Results.IECV_SITE_METRICS, dtype={"site": str}, keep_default_na=True)
    pooled = view.json(Results.IECV_POOLED)
    if sites is None or not isinstance(pooled, dict):
        return ""
    disc = pooled.get("discrimination", "auc")
    measures = [m for m in (disc, "calibration_slope", "calibration_intercept") if f"{m}_k" in pooled]
    out = ["<h3 id=\"internal-external\">Internal–external cross-validation</h3>",
           h.p("Each site was held out in turn; the primary model's whole training procedure (nested "
               "cross-validation of the learner and its hyper-parameters, harmonisation and feature selection, all "
               "refitted) was run on the other sites and the refitted model validated on the held-out site "
               "(Steyerberg &amp; Harrell 2016; Debray et al. 2015). The per-site figures were pooled by "
               "random-effects meta-analysis (DerSimonian–Laird); discrimination on the logit scale with the "
               "delta-method variance, back-transformed (Snell et al. 2018); the prediction interval for a new site "
               "uses a t distribution with k − 2 degrees of freedom (Higgins, Thompson &amp; Spiegelhalter 2009). "
               "These are models refitted per fold, not the frozen model above: they show how the "
               "<em>modelling procedure</em> transports between sites.", "note")]
    rows = []
    for r in sites.to_dict("records"):
        trained = (f"{r.get('training_sites')} ({h.num(r.get('n_train'))} / {h.num(r.get('n_events_train'))})"
                   if isinstance(r.get("training_sites"), str) else "—")
        est = {m: h.Html(h.ci(r.get(m), r.get(f"{m}_ci_low"), r.get(f"{m}_ci_high"))) for m in measures}
        status = r.get("status") if r.get("status") == "validated" else h.Html(
            f"<strong>skipped</strong>: {h.e(r.get('reason'))}")
        rows.append([r.get("site"), status, trained, r.get("n"), r.get("n_events"), *(est[m] for m in measures),
                     r.get(f"{disc}_se"), r.get("pooled")])
    out.append(h.table(["Held-out site", "Status", "Trained on (cases / events)", "n", "Events",
                        *(f"{_NAMES[m][0].upper()}{_NAMES[m][1:]} [95% CI]" for m in measures),
                        f"SE of {_NAMES[disc]}", "Pooled in"], rows, "compact"))
    notes = [f"{h.e(r['site'])}: {h.e(r['calibration_note'])}" for r in sites.to_dict("records")
             if isinstance(r.get("calibration_note"), str) and r["calibration_note"]]
    if notes:
        out.append(h.p("<strong>Read with care.</strong> " + "; ".join(notes) + ".", "warn"))
    rows = []
    for m in measures:
        rows.append([_NAMES[m], h.Html(h.ci(pooled.get(f"pooled_{m}"), pooled.get(f"pooled_{m}_ci_low"),
                                            pooled.get(f"pooled_{m}_ci_high"))),
                     f"{h.num(pooled.get(f'pooled_{m}_pi_low'))} to {h.num(pooled.get(f'pooled_{m}_pi_high'))}"
                     if h.f(pooled.get(f"pooled_{m}_pi_low")) == h.f(pooled.get(f"pooled_{m}_pi_low"))
                     else pooled.get(f"{m}_pi_note") or "—",
                     pooled.get(f"{m}_tau2"), _pct(pooled.get(f"{m}_i2")),
                     h.Html(f"{h.num(pooled.get(f'{m}_q'))} (p = {h.num(pooled.get(f'{m}_q_p_value'))})"),
                     pooled.get(f"{m}_k"), pooled.get(f"{m}_scale")])
    out.append(h.table(["Measure", "Pooled [95% CI]", "95% prediction interval (new site)", "τ²", "I²",
                        "Q (p)", "Sites (k)", "Pooled on scale"], rows, "compact"))
    out.append(h.p(" ".join(_heterogeneity_sentence(pooled, m) for m in measures[:2]), "statement"))
    skipped = pooled.get("sites_skipped") or {}
    if skipped:
        out.append(h.p("<strong>Sites not held out.</strong> " + "; ".join(
            f"{h.e(s)}: {h.e(why)}" for s, why in skipped.items()) + ".", "warn"))
    for m in measures:
        if (pooled.get(f"{m}_k") or 0) < 1:
            continue
        out.append(h.figure(
            lambda m=m: F.forest_figure(sites, pooled, m, _NAMES[m][0].upper() + _NAMES[m][1:], _REFERENCE[m]),
            f"<strong>Forest plot of the {h.e(_NAMES[m])} per held-out site.</strong> Squares (sized by the site's "
            f"cases) and bars: each site's estimate with its 95% CI; diamond: the random-effects mean with its 95% CI; "
            f"the line through the diamond: the 95% prediction interval for a new site (drawn with at least three "
            f"sites); dotted: the reference value ({h.num(_REFERENCE[m])}).",
            f"Forest plot of the {_NAMES[m]} across held-out sites", name=f"internal_external_{m}"))
    return "\n".join(out)
