"""Dossier section "Synthetic data" (analytical validity): the audit of the synthetic cases and whether
they help (synthetic.enabled; issue 17).

Reads ``analytical/synthetic_fidelity.tsv``, ``synthetic_summary.json``, ``synthetic_correlations.tsv``,
``synthetic_distances.tsv`` and ``clinical/{cohort}/synthetic_comparison.tsv``; computes nothing: the
verdicts "faithful" and "memorised" are the audit rule's, each shown with its rule; "helpful" compares
the comparison rule's paired DeLong p values with the study's alpha.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from acceflow.report import figures as F
from acceflow.report import html as h
from acceflow.report.view import Results, ResultsView, Section

__all__ = ["synthetic_section", "correlation_heatmaps", "distance_histograms"]


def correlation_heatmaps(correlations: pd.DataFrame):
    """Spearman matrices of the real (generator-training) and synthetic cases side by side
    (``analytical/synthetic_correlations.tsv``: ``feature_a``, ``feature_b``, ``rho_real``, ``rho_synthetic``)."""
    names = list(dict.fromkeys([*correlations["feature_a"], *correlations["feature_b"]]))
    index = {n: i for i, n in enumerate(names)}
    mats = {k: np.eye(len(names)) for k in ("rho_real", "rho_synthetic")}
    for r in correlations.itertuples():
        i, j = index[r.feature_a], index[r.feature_b]
        for k in mats:
            mats[k][i, j] = mats[k][j, i] = float(getattr(r, k))
    with F.plt.rc_context(F._RC):
        fig, axes = F.plt.subplots(1, 2, figsize=(9.5, 4.4), layout="constrained")
        for ax, (k, title) in zip(axes, [("rho_real", "Real (generator-training cases)"),
                                         ("rho_synthetic", "Synthetic")]):
            im = ax.imshow(mats[k], vmin=-1, vmax=1, cmap="RdBu_r")
            ax.set_title(title)
            ticks = range(len(names)) if len(names) <= 30 else []
            ax.set_xticks(list(ticks), [names[i] for i in ticks] if ticks else [], rotation=90, fontsize=6)
            ax.set_yticks(list(ticks), [names[i] for i in ticks] if ticks else [], fontsize=6)
        fig.colorbar(im, ax=axes, shrink=0.8, label="Spearman ρ")
    return fig


def distance_histograms(distances: pd.DataFrame, threshold: float):
    """Nearest-neighbour distances to the generator's training cases: synthetic → train and holdout → train
    (``analytical/synthetic_distances.tsv``), the too-close threshold as a dashed line."""
    with F.plt.rc_context(F._RC):
        fig, ax = F.plt.subplots(figsize=(5.6, 3.8), layout="constrained")
        d = pd.to_numeric(distances["distance"], errors="coerce")
        bins = np.histogram_bin_edges(d.dropna(), bins=30)
        for name, colour in (("holdout", F.OKABE_ITO["blue"]), ("synthetic", F.OKABE_ITO["vermillion"])):
            part = d[distances["set"] == name].dropna()
            ax.hist(part, bins=bins, density=True, alpha=0.55, color=colour, label=f"{name} → train (n = {len(part)})")
        ax.axvline(threshold, color="black", ls="--", lw=0.8, label="5th percentile of holdout → train")
        ax.set_xlabel("Euclidean distance to the nearest training case (z-scored features)")
        ax.set_ylabel("density")
        ax.legend(fontsize=7)
    return fig


def _yes_no(flag) -> str:
    return "yes" if flag else "no"


def synthetic_section(view: ResultsView) -> Section | None:
    """The section, or None when the synthetic stage did not run."""
    summary = view.json(Results.SYNTHETIC_SUMMARY)
    if not summary:
        return None
    fidelity = view.tsv(Results.SYNTHETIC_FIDELITY)
    out = [h.heading(2, "Synthetic data (analytical validity)", "synthetic")]
    out.append(h.p(
        f"Generator <code>{h.e(summary.get('generator'))}</code> (seed {h.e(summary.get('seed'))}) fitted on "
        f"{h.e(summary.get('n_generator_train'))} training cases; {h.e(summary.get('n_holdout'))} training cases "
        f"({h.num(100 * float(summary.get('holdout_fraction', 0)), 0)}%, stratified by outcome) were held out from it "
        f"as the yardstick of a new real case; external cohorts were never seen. {h.e(summary.get('n_synthetic'))} "
        f"synthetic cases ({h.e(summary.get('n_synthetic_0'))} of class 0, {h.e(summary.get('n_synthetic_1'))} of "
        f"class 1) on {h.e(summary.get('n_features'))} features"
        + (f" ({h.e(summary.get('n_features_dropped'))} constant or empty in the real cases left out)"
           if summary.get("n_features_dropped") else "") + ". Missing values were filled with the real cases' medians."))

    card = view.json(Results.SYNTHETIC_GENERATOR_CARD)
    # a card (and slice grid) left by an earlier image generator in the same results folder is not this audit's
    if card and card.get("generator") != summary.get("generator"):
        card = None
    if card:  # the image path: the generator, its training crops and the synthetic lesions dropped
        qc = view.tsv(Results.SYNTHETIC_EXTRACTION_QC)
        dropped = qc[qc["status"] == "dropped"] if qc is not None and len(qc) else None
        n_dropped = 0 if dropped is None else len(dropped)
        n_empty = 0 if dropped is None else int((dropped["reason"] == "empty lesion mask").sum())
        per_class = card.get("n_training_crops_per_class") or {}
        rate = card.get("iterations_per_second")
        out.append(h.p(
            f"{h.e(card.get('method'))}: trained on the lesion-centred crops ({h.e('×'.join(map(str, card.get('crop_shape', []))))} "
            f"voxels of {h.num(card.get('crop_spacing_mm'), 2)} mm) of {h.e(card.get('n_training_crops'))} "
            f"generator-training cases ({h.e(per_class.get('0'))} of class 0, {h.e(per_class.get('1'))} of class 1"
            + (f"; {len(card.get('excluded') or {})} without a usable crop left out" if card.get("excluded") else "")
            + f"), {h.e(card.get('settings', {}).get('iterations'))} iterations per network on {h.e(card.get('device'))}"
            + (" with mixed precision" if card.get("mixed_precision") else "")
            + (f" ({h.num(rate, 2)} iterations/s)" if rate else "") + ". "
            f"Synthetic lesions dropped: {n_dropped} ({n_empty} with an empty mask, {n_dropped - n_empty} failed "
            f"extraction; <code>synthetic/extraction_qc.tsv</code>). Their features were extracted with the study's "
            f"pyradiomics settings of the reference modality, on the preprocessing grid."))
        grid = h.png_file_figure(view.path(Results.SYNTHETIC_SLICES),
                                 "<strong>Real and synthetic lesions per class.</strong> Axial slice of largest lesion "
                                 "area of generator-training crops and synthetic crops, one grey window for all "
                                 "(1st–99th percentile of the real lesions and the 3 voxels around them), lesion "
                                 "contour in orange.",
                                 "Slice grid of real and synthetic lesions")
        if grid is not None:
            out.append(grid)

    # the verdicts, each with its rule
    comparisons = {c: view.tsv(Results.SYNTHETIC_COMPARISON, cohort=c) for c in view.cohorts}
    alpha = float((view.config.get("validation") or {}).get("alpha", 0.05))
    helpful_rows, helped = [], []
    for c, t in comparisons.items():
        if t is None or not len(t):
            continue
        for r in t.itertuples():
            row = [h.cohort_name(c), getattr(r, "arm", r.model), r.n, h.Html(h.ci(r.auc, r.auc_ci_low, r.auc_ci_high))]
            if r.model == r.reference:
                row += ["reference (TRTR)", ""]
            else:
                row += [r.auc_difference, r.p_value]
                if r.model in ("synthetic_augmented", "smote_augmented"):
                    better = h.f(r.auc_difference) > 0 and h.f(r.p_value) < alpha
                    helped.append((c, r.model, better))
            helpful_rows.append(row)
    # external cohorts decide; without one, the out-of-fold comparison on the training cohorts does
    decisive = [x for x in helped if x[0] != "train"] or helped
    helpful = any(b for _, _, b in decisive) if decisive else None
    where = "external" if any(x[0] != "train" for x in helped) else "out-of-fold (no external cohort)"
    verdicts = [
        ["Faithful", _yes_no(summary.get("faithful")), summary.get("faithful_rule", "")],
        ["Memorised", _yes_no(summary.get("memorised")), summary.get("memorised_rule", "")],
        ["Helpful", "not assessed (no augmented comparator)" if helpful is None else _yes_no(helpful),
         f"an augmented model (real + synthetic, real + SMOTE) has a higher {where} AUC than the real-only model "
         f"with paired DeLong p < {alpha}"],
    ]
    out.append(h.table(["Question", "Verdict", "Rule"], verdicts, "compact"))
    out.append(h.table(["Audit figure", "Value"], [
        ["Share of features not rejected by KS (q ≥ 0.05, all cases)", summary.get("share_features_ks_pass")],
        ["Correlation MAE (Spearman, over feature pairs)", summary.get("correlation_mae")],
        ["Correlation similarity (SDMetrics, 1 = identical)", summary.get("correlation_similarity")],
        [f"Detection AUC ({h.e(summary.get('detection_folds'))}-fold CV; 0.5 = indistinguishable)", summary.get("detection_auc")],
        ["Median distance synthetic → train / holdout → train (z units)",
         h.Html(f"{h.num(summary.get('dcr_synthetic_median'))} / {h.num(summary.get('dcr_holdout_median'))}")],
        ["Memorisation ratio (synthetic / holdout median; < 1 closer than new real cases)", summary.get("memorisation_ratio")],
        ["Share of synthetic cases nearer than the 5th percentile of holdout distances (≈ 0.05 if not copying)",
         summary.get("share_too_close")],
        ["Exact copies of training cases", summary.get("n_exact_copies")],
        [f"Precision / recall (Kynkäänniemi et al. 2019, k = {h.e(summary.get('precision_recall_k'))})",
         h.Html(f"{h.num(summary.get('precision'))} / {h.num(summary.get('recall'))}")],
        ["Fréchet radiomics distance (z-scored features)", summary.get("frechet_distance")],
        ["Label invariance: share of features rejected (class-wise KS, q < 0.05), class 0 / class 1",
         h.Html(f"{h.num(summary.get('label_invariance_share_rejected_0'))} / "
                f"{h.num(summary.get('label_invariance_share_rejected_1'))}")],
        ["Range: share of synthetic values outside the real range of their feature",
         summary.get("share_synthetic_values_outside_real_range")],
    ]))
    ranges = summary.get("intensity_range") or []
    if ranges:
        out.append(h.p("Intensity range of the lesions (each lesion's first-order minimum and maximum, in the units "
                       "the features were extracted in): the real generator-training lesions against the synthetic "
                       "ones, and the share of synthetic lesions whose whole range lies within the real one.", "note"))
        out.append(h.table(["Image", "Stratum", "Real low", "Real high", "Synthetic low", "Synthetic high",
                            "Share within real range"],
                           [[r.get("image"), r.get("stratum"), r.get("real_low"), r.get("real_high"),
                             r.get("synthetic_low"), r.get("synthetic_high"), r.get("share_within")] for r in ranges],
                           "compact"))
    if fidelity is not None and len(fidelity):
        worst = fidelity.sort_values("ks_statistic", ascending=False).head(15)
        out.append(h.p("Per feature and stratum, worst first (all rows: <code>analytical/synthetic_fidelity.tsv</code>); "
                       "Wasserstein in the feature's units and divided by the real SD; mutual information with the "
                       "outcome in nats.", "note"))
        out.append(h.table(["Feature", "Stratum", "KS D", "KS q (BH)", "Wasserstein", "W / SD", "MI real", "MI synthetic"],
                           [[r.feature, r.stratum, r.ks_statistic, r.ks_qvalue, r.wasserstein, r.wasserstein_std,
                             r.mutual_information_real, r.mutual_information_synthetic] for r in worst.itertuples()],
                           "compact"))
    correlations = view.tsv(Results.SYNTHETIC_CORRELATIONS)
    if correlations is not None and len(correlations):
        out.append(h.figure(lambda: correlation_heatmaps(correlations),
                            "<strong>Dependence between features.</strong> Spearman correlation matrices of the real "
                            "generator-training cases and of the synthetic cases.", "Correlation heatmaps",
                            name="synthetic_correlations"))
    distances = view.tsv(Results.SYNTHETIC_DISTANCES)
    if distances is not None and len(distances):
        out.append(h.figure(lambda: distance_histograms(distances, h.f(summary.get("too_close_threshold"))),
                            "<strong>Memorisation.</strong> Distance of each synthetic case and of each held-out real "
                            "case to its nearest generator-training case; a copying generator piles up at 0.",
                            "Nearest-neighbour distance histograms", name="synthetic_distances"))
    if helpful_rows:
        out.append(h.p("Does it help? Each model trained by the imaging model's procedure; synthetic cases in training "
                       "folds only. Train rows: out-of-fold AUC (for the generator's arms optimistic: the generator saw "
                       "cases of the test folds); external rows: the frozen models. Paired DeLong test against the "
                       "real-only model (TRTR)."))
        out.append(h.table(["Cohort", "Model", "n", "AUC [95% CI]", "AUC − TRTR", "p (paired DeLong)"], helpful_rows,
                           "compact"))
    return Section("synthetic", "\n".join(out))
