"""Dossier section of the deep-learning biomarker (acceflow.deep): every model side by side per
cohort (AUC with DeLong CI, paired DeLong test, calibration, net benefit on one plot), the deep
model's card and training history, the stability of its deep features (ICC beside the handcrafted
features') and Grad-CAM maps.

:func:`deep_section` returns "" when the study has no deep model, so the dossier is unchanged.
"""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd

from acceflow.report import figures as F
from acceflow.report import html as h
from acceflow.report.explain_section import integrated_gradients_block
from acceflow.report.shift_section import dann_html
from acceflow.report.view import Results, ResultsView, Section
from acceflow.study.settings import DEEP_KIND


def _models(view: ResultsView, cohort: str) -> dict[str, str | None]:
    """Model name -> comparator name (None: the primary model) of one cohort, primary first."""
    primary = view.card.get("model", "primary")
    return {primary: None, **{m: m for m in view.comparators(cohort)}}


def side_by_side(view: ResultsView, cohort: str) -> pd.DataFrame:
    """One row per model on one cohort: AUC with DeLong CI, paired DeLong p against the reference,
    Brier, calibration intercept / slope with CIs, ICI, and the net benefit at the thresholds
    0.1, 0.2 and 0.3 (``nb_0.1`` ...); survival studies: Harrell's and Uno's C with their CIs
    (``c_index``, ``uno_c`` ..., as each model's metrics.json holds them) instead of the AUC."""
    comp = view.tsv(Results.MODEL_COMPARISON, cohort=cohort)
    comp = comp.set_index("model") if comp is not None else None
    rows = []
    for model, name in _models(view, cohort).items():
        m = view.metrics(cohort, name)
        cal = view.calibration(cohort, name)
        dc = view.decision_curve(cohort, name)
        row = {"model": model, **{k: m.get(k) for k in ("n", "n_events", "auc", "auc_ci_low", "auc_ci_high", "brier",
                                                        "c_index", "c_index_ci_low", "c_index_ci_high", "uno_c",
                                                        "uno_c_ci_low", "uno_c_ci_high")},
               **{k: cal.get(k) for k in ("calibration_intercept", "calibration_intercept_ci_low",
                                          "calibration_intercept_ci_high", "calibration_slope",
                                          "calibration_slope_ci_low", "calibration_slope_ci_high", "ici")}}
        if comp is not None and model in comp.index:
            row.update(reference=comp.loc[model, "reference"], auc_difference=comp.loc[model, "auc_difference"],
                       p_value=comp.loc[model, "p_value"])
        if dc is not None:
            for t in (0.1, 0.2, 0.3):
                hit = dc[np.isclose(dc["threshold"], t)]
                row[f"nb_{t}"] = float(hit["net_benefit_model"].iloc[0]) if len(hit) else None
        rows.append(row)
    return pd.DataFrame(rows)


def multitask_text(mt: dict) -> str:
    """One line on the multi-task network: its loss, PCGrad, both tasks' held-out metrics, the gradient cosine."""
    task = (f"Harrell's C {h.num(mt.get('cv_c_index_mean'))}" if "cv_c_index_mean" in mt
            else f"AUC {h.num(mt.get('cv_auc_mean'))}")
    cos = [c for c in (mt.get("grad_cosine_by_epoch") or []) if c is not None]
    trend = (f" (epoch 1: {h.num(cos[0])}, last epoch: {h.num(cos[-1])})" if len(cos) > 1 else "")
    return (f"{mt.get('loss', '')}; {mt.get('pcgrad_description', '')}. Held-out (cross-validation, mean over folds): "
            f"{task}, decoder Dice {h.num(mt.get('cv_dice_mean'))} (SD {h.num(mt.get('cv_dice_sd'))}). Cosine "
            f"between the tasks' gradients on the shared encoder, mean over epochs {h.num(mt.get('grad_cosine_mean'))}"
            f"{trend}; negative values mean the tasks pull the encoder apart.")


def _history_figure(history: pd.DataFrame):
    fig, ax = F.plt.subplots(figsize=(5.0, 3.2))
    ax.plot(history["epoch"], history["train_loss"], label="training loss")
    if "val_loss" in history:
        ax.plot(history["epoch"], history["val_loss"], label="validation loss")
    if "val_auc" in history:
        ax2 = ax.twinx()
        ax2.plot(history["epoch"], history["val_auc"], color="#555555", ls=":", label="validation AUC")
        ax2.set_ylabel("validation AUC")
        ax2.set_ylim(0, 1)
    ax.set(xlabel="epoch", ylabel="loss")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def _cosine_figure(history: pd.DataFrame):
    fig, ax = F.plt.subplots(figsize=(5.0, 2.6))
    ax.plot(history["epoch"], history["grad_cosine"], marker="o", ms=3, label="cosine(task, segmentation)")
    ax.axhline(0, color="#555555", lw=0.8, ls=":")
    ax.set(xlabel="epoch", ylabel="gradient cosine", ylim=(-1, 1))
    fig.tight_layout()
    return fig


