"""Clinical validity, federated training: how it was trained, round by round, and how it compares
with the centrally pooled and the local-only models on each external cohort.

Reads ``clinical/federated/summary.json``, ``rounds.tsv``, ``comparison.tsv`` and
``coefficients.tsv`` (rules ``federated_train`` and ``federated_comparison``); computes nothing.
"""

from __future__ import annotations

from acceflow.report import figures as F
from acceflow.report import html as h
from acceflow.report.view import Results, ResultsView


def _model_name(model: str) -> str:
    if model.startswith("local_"):
        return f"local-only ({model[6:]})"
    return {"federated": "federated", "central": "central (pooled rows)",
            "central_same_steps": "central, federated schedule (pooled rows as one site)"}.get(model, model)


def _gap(value) -> str:
    """A relative objective gap as a percentage ('—' where the model has another objective)."""
    return "—" if value is None or value != value else f"{100 * float(value):.2f} %"


def _convergence(summary: dict) -> str:
    """Whether the federated model reached the central optimum of its objective (summary.json's gap)."""
    gap = summary.get("objective_gap")
    if gap is None:
        return ""
    tolerance = summary.get("objective_gap_tolerance")
    text = (f"Convergence: the federated objective at the last round is {_gap(gap)} above the central optimum of "
            f"the same objective ({summary.get('objective', '')}; {h.num(summary.get('objective_federated'), 4)} "
            f"vs {h.num(summary.get('objective_central'), 4)}; {h.num(summary.get('objective_start'), 4)} "
            f"at round 0). ")
    cause = summary.get("convergence") or ("converged" if summary.get("converged") else "not_converged")
    if cause == "converged":
        return text + (f"Within the {_gap(tolerance)} tolerance: the federated and central models are one model, "
                       f"up to the coefficient differences below.")
    text += f"Above the {_gap(tolerance)} tolerance: the federated model is not the central optimum. "
    if cause == "stopped_early":
        text += (f"The same learner and rounds on the pooled rows (central, federated schedule) also stop "
                 f"{_gap(summary.get('objective_gap_same_steps'))} above it: the rounds ended before the optimum and "
                 f"shrank the coefficients towards zero, as early stopping does. A difference between the federated "
                 f"and the central model is then one of regularisation (how far the optimiser went), not of "
                 f"federation; compare the federated model with the central fit of the federated schedule to see "
                 f"federation alone. ")
    elif cause == "client_drift":
        text += (f"The same learner and rounds on the pooled rows reach it "
                 f"({_gap(summary.get('objective_gap_same_steps'))}): the sites' heterogeneity keeps FedAvg's local "
                 f"steps away from the pooled optimum (client drift; federated.strategy: fedprox, or fewer local "
                 f"epochs and more rounds). ")
        return text
    return text + "More rounds (federated.rounds) bring the federated model towards the central one."


#: what comparison.tsv says each model is (written since issue 18's convergence check; older runs lack them)
_STATED = [("n_features", "Features"), ("penalty", "Penalty"), ("standardisation", "Standardisation"),
           ("fit", "Fit"), ("objective_gap", "Objective above central optimum")]


def _stated_header(comparison) -> list[str]:
    return [title for column, title in _STATED if column in comparison.columns]


def _stated(r: dict, comparison) -> list:
    return [_gap(r.get(column)) if column == "objective_gap" else r.get(column)
            for column, _ in _STATED if column in comparison.columns]


