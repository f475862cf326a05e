"""Dossier blocks of the explanations that respect correlated features (rule ``explain``) and of the deep
model's integrated gradients (rule ``deep_integrated_gradients``). They read the tables those rules wrote
and compute nothing; each block is left out when its files are missing."""

from __future__ import annotations

import base64

import pandas as pd

from acceflow.report import figures as F
from acceflow.report import html as h
from acceflow.report.view import Results, ResultsView

__all__ = ["grouped_explanations", "integrated_gradients_block"]

MISATTRIBUTION = (
    "Radiomics features come in families that measure nearly the same thing. Independent-feature SHAP "
    "misattributes credit between correlated features: it evaluates the model on combinations of values that "
    "never occur together and splits, moves or hides credit between near-copies depending on which copy the "
    "penalty happened to keep (and single-feature permutation importance lets an unpermuted twin carry the "
    "signal). The grouped version is therefore shown: features are clustered by average-linkage hierarchical "
    "clustering on 1 − |Spearman ρ| over the training cases, cut at distance {threshold} (clusters of features "
    "whose average |ρ| is at least {rho}); SHAP values come from shap's Partition explainer with that hierarchy "
    "as its clustering (Owen values: a cluster is switched on and off as one player), and the credit of a "
    "cluster, the sum of its features' values, is the figure to read; how credit is split between near-copies "
    "inside a cluster is not identifiable from data.")


def _label(features: str, top: str, n: int) -> str:
    return top if n <= 1 else f"{top} (+{n - 1} correlated)"


def _cohort(c: str) -> str:
    """Permutation importance on the training cases is apparent, not out-of-fold."""
    return "train — apparent (the cases the model was fitted on)" if c == "train" else h.cohort_name(c)


def _members(features: str, limit: int = 6) -> str:
    names = [s.strip() for s in str(features).split(",") if s.strip()]
    more = f", … {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _shap_figure(summary: pd.DataFrame, scale: str):
    top = summary.head(12).iloc[::-1]
    fig, ax = F.plt.subplots(figsize=(6.4, 0.35 * len(top) + 1.2))
    labels = [_label(r.features, r.top_feature, int(r.n_features)) for r in top.itertuples()]
    ax.barh(labels, top["mean_abs_shap_group"], color=F.OKABE_ITO["blue"], label="cluster (grouped SHAP)")
    ax.plot(top["sum_mean_abs_shap_features"], labels, "o", mfc="none", color=F.OKABE_ITO["vermillion"],
            label="sum of its features' mean |SHAP|")
    ax.set_xlabel(f"mean |SHAP| over the training cases ({scale})")
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def _model_block(view: ResultsView, model: str | None, title: str) -> list[str]:
    summary = view.tsv(Results.SHAP_SUMMARY, model)
    importance = view.tsv(Results.GROUPED_IMPORTANCE, model)
    ratios = view.tsv(Results.REFIT_RATIOS, model, keep_default_na=True)
    if summary is None and importance is None and ratios is None:
        return []
    out = [f"<h4>{h.e(title)}</h4>"]
    if summary is not None and len(summary):
        scale = str(summary["output_scale"].iloc[0])
        rows = [[_label(r.features, r.top_feature, int(r.n_features)), int(r.n_features), r.mean_abs_shap_group,
                 r.sum_mean_abs_shap_features, _members(r.features)] for r in summary.head(15).itertuples()]
        out += [h.table(["Cluster (its largest feature)", "Features", "Mean |SHAP| of the cluster",
                         "Sum of the features' mean |SHAP|", "Members"], rows, "compact"),
                h.figure(lambda: _shap_figure(summary, scale),
                         f"<strong>Grouped SHAP ({h.e(title)}).</strong> Mean absolute SHAP value of each correlation "
                         f"cluster over {h.num(summary['n_cases'].iloc[0])} training cases, on the {h.e(scale)} "
                         f"scale (bars), beside the sum of its features' own mean |SHAP| (circles): where the two "
                         f"differ, the features of a cluster push in opposite directions for some cases. Twelve "
                         f"largest clusters.", f"grouped SHAP {title}",
                         name="grouped_shap" if model is None else f"grouped_shap-{model}")]
    if importance is not None and len(importance):
        rows = []
        for cohort, part in importance.groupby("cohort", sort=False):
            note = part["note"].dropna().astype(str)
            if note.str.len().gt(0).any() and part["importance_mean"].isna().all():
                rows.append([_cohort(cohort), h.Html("—"), "", "", note.iloc[0]])
                continue
            for r in part.head(5).itertuples():
                rows.append([_cohort(cohort), _label(r.features, r.features.split(",")[0], int(r.n_features)),
                             r.importance_mean, r.importance_sd, f"{r.score} {h.num(r.score_baseline)}"])
        out += [h.table(["Cohort", "Cluster", "Score drop (mean)", "SD", "Baseline"], rows, "compact"),
                h.p("Grouped permutation importance: the frozen model's drop in discrimination when all columns of a "
                    "cluster are permuted together (one row permutation per cluster and repeat), five largest "
                    "clusters per cohort; <em>train</em> is apparent (the cases the model was fitted on).", "note")]
    if ratios is not None and len(ratios):
        out += _ratios_block(ratios)
    elif ratios is not None:
        out.append(h.p("Ratios per SD: the model kept no feature (every penalised coefficient is 0), so there is "
                       "nothing to refit.", "note"))
    return out


