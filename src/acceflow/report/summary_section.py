"""The summary screen at the top of the dossier: the biomarker's claim, the headline figures of each
ACCE tier with their confidence intervals, and a traffic-light verdict per tier with the rule that
made it, each linked to its section.

The verdicts compare numbers that rules wrote with thresholds that the config states; nothing is
estimated here:

* analytical validity: ``analytical/icc_summary.json`` (rule ``icc_summary``: the share of features
  whose ICC 95% CI lower bound reaches ``reproducibility.threshold``) against
  ``report.min_stable_share``, and the model's features against the ``stable`` column of
  ``analytical/icc.tsv``;
* clinical validity: the 95% CI lower bound of the AUC (binary) or of Harrell's C (survival) of each
  external cohort (``clinical/{cohort}/metrics.json``) against 0.5, chance;
* clinical utility: the widest threshold range where the model's net benefit beats treat-all and
  treat-none (``utility/{cohort}/useful_thresholds.json``, rule ``useful_thresholds``) against the
  clinically relevant range the config states (``utility.relevant_thresholds``).

Colours follow the Okabe–Ito palette (safe for colour-blind readers) and every verdict is also
written out in words and with a symbol, never by colour alone. Missing evidence gives a grey
*not assessed* with the reason.
"""

from __future__ import annotations

import html as _html
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from acceflow.report import html as h
from acceflow.report.view import Results, ResultsView
from acceflow.study.settings import section_settings

__all__ = ["Verdict", "tier_verdicts", "summary_screen", "VERDICT_LABELS", "analytical_verdict", "clinical_verdict",
           "utility_verdict"]

#: verdict -> (label shown, symbol)
VERDICT_LABELS = {"green": ("met", "✓"), "amber": ("partly met", "!"), "red": ("not met", "✗"),
                  "grey": ("not assessed", "–")}

_TOL = 1e-9  # threshold grids are written as decimals: 0.05 read back may be 0.05000000000000001


@dataclass(frozen=True)
class Verdict:
    """One ACCE tier's verdict.

    ``verdict`` is ``green``, ``amber``, ``red`` or ``grey`` (not assessed); ``rule`` states what
    each colour requires; ``reason`` says which part of the rule decided (or why nothing could be
    assessed); ``headline`` is the tier's headline figures as HTML; ``anchor`` its dossier section.
    """

    tier: str
    anchor: str
    verdict: str
    reason: str
    rule: str
    headline: str

    def as_dict(self) -> dict:
        """The verdict for ``summary.json``: plain text (the HTML tags dropped), without the headline."""
        return {k: _html.unescape(re.sub(r"<[^>]+>", "", v)) for k, v in asdict(self).items() if k != "headline"}


def _finite(x) -> bool:
    return h.isnum(x) and math.isfinite(float(x))


def _judged(view: ResultsView) -> tuple[list[str], bool]:
    """The cohorts a verdict judges: the external ones, else ``train`` (internal validation only)."""
    external = [c for c in view.cohorts if c != "train"]
    return (external, True) if external else ([c for c in view.cohorts if c == "train"], False)


def _internal_cap(verdict: str, external: bool, reason: str) -> tuple[str, str]:
    if not external and verdict == "green":
        return "amber", reason + " Internal validation only: without an external cohort the verdict is at most amber."
    return verdict, reason


# ------------------------------------------------------------------------------------ analytical


def analytical_verdict(view: ResultsView, summary: Mapping) -> Verdict:
    threshold = view.reproducibility_threshold
    min_share = float(section_settings("report", view.config.get("report"))["min_stable_share"])
    rule = (f"green: at least {min_share:.0%} of the assessed features are stable (95% CI lower bound of the "
            f"ICC ≥ {threshold:g}; <code>reproducibility.threshold</code>, share set by "
            "<code>report.min_stable_share</code>) and every feature of the model is; amber: some feature is "
            "stable; red: none is")
    stats = view.json(Results.ICC_SUMMARY)
    if stats is None:
        return Verdict("Analytical validity", "analytical", "grey",
                       f"{Results.ICC_SUMMARY} was not found (rule icc_summary).", rule, "—")
    n, n_stable, share = stats.get("n_features") or 0, stats.get("n_stable") or 0, stats.get("share_stable")
    if not n or not _finite(share):
        return Verdict("Analytical validity", "analytical", "grey",
                       "No repeated measurements (test-retest, inter-reader or perturbation): no ICC was computed, "
                       "so the features' measurement error is unknown.", rule, "—")
    forms = ", ".join(stats.get("icc_forms") or []) or "ICC"
    headline = (f'<div class="what">Features with {h.e(forms)} 95% CI lower bound ≥ '
                f"{h.num(float(stats.get('threshold', threshold)), 2)}</div>{h.num(int(n_stable))} of {h.num(int(n))} "
                f"features stable ({h.num(100 * float(share), 1)}%)")
    unstable = list(summary.get("unstable_model_features") or [])
    if unstable:
        headline += f"; {len(unstable)} model feature(s) not stable"
    if share + _TOL >= min_share and not unstable:
        verdict, reason = "green", (f"{h.num(100 * float(share), 1)}% ≥ {min_share:.0%} of the features are stable, "
                                    "and so is every feature of the model.")
    elif n_stable == 0:
        verdict, reason = "red", "No feature is stable."
    elif unstable:
        verdict, reason = "amber", (f"{len(unstable)} feature(s) used by the model are not stable: "
                                    f"{', '.join(unstable[:5])}{' …' if len(unstable) > 5 else ''}.")
    else:
        verdict, reason = "amber", f"{h.num(100 * float(share), 1)}% of the features are stable, below {min_share:.0%}."
    return Verdict("Analytical validity", "analytical", verdict, h.e(reason), rule, headline)


