"""Dossier section "Quality scores (METRICS, RQS)": renders ``report/quality_scores.json``.

The scores are decided by :mod:`acceflow.study.quality` (the ``quality_scores`` rule) from the run's results
and the config's ``study:`` section; this section only shows them: each score with what it counts, and the
items that are not met or still the author's to answer. Nothing is computed here.
"""

from __future__ import annotations

from acceflow.report import html as h
from acceflow.report.view import Results, ResultsView, Section

__all__ = ["quality_section"]

_AUTHOR = "author to answer"


def _answer(a: str) -> h.Html:
    if a == _AUTHOR:
        return h.Html("<em>author to answer</em>")
    if a == "no":
        return h.Html("<strong>no</strong>")
    return h.Html(h.e(a))


def _metrics(m: dict) -> list[str]:
    out = [f'<h3 id="metrics-score">METRICS ({h.e(m.get("reference"))})</h3>']
    out.append(h.kv_table([
        ("METRICS score", h.Html(f"<strong>{h.num(m.get('score_percent'), 1)}%</strong>")),
        ("What it counts", h.Html(
            f"Σ weights of the items met ({h.num(m.get('met_weight'), 4)}) / Σ weights of the applicable items "
            f"({h.num(m.get('applicable_weight'), 4)}) × 100")),
        ("Items applicable / met / not met / author to answer",
         f"{m.get('n_applicable')} / {m.get('n_met')} / {m.get('n_not_met')} / {m.get('n_author')}"),
        ("Items not applicable (condition “no”)", m.get("n_not_applicable")),
        ("Score if every author-to-answer item were met", h.Html(f"{h.num(m.get('max_percent_if_author_items_met'), 1)}%")),
    ]))
    out.append(h.table(["Condition", "Question", "Answer", "Source"],
                       [[c["number"], c["text"], c["answer"], c["source"]] for c in m.get("conditions") or []],
                       "compact"))
    rows = [[i["id"], i["category"], i["text"], h.num(i["weight"], 4), _answer(i["answer"]), i["source"],
             i.get("note") or ""] for i in m.get("items") or []]
    out.append(h.table(["Item", "Category", "Item (as published)", "Weight", "Answer", "Source", "Note"], rows,
                       "compact checklist"))
    return out


def _rqs(r: dict) -> list[str]:
    out = [f'<h3 id="rqs-score">Radiomics Quality Score ({h.e(r.get("reference"))})</h3>']
    out.append(h.kv_table([
        ("RQS total", h.Html(f"<strong>{h.num(r.get('total'))}</strong> of {h.num(r.get('max_total'))} "
                             f"({h.num(r.get('percent'), 1)}%)")),
        ("What it counts", h.Html(
            f"sum of the points of 16 items (range {h.num(r.get('min_total'))} to {h.num(r.get('max_total'))}); "
            "percentage = total / 36 × 100")),
        ("Parts met / not met / author to answer", f"{r.get('n_met')} / {r.get('n_not_met')} / {r.get('n_author')}"),
        ("Points the author-to-answer parts could add", r.get("author_points_open")),
    ]))
    rows = []
    for it in r.get("items") or []:
        for q in it["parts"]:
            rows.append([it["id"], it["text"], q["text"], f"{q['points']} / {q['max_points']}", _answer(q["answer"]),
                         q["source"], q.get("note") or ""])
    out.append(h.table(["Item", "Criterion", "Points rule", "Points / max", "Answer", "Source", "Note"], rows,
                       "compact checklist"))
    return out


def quality_section(view: ResultsView) -> Section | None:
    """METRICS and RQS of the run (``report/quality_scores.json``); ``None`` when the file is absent."""
    scores = view.json(Results.QUALITY_SCORES)
    if not scores:
        return None
    m, r = scores.get("metrics") or {}, scores.get("rqs") or {}
    out = ['<h2 id="quality-scores">8. Appendix C: quality scores (METRICS, RQS)</h2>',
           h.p("Two published quality scores, filled from what this run did (source <em>run:</em> a results file "
               "or the config as run) and from the config's <code>study:</code> section (source <em>config:</em>). "
               "Items neither can answer are <em>author to answer</em>: scored as not met and listed here so that "
               "the authors can answer them in <code>study:</code>. Machine-readable: "
               f"<code>{h.e(Results.QUALITY_SCORES)}</code>. The scores rate the study's methods, not the "
               "biomarker.", "note")]
    missing_m = [i for i in m.get("items") or [] if i.get("applicable") and i["answer"] != "yes"]
    missing_r = [it["id"] for it in r.get("items") or [] if any(q["answer"] != "yes" for q in it["parts"])]
    out.append(h.p(
        f"<strong>METRICS {h.num(m.get('score_percent'), 1)}%</strong>, "
        f"<strong>RQS {h.num(r.get('total'))} of {h.num(r.get('max_total'))}</strong> "
        f"({h.num(r.get('percent'), 1)}%). Missing: METRICS item(s) "
        f"{h.e(', '.join(str(i['id']) for i in missing_m) or 'none')}; RQS item(s) "
        f"{h.e(', '.join(map(str, missing_r)) or 'none')} (not met in full).", "statement"))
    out.extend(_metrics(m))
    out.extend(_rqs(r))
    return Section("quality-scores", "\n".join(out))