def _ratios_block(ratios: pd.DataFrame) -> list[str]:
    if "measure" not in ratios or ratios["measure"].isna().all():
        note = ratios["note"].dropna().astype(str)
        return [h.p(f"Ratios per SD: {h.e(note.iloc[0] if len(note) else 'no refit')}.", "note")]
    measure = str(ratios["measure"].dropna().iloc[0])
    n_sel, n_cand = int(ratios["n_selected"].iloc[0]), int(ratios["n_candidate"].iloc[0])
    rows = [[r.feature, h.Html(h.ci(r.ratio, r.ci_low, r.ci_high)), r.p_value, r.penalised_coefficient,
             r.note if isinstance(r.note, str) else ""] for r in ratios.itertuples()]
    method = ("statsmodels <code>Logit</code>" if measure.startswith("odds")
              else "lifelines <code>CoxPHFitter</code>, penalizer 0, Efron ties")
    label = "Odds ratio" if measure.startswith("odds") else "Hazard ratio"
    out = [h.table(["Feature", f"{label} per SD [95% CI]", "p (Wald)", "Penalised coefficient (model)", "Note"],
                   rows, "compact"),
           h.p(f"<strong>{label}s per SD from an unpenalised refit on the {n_sel} selected features</strong> (of "
               f"{n_cand} candidates; {method}; each feature median-imputed and standardised by its training SD; "
               f"n = {h.num(ratios['n'].iloc[0])}, {h.num(ratios['n_events'].iloc[0])} events). The model's own "
               f"penalised coefficients are shrunk towards 0 by the penalty (log scale, per SD) and are shown beside "
               f"them; the refit's ratios are conditional on the other selected features, and their CIs ignore "
               f"that the features were selected on the same data (they are too narrow; Heinze et al. 2018). "
               f"Separation or a fit that does not converge is named in the note instead of a number.", "note")]
    if not bool(ratios["converged"].fillna(False).all()):
        out.append(h.p("<strong>Read with care.</strong> The unpenalised refit did not give finite estimates for "
                       "every feature (see the notes).", "warn"))
    return out


def grouped_explanations(view: ResultsView) -> str:
    """Grouped SHAP, grouped permutation importance and ratios per SD of the primary model and the clinical
    comparator ("" when the explain rule did not run)."""
    blocks = _model_block(view, None, f"{view.card.get('model', 'primary')} model (primary)")
    blocks += _model_block(view, "clinical", "clinical model (comparator)")
    if not blocks:
        return ""
    clusters = view.tsv(Results.SHAP_SUMMARY)
    threshold = float(clusters["cluster_threshold"].iloc[0]) if clusters is not None and len(clusters) else 0.3
    return "\n".join(["<h3 id=\"explanations\">Explanations that respect correlated features</h3>",
                      h.p(h.e(MISATTRIBUTION.format(threshold=h.num(threshold), rho=h.num(1 - threshold))), "note"),
                      *blocks])


def integrated_gradients_block(view: ResultsView) -> str:
    """Integrated-gradients overlays of the deep model beside Grad-CAM ("" without them)."""
    figs, tables = [], []
    for c in view.cohorts:
        g = view.tsv(Results.INTEGRATED_GRADIENTS, dtype={"case_id": str}, cohort=c)
        if g is None or not len(g):
            continue
        tables.append(g.assign(cohort=c))
        for r in g.itertuples():
            png = view.path(Results.INTEGRATED_GRADIENTS_IMAGE, cohort=c, png=r.png)
            if not png.is_file():
                continue
            data = base64.b64encode(png.read_bytes()).decode()
            figs.append(f'<figure style="display:inline-block;margin:4px"><img src="data:image/png;base64,{data}" '
                        f'alt="integrated gradients {h.e(c)} {h.e(r.case_id)}"><figcaption>{h.e(h.cohort_name(c))} '
                        f'{h.e(r.case_id)}: {"correct" if r.correct else "wrong"}</figcaption></figure>')
    if not figs:
        return ""
    t = pd.concat(tables, ignore_index=True)
    rows = [[h.cohort_name(r.cohort), r.case_id, r.output, r.baseline_output, r.attribution_sum, r.delta]
            for r in t.itertuples()]
    return "\n".join([
        "<h3 id=\"integrated-gradients\">Integrated gradients</h3>", "".join(figs),
        h.p(f"Integrated gradients (Sundararajan et al. 2017; captum, {int(t['n_steps'].iloc[0])}-point Gauss–Legendre "
            f"path) of the same cases as Grad-CAM, over the same slice: |attribution| summed over channels, scaled to "
            f"the case's 99th percentile. <strong>Resolution:</strong> Grad-CAM is at the last convolutional layer's "
            f"resolution (a few voxels per axis, up-sampled for display); integrated gradients are per voxel but "
            f"noisy, so read where attribution concentrates, not single voxels. Baseline: the uniform crop at the "
            f"training mean intensity. Completeness check below: the attributions of a case sum to f(crop) − "
            f"f(baseline) up to the delta.", "note"),
        h.table(["Cohort", "Case", "f(crop) (logit)", "f(baseline)", "Sum of attributions", "Completeness delta"], rows,
                "compact")])