# -------------------------------------------------------------------------------------- clinical


def clinical_verdict(view: ResultsView) -> Verdict:
    survival = view.survival
    key, name = ("c_index", "Harrell's C") if survival else ("auc", "AUC")
    cohorts, external = _judged(view)
    rule = (f"green: the 95% CI lower bound of the {name} is above 0.5 (chance) in every external cohort; "
            "amber: in some of them, or in internal validation only; red: in none")
    parts, above, missing = [], [], []
    for c in view.cohorts:
        m = view.metrics(c)
        est, lo, hi = m.get(key), m.get(f"{key}_ci_low"), m.get(f"{key}_ci_high")
        label = c if c != "train" else "train (internal, out-of-fold)"
        parts.append(f"{h.e(label)}: {h.ci(est, lo, hi)}")
        if c in cohorts:
            if _finite(lo):
                above.append(float(lo) > 0.5)
            else:
                missing.append(c)
    headline = f'<div class="what">{name} [95% CI]</div>' + "<br>".join(parts) if parts else "—"
    if not above:
        why = (f"no {name} with a confidence interval in {', '.join(missing)}" if missing
               else "no cohort was validated")
        return Verdict("Clinical validity", "clinical", "grey", h.e(f"Not assessed: {why}."), rule, headline)
    where = "every external cohort" if external else "internal validation"
    if all(above) and not missing:
        verdict, reason = "green", f"The CI lower bound is above 0.5 in {where}."
    elif not any(above):
        verdict, reason = "red", f"The CI lower bound is at or below 0.5 in {where}."
    else:
        below = [c for c, ok in zip([c for c in cohorts if c not in missing], above) if not ok]
        reason = "; ".join(([f"the CI lower bound is at or below 0.5 in {', '.join(below)}"] if below else [])
                           + ([f"no {name} CI in {', '.join(missing)}"] if missing else [])) + "."
        reason = reason[0].upper() + reason[1:]
        verdict = "amber"
    verdict, reason = _internal_cap(verdict, external, reason)
    return Verdict("Clinical validity", "clinical", verdict, h.e(reason), rule, headline)


# --------------------------------------------------------------------------------------- utility


def utility_verdict(view: ResultsView) -> Verdict:
    relevant = section_settings("utility", view.config.get("utility")).get("relevant_thresholds")
    cohorts, external = _judged(view)
    if relevant:
        a, b = (float(x) for x in relevant)
        rule = (f"green: in every external cohort the model's net benefit is above treat-all and treat-none over "
                f"the whole stated threshold range {h.num(a, 2)}–{h.num(b, 2)} (<code>utility.relevant_thresholds"
                "</code>); amber: over part of it, or in some cohorts; red: nowhere in it")
    else:
        a = b = None
        rule = ("green: in every external cohort the model's net benefit is above treat-all and treat-none over some "
                "threshold range (no clinically relevant range is stated: set <code>utility.relevant_thresholds</code>);"
                " amber: in some cohorts; red: in none")
    parts, cover, overlap, missing = [], [], [], []
    for c in view.cohorts:
        r = view.json(Results.USEFUL_THRESHOLDS, cohort=c)
        label = c if c != "train" else "train (internal)"
        if r is None:
            if c in cohorts:
                missing.append(c)
            continue
        lo, hi = r.get("useful_threshold_low"), r.get("useful_threshold_high")
        useful = _finite(lo) and _finite(hi)
        parts.append(f"{h.e(label)}: {h.num(lo, 2)}–{h.num(hi, 2)}" if useful else f"{h.e(label)}: none")
        if c not in cohorts:
            continue
        if a is None:
            cover.append(useful)
            overlap.append(useful)
        else:
            cover.append(useful and float(lo) <= a + _TOL and float(hi) >= b - _TOL)
            overlap.append(useful and float(lo) <= b + _TOL and float(hi) >= a - _TOL)
    headline = ('<div class="what">Thresholds where net benefit beats treat-all and treat-none</div>'
                + "<br>".join(parts) if parts else "—")
    if not cover:
        return Verdict("Clinical utility", "utility", "grey",
                       h.e(f"Not assessed: no decision curve for {', '.join(missing) or 'any cohort'}."), rule, headline)
    span = f" over {h.num(a, 2)}–{h.num(b, 2)}" if a is not None else ""
    if all(cover) and not missing:
        verdict, reason = "green", f"The model beats both defaults{span} in every cohort judged."
    elif not any(overlap):
        verdict, reason = "red", f"The model never beats both defaults{span or ' at any threshold'}."
    else:
        verdict, reason = "amber", (f"The model beats both defaults{span} in only part of the range or in only some "
                                    "cohorts" + (f"; no decision curve for {', '.join(missing)}" if missing else "") + ".")
    verdict, reason = _internal_cap(verdict, external, reason)
    return Verdict("Clinical utility", "utility", verdict, h.e(reason), rule, headline)