def icc_comparison(handcrafted: pd.DataFrame | None, deep: pd.DataFrame | None, threshold: float) -> list[dict]:
    """Stability of handcrafted vs deep features: n, share with ICC 95% CI lower bound >= threshold,
    median ICC."""
    rows = []
    for name, table in (("handcrafted (radiomics)", handcrafted), ("deep (embedding units)", deep)):
        if table is None or not len(table) or table["icc"].isna().all():
            continue
        stable = table["ci_low"] >= threshold
        rows.append({"features": name, "n": int(len(table)), "form": str(table["icc_form"].iloc[0]),
                     "stable_fraction": float(stable.mean()), "median_icc": float(table["icc"].median()),
                     "n_subjects": int(table["n_subjects"].max())})
    return rows


def deep_section(view: ResultsView) -> Section | None:
    """The deep-learning section, or ``None`` without a deep model (its model card)."""
    card = view.json(Results.MODEL_CARD, DEEP_KIND)
    if not card and (view.card or {}).get("model") == DEEP_KIND:  # model.primary: deep
        card = view.card
    if not card:
        return None
    cohorts = view.cohorts
    out = ['<h2 id="deep-model">Deep-learning biomarker</h2>']
    crop = card.get("crop", {})
    fm = card.get("final_model", {})
    out.append(h.kv_table([
        ("Network", f"MONAI {card.get('network')} ({card.get('fusion')} fusion)"),
        ("Inputs", ", ".join(card.get("modalities", []))),
        ("Crop", f"{crop.get('size_voxels')}³ voxels of {crop.get('spacing_mm')} mm "
                 f"({crop.get('field_of_view_mm')} mm), centred on the lesion's centre of mass"),
        ("Training cases (events)", f"{card.get('n_train')} ({card.get('n_events_train')}); "
                                    f"{len(card.get('excluded_cases') or {})} left out (no usable crop)"),
        ("Final network", f"{fm.get('n_train')} training + {fm.get('n_validation')} validation cases; stopped at "
                          f"epoch {fm.get('stopped_epoch')}, weights of epoch {fm.get('best_epoch')}"),
        ("Loss", card.get("loss", "")),
        ("Fusion", card.get("fusion_description") or card.get("fusion")),
        ("Dimensions", card.get("dimensions_description") or "3D: the whole crop through a 3D network"),
        *([("Multi-task", multitask_text(card["multitask"]))] if card.get("multitask") else []),
        ("Internal validation", h.Html(h.e(card.get("internal_validation", "")) + (
            f" — Harrell's C per fold {h.num(card.get('cv_c_index_mean'))} (SD {h.num(card.get('cv_c_index_sd'))})"
            if "cv_c_index_mean" in card else
            f" — AUC per fold {h.num(card.get('cv_auc_mean'))} (SD {h.num(card.get('cv_auc_sd'))})"))),
        ("Device", f"{(card.get('device') or {}).get('device')} (torch {(card.get('device') or {}).get('torch')}, "
                   f"MONAI {(card.get('device') or {}).get('monai')})"),
    ]))
    history = pd.DataFrame(card.get("training_history") or [])
    if len(history):
        out.append(h.figure(lambda: _history_figure(history),
                             "Training history of the final (frozen) network: losses per epoch and the validation "
                             "split's AUC; early stopping on the validation loss.", "deep training history",
                             name="deep_training_history"))
        if "grad_cosine" in history and history["grad_cosine"].notna().any():
            out.append(h.figure(lambda: _cosine_figure(history),
                                 "Multi-task training: cosine between the gradients of the task loss and of the "
                                 "segmentation loss on the shared encoder, mean over each epoch's batches, before "
                                 "any PCGrad projection (below 0: conflicting tasks).", "deep gradient cosine",
                                 name="deep_gradient_cosine"))
    out += ["<h3 id=\"model-comparison-side-by-side\">All models side by side</h3>",
            h.p("Clinical-only, radiomics (imaging), combined and deep models on the same cases of each cohort: "
                 "AUC with DeLong 95% CI, the paired DeLong test against the reference model, Brier score, "
                 "calibration intercept and slope (unpenalised logistic recalibration) with 95% CIs, ICI, and the "
                 "net benefit at threshold probabilities 0.1, 0.2 and 0.3. <em>train</em> is out-of-fold "
                 "(internal validation). The decision curves of every model, the deep model's included, are "
                 "drawn once, in <a href=\"#decision-curve\">Clinical utility</a>. Survival studies: Harrell's and "
                 "Uno's C with bootstrap 95% CIs instead of the AUC (no paired DeLong test).", "note")]
    for c in cohorts:
        table = side_by_side(view, c)
        if table.empty:
            continue
        if "c_index" in table and table["c_index"].notna().any():  # survival: concordance, no paired DeLong
            out += [f"<h4>{h.e(h.cohort_name(c))} (n = {h.num(table['n'].iloc[0])})</h4>",
                    h.table(["Model", "Harrell's C [95% CI]", "Uno's C [95% CI]", "Events"],
                            [[r["model"], h.Html(h.ci(r.get("c_index"), r.get("c_index_ci_low"), r.get("c_index_ci_high"))),
                              h.Html(h.ci(r.get("uno_c"), r.get("uno_c_ci_low"), r.get("uno_c_ci_high"))),
                              r.get("n_events")] for _, r in table.iterrows()], "compact")]
            continue
        rows = []
        for _, r in table.iterrows():
            g = r.get
            is_ref = g("reference") in (None, r["model"]) or pd.isna(g("reference"))
            rows.append([r["model"], h.Html(h.ci(g("auc"), g("auc_ci_low"), g("auc_ci_high"))),
                         "reference" if is_ref else g("auc_difference"), "" if is_ref else g("p_value"), g("brier"),
                         h.Html(h.ci(g("calibration_intercept"), g("calibration_intercept_ci_low"),
                                       g("calibration_intercept_ci_high"))),
                         h.Html(h.ci(g("calibration_slope"), g("calibration_slope_ci_low"),
                                       g("calibration_slope_ci_high"))),
                         g("ici"), g("nb_0.1"), g("nb_0.2"), g("nb_0.3")])
        ref = table["reference"].dropna().iloc[0] if "reference" in table and table["reference"].notna().any() else "—"
        out += [f"<h4>{h.e(h.cohort_name(c))} (n = {h.num(table['n'].iloc[0])})</h4>",
                h.table(["Model", "AUC [95% CI]", f"ΔAUC vs {ref}", "p (paired DeLong)", "Brier",
                          "Intercept [95% CI]", "Slope [95% CI]", "ICI", "NB 0.1", "NB 0.2", "NB 0.3"], rows,
                         "compact")]
    deep_icc = view.tsv(Results.DEEP_ICC)
    hand_icc = view.tsv(Results.ICC)
    feats = view.tsv(Results.DEEP_FEATURES, dtype={"case_id": str})
    if feats is not None:
        threshold = float(card.get("icc_threshold", 0.75))
        rows = icc_comparison(hand_icc, deep_icc, threshold)
        out += ["<h3 id=\"deep-features\">Deep features and their stability</h3>",
                h.p(f"The frozen network's penultimate-layer embedding of every case is written to "
                     f"<code>deep/features.tsv</code> ({len(feats)} cases × "
                     f"{sum(col.startswith('deep_') for col in feats.columns)} units). Embeddings of training cases "
                     f"come from a network trained on them (not held-out). Stability across the study's repeats: "
                     f"share of features whose ICC 95% CI lower bound is at least {threshold}.", "note")]
        if rows:
            out.append(h.table(["Features", "n", "ICC form", "Stable share", "Median ICC", "Subjects"],
                                [[r["features"], r["n"], r["form"], r["stable_fraction"], r["median_icc"],
                                  r["n_subjects"]] for r in rows], "compact"))
        else:
            out.append(h.p("No repeated scans: the ICC of the deep features was not assessed.", "note"))
    figs = []
    for c in [*cohorts]:
        g = view.tsv(Results.GRADCAM, dtype={"case_id": str}, cohort=c)
        if g is None or not len(g):
            continue
        for r in g.itertuples():
            png = view.path(Results.GRADCAM_IMAGE, cohort=c, png=r.png)
            if not png.is_file():
                continue
            data = base64.b64encode(png.read_bytes()).decode()
            figs.append(f'<figure style="display:inline-block;margin:4px"><img src="data:image/png;base64,{data}" '
                        f'alt="Grad-CAM {h.e(c)} {h.e(r.case_id)}"><figcaption>{h.e(h.cohort_name(c))} '
                        f'{h.e(r.case_id)}: {"correct" if r.correct else "wrong"}</figcaption></figure>')
        layer, shape, mm = g["layer"].iloc[0], g["layer_shape"].iloc[0], g["layer_voxel_mm"].iloc[0]
    if figs:
        out += ["<h3 id=\"gradcam\">Grad-CAM</h3>", "".join(figs),
                h.p(f"Grad-CAM (Selvaraju et al. 2017; MONAI <code>GradCAM</code>) of layer <code>{h.e(layer)}</code> "
                     f"for the most confidently correct and wrong cases per cohort, over the axial slice through the "
                     f"lesion centre ({h.e(g['modality'].iloc[0])}; white: lesion contour). The map's resolution is "
                     f"that layer's: {h.e(shape)} voxels over the crop, i.e. {h.e(mm)} mm per map voxel, "
                     f"up-sampled (trilinear) for display. Training-cohort maps come from the final network, which "
                     f"was trained on those cases.", "note")]
    dann = dann_html(view)
    if dann:
        out.append(dann)
    out.append(integrated_gradients_block(view))
    return Section("deep-model", "\n".join(out))