def federated_block(view: ResultsView) -> str:
    """The federated-training part of the clinical-validity section ('' when federated training did not run)."""
    summary = view.json(Results.FEDERATED_SUMMARY)
    rounds = view.tsv(Results.FEDERATED_ROUNDS, dtype={"site": str})
    if not isinstance(summary, dict) or rounds is None:
        return ""
    sites = [str(s) for s in summary.get("sites") or []]
    n_rounds = int(rounds["round"].max()) if len(rounds) else 0
    learner = summary.get("learner") or (f"{summary.get('penalty', '')}-penalised logistic regression "
                                          f"(C = {h.num(summary.get('C'))})")
    out = ["<h3 id=\"federated\">Federated training</h3>",
           h.p(f"The {h.e(learner)} was trained across {len(sites)} sites ({h.e(', '.join(sites))}) without pooling "
               f"their rows: each site ran {h.num(summary.get('local_epochs'))} local proximal-gradient steps per round "
               f"from the global model on its own table (a Flower <code>NumPyClient</code>), and the server combined "
               f"the sites' parameters, weighted by their case counts, with Flower's "
               f"{h.e(str(summary.get('strategy', '')).replace('fedavg', 'FedAvg').replace('fedprox', 'FedProx'))} "
               f"(McMahan et al. 2017; Li et al. 2020) for {n_rounds} rounds. The server saw parameters, counts, "
               f"sums and sums of squares (the pooled standardisation), never a row. "
               + h.e(summary.get("method_note") or ""), "note")]
    last = rounds[rounds["round"] == n_rounds]
    out.append(h.table(["Site", "n", "Loss (last round)", "Update norm (last round)", "Drift (last round)"],
                       [[r["site"], r["n"], r["loss"], r["update_norm"], r["drift"]] for r in last.to_dict("records")],
                       "compact"))
    out.append(h.figure(
        lambda: F.federated_rounds_figure(rounds),
        "<strong>Federated training round by round.</strong> Left: each site's mean loss on its own rows after its "
        "local step; middle: how far the site's parameters moved from the global model it received (update norm); "
        "right: how far they lie from the round's new global model (drift; it stays above zero on heterogeneous "
        "sites, where each site's own optimum differs). Flat curves mean the rounds changed little; whether they "
        "reached the optimum of the objective is the objective gap stated below the comparison.",
        "Federated training: loss, update norm and drift per site and round", name="federated_rounds"))
    comparison = view.tsv(Results.FEDERATED_COMPARISON, dtype={"cohort": str, "model": str})
    if comparison is not None and len(comparison) and "c_index" in comparison.columns:  # survival: Harrell's C
        out.append(h.p("Survival: the site-stratified penalised Cox model (each site its own baseline hazard, shared "
                       "log hazard ratios). After the last round each site shared, once, its event-time table "
                       "(distinct follow-up times, events and risk-set sums: the pooled Breslow baseline behind the "
                       "risks at the horizon) and its training risk scores, sorted and without case id, time or "
                       "event: one number per patient left each site, so that the model card's training risk "
                       "distribution — the median that cuts the Kaplan–Meier risk groups, the SD of the hazard "
                       "ratio per SD — is exact rather than approximated from quantiles. The central model is the "
                       "same penalised Cox model stratified by site on the pooled rows (the federated objective "
                       "fitted centrally); local-only models use one site's rows. "
                       + h.e(summary.get("comparison_method") or ""), "note"))
        rows = []
        for r in comparison.to_dict("records"):
            test = r.get("model") != r.get("reference")
            rows.append([h.cohort_name(r["cohort"]), _model_name(str(r["model"])), r.get("n"), r.get("n_events"),
                         h.Html(h.ci(r.get("c_index"), r.get("c_index_ci_low"), r.get("c_index_ci_high"))),
                         h.Html(h.ci(r.get("c_difference"), r.get("c_difference_ci_low"), r.get("c_difference_ci_high")))
                         if test else "—", r.get("p_value") if test else "reference", *_stated(r, comparison)])
        out.append(h.table(["Cohort", "Model", "n", "Events", "Harrell's C [95% CI]",
                            "C difference vs federated [95% CI]", "Paired bootstrap p", *_stated_header(comparison)],
                           rows, "compact"))
    elif comparison is not None and len(comparison):
        rows = []
        for r in comparison.to_dict("records"):
            test = r.get("model") != r.get("reference")
            rows.append([h.cohort_name(r["cohort"]), _model_name(str(r["model"])), r.get("n"), r.get("n_events"),
                         h.Html(h.ci(r.get("auc"), r.get("auc_ci_low"), r.get("auc_ci_high"))),
                         r.get("auc_difference") if test else "—", r.get("p_value") if test else "reference",
                         *_stated(r, comparison)])
        out.append(h.table(["Cohort", "Model", "n", "Events", "AUC [95% CI]", "AUC difference vs federated",
                            "Paired DeLong p", *_stated_header(comparison)], rows, "compact"))
    if comparison is not None and len(comparison) and _convergence(summary):
        out.append(h.p(h.e(_convergence(summary)), "statement"))
    diff = summary.get("max_abs_coefficient_difference")
    if diff is not None:
        out.append(h.p(f"Largest coefficient difference, federated vs central: {h.num(diff, 4)} "
                       f"({h.e(summary.get('feature', ''))}; {h.e(summary.get('coefficient_scale', ''))}). "
                       f"Central: {h.e(summary.get('central', ''))}.", "statement"))
    coefficients = view.tsv(Results.FEDERATED_COEFFICIENTS, dtype={"feature": str})
    if coefficients is not None and len(coefficients):
        columns = [c for c in coefficients.columns if c != "feature"]
        out.append(h.table(["Feature", *[_model_name(c) if c != "difference" else "federated − central"
                                         for c in columns]],
                           [[r["feature"], *(r[c] for c in columns)] for r in coefficients.to_dict("records")],
                           "compact"))
    return "\n".join(out)