def tier_verdicts(view: ResultsView, summary: Mapping) -> list[Verdict]:
    """The three ACCE tiers' verdicts, in order (analytical, clinical, utility)."""
    return [analytical_verdict(view, summary), clinical_verdict(view), utility_verdict(view)]


# ------------------------------------------------------------------------------------------ HTML


def _claim(view: ResultsView, summary: Mapping) -> str:
    card = view.card
    outcome = card.get("outcome") or view.config.get("outcome") or {}
    if view.survival:
        what = (f"time to event (time <code>{h.e(outcome.get('time'))}</code>, event "
                f"<code>{h.e(outcome.get('event'))}</code>)")
    else:
        what = f"<code>{h.e(outcome.get('column'))}</code> = <code>{h.e(outcome.get('positive'))}</code>"
    n_feat = summary.get("n_nonzero_coefficients") or summary.get("n_model_features")
    model = card.get("model") or (view.config.get("model") or {}).get("primary")
    kind = f"{h.e(model)}, " if model else ""
    trained = (f"trained on {h.e(h.join(card.get('training_cohorts')))} (n = {h.num(card.get('n_train'))}, "
               f"{h.num(card.get('n_events_train'))} events)")
    ext = card.get("external_cohorts") or []
    if ext:
        sizes = ", ".join(f"{h.e(c)} (n = {h.num(view.metrics(c).get('n'))})" for c in ext)
        tested = f"and validated unchanged on the external cohort(s) {sizes}"
    else:
        tested = "with internal validation only (no external cohort)"
    learner = h.e(card.get("learner") or "—")
    return (f"<p class=\"claim\"><strong>Claim.</strong> A model ({kind}{learner}, {h.num(n_feat)} feature(s) "
            f"with non-zero weight) predicts {what}; {trained}, {tested}. The ethical, legal and social implications "
            "(the E of ACCE) are the authors' to write.</p>")


def _badge(verdict: str) -> str:
    label, symbol = VERDICT_LABELS[verdict]
    return f'<span class="verdict {verdict}"><span aria-hidden="true">{symbol}</span> {verdict}: {label}</span>'


def summary_screen(view: ResultsView, summary: Mapping, verdicts: list[Verdict]) -> str:
    rows = []
    for v in verdicts:
        rows.append(f'<tr class="tier {v.verdict}"><th scope="row"><a href="#{h.e(v.anchor)}">{h.e(v.tier)}</a></th>'
                    f"<td>{_badge(v.verdict)}<div class=\"reason\">{v.reason}</div></td>"
                    f"<td>{v.headline}</td><td class=\"rule\">{v.rule}</td></tr>")
    rows.append('<tr class="tier grey"><th scope="row">Ethical, legal and social implications</th>'
                f"<td>{_badge('grey')}<div class=\"reason\">The authors' to write: no result of the run can "
                "answer it.</div></td><td>—</td><td class=\"rule\">—</td></tr>")
    table = ('<table class="verdicts"><thead><tr><th>ACCE tier</th><th>Verdict</th><th>Headline figures '
             "(95% CI)</th><th>Rule that made the verdict</th></tr></thead><tbody>" + "".join(rows)
             + "</tbody></table>")
    note = h.p("The verdicts compare figures that the workflow wrote (files named in each section) with thresholds "
               "stated in the config; they summarise, they do not replace the sections below. Colours: green met, "
               "amber partly met, red not met, grey not assessed.", "note")
    return "\n".join(['<h2 id="summary">Summary</h2>', _claim(view, summary), table, note])
