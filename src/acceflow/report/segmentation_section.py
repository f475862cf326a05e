"""Dossier section on the deep-learning segmentation (segmentation.source: model).

Reads, under the results folder: ``analytical/segmentation_quality.tsv`` (per case: Dice, HD95,
ASSD, surface Dice against the reference mask, on the original image grid),
``analytical/segmentation_quality_summary.tsv`` (per cohort, modality and evaluation kind: mean
with 95% percentile-bootstrap CI, median, quartiles), ``analytical/segmentation_overlays/``
(PNG of the worst and the median case per modality), ``segmentation/model/*/*/model_card.json``
(training history), ``analytical/segmentation_icc.tsv`` (ICC(2,1) across the model's sample
masks, i.e. segmentation uncertainty as readers) and ``analytical/reference_vs_model_icc.tsv``
(ICC(2,1) between features from the reference and from the model mask). Features with a lower
95% CI bound under the reproducibility threshold in either table are flagged as
contour-dependent. Nothing here runs a model; a missing file leaves its part out.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import SimpleITK as sitk

from acceflow.report import html as h
from acceflow.report.figures import OVERLAY_COLOURS
from acceflow.report.view import Results, ResultsView, Section
from acceflow.study.results import fill

__all__ = ["overlay_figure", "segmentation_section", "segmentation_summary"]

_METRICS = {"dice": "Dice", "hd95_mm": "HD95 (mm)", "assd_mm": "ASSD (mm)", "surface_dice": "Surface Dice"}


def overlay_figure(image, reference, predicted, title: str = ""):
    """An axial slice of an image with the reference (green) and predicted (magenta) contours.

    Parameters
    ----------
    image, reference, predicted : SimpleITK images on one grid (masks: non-zero = ROI)
    title : figure title

    Returns
    -------
    matplotlib Figure; the slice is the one with the largest reference area (the predicted
    mask's largest slice when the reference is empty), shown with the voxel aspect ratio.
    """
    import matplotlib  # heavy optional dependency: imported on first use

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy optional dependency: imported on first use

    img = sitk.GetArrayFromImage(image).astype(float)
    ref = sitk.GetArrayFromImage(reference) > 0
    pred = sitk.GetArrayFromImage(predicted) > 0
    area = ref.sum(axis=(1, 2)) if ref.any() else pred.sum(axis=(1, 2))
    z = int(np.argmax(area))
    sx, sy = image.GetSpacing()[:2]
    fig, ax = plt.subplots(figsize=(5, 5))
    lo, hi = np.percentile(img[z], [1, 99])
    ax.imshow(img[z], cmap="gray", vmin=lo, vmax=hi, aspect=sy / sx)
    if ref[z].any():
        ax.contour(ref[z], levels=[0.5], colors=OVERLAY_COLOURS["reference"], linewidths=1.2)
    if pred[z].any():
        ax.contour(pred[z], levels=[0.5], colors=OVERLAY_COLOURS["model"], linewidths=1.2, linestyles="--")
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()
    ax.plot([], [], color=OVERLAY_COLOURS["reference"], label="reference")
    ax.plot([], [], color=OVERLAY_COLOURS["model"], linestyle="--", label="model")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


_e = h.e


def _n(x, nd=3) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return _e(x)
    return "—" if not np.isfinite(x) else f"{x:.{nd}f}"


def _table(headers, rows) -> str:
    """A table of cells that are HTML already (escaped or formatted here)."""
    return h.table(headers, [[h.Html(c) for c in r] for r in rows])


def _flags(icc: pd.DataFrame | None) -> list[str]:
    if icc is None or not len(icc) or "contour_dependent" not in icc:
        return []
    return sorted(icc.loc[icc["contour_dependent"].astype(str) == "True", "feature"].astype(str))


def segmentation_summary(view: ResultsView) -> dict:
    """Machine-readable summary for ``summary.json``: quality per cohort / modality / evaluation
    (mean and 95% CI of Dice and HD95) and the number of contour-dependent features."""
    summ = view.tsv(Results.SEGMENTATION_QUALITY_SUMMARY)
    if summ is None:
        return {}
    out = {"segmentation_quality": [
        {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in r.items()}
        for r in summ[summ["metric"].isin(["dice", "hd95_mm"])].to_dict("records")]}
    for template, key in ((Results.SEGMENTATION_ICC, "n_contour_dependent_uncertainty"),
                          (Results.REFERENCE_VS_MODEL_ICC, "n_contour_dependent_reference_vs_model")):
        icc = view.tsv(template)
        if icc is not None:
            out[key] = len(_flags(icc))
    return out


def segmentation_section(view: ResultsView) -> Section | None:
    """The dossier section on the model segmentation; ``None`` unless segmentation.source is model or nnunet."""
    config = view.config
    source = (config.get("segmentation") or {}).get("source")
    if source not in ("model", "nnunet"):
        return None
    threshold = float((config.get("reproducibility") or {}).get("threshold", 0.75))
    seg = config.get("segmentation") or {}
    out = ['<h2 id="segmentation">2b. Segmentation quality (deep-learning segmentation)</h2>']
    cards = sorted(view.root.glob(fill(Results.SEGMENTER_CARD, modality="*", fold="*")))
    if cards and source == "nnunet":
        rows = []
        for p in cards:
            c = json.loads(p.read_text(encoding="utf-8"))
            plans = c.get("plans") or {}
            rows.append([_e(c.get("modality")), _e(c.get("fold")), _e(c.get("configuration")), _e(c.get("trainer")),
                         _e(f"{c.get('epochs_run')} x {c.get('iterations_per_epoch')}"),
                         _e(plans.get("patch_size")), _e(plans.get("spacing")), _n(c.get("ema_pseudo_dice")),
                         _n(c.get("iterations_per_s"), 2), _n(c.get("wall_s"), 0), _e(c.get("device")),
                         _e(c.get("nnunet_version")), _e(str(c.get("plans_sha256", ""))[:12])])
        nn = seg.get("nnunet") or {}
        out.append("<p>nnU-Net v2 (Isensee et al. 2021, Nat Methods 18:203), self-configured per modality from "
                   "the training cohorts' reference masks (<code>nnUNetPlans.json</code>: patch size, spacing, "
                   f"normalisation), trained with nnU-Net's own trainer. With {_e(nn.get('folds'))}-fold "
                   "cross-validation by patient (the study's folds written to nnU-Net's "
                   "<code>splits_final.json</code>), each training case is segmented by the fold model that did "
                   "not see it (out-of-fold); external cohorts by the ensemble of the fold models. Checkpoints "
                   "are checked against the SHA-256 recorded at training before nnU-Net loads them. The EMA "
                   "pseudo-Dice is nnU-Net's own running estimate on its validation patches.</p>")
        out.append(_table(["Modality", "Fold", "Configuration", "Trainer", "Epochs x iterations", "Patch size",
                           "Spacing (mm)", "EMA pseudo-Dice", "Iterations/s", "Training time (s)", "Device",
                           "nnU-Net", "Plans SHA-256"], rows))
    elif cards:
        rows = []
        for p in cards:
            c = json.loads(p.read_text(encoding="utf-8"))
            s, plan = c.get("settings", {}), c.get("plan") or {}  # plan: the planned patch and grid (issue 20)
            rows.append([_e(c.get("modality")), _e(c.get("fold")), _e(s.get("network")),
                         _e(plan.get("patch_size", s.get("patch_size"))), _e(plan.get("target_spacing") or "as given"),
                         _e(len(c.get("train_cases", []))), _e(len(c.get("validation_cases", []))),
                         _e(c.get("iterations_run")), _e(c.get("best_iteration")), _n(c.get("best_val_dice")),
                         _n(c.get("iterations_per_s"), 2), _e((c.get("device") or {}).get("device"))])
        out.append("<p>One MONAI network per modality, trained on the training cohorts' reference masks "
                   "(patch sampling, Dice + cross-entropy loss, early stopping on the validation Dice; patch size "
                   "and spacing planned from the training scans' median shape and spacing, as nnU-Net plans). "
                   + (f"With {int(seg.get('cv_folds', 0))}-fold cross-validation by patient, each training "
                      "case is segmented by the fold model that did not see it (out-of-fold); external "
                      "cohorts by the final model." if int(seg.get("cv_folds", 0) or 0) else
                      "Without cross-validation (<code>segmentation.cv_folds: 0</code>) the training cases "
                      "are segmented by a model that saw them: their quality is optimistic.") + "</p>")
        out.append(_table(["Modality", "Model", "Network", "Patch (voxels, z y x)", "Spacing (mm, x y z)",
                           "Training cases", "Validation cases", "Iterations",
                           "Best iteration", "Best validation Dice", "Iterations/s", "Device"], rows))
    summ = view.tsv(Results.SEGMENTATION_QUALITY_SUMMARY)
    if summ is None or not len(summ):
        out.append('<p class="warn">No segmentation quality table (no scan has a reference mask).</p>')
    else:
        tol = seg.get("surface_tolerance_mm", 2.0)
        rows = []
        for (cohort, modality, ev), part in summ.groupby(["cohort", "modality", "evaluation"], sort=True):
            cells = [_e(cohort), _e(modality), _e(ev), _e(int(part["n"].max()))]
            for m in _METRICS:
                r = part[part["metric"] == m]
                cells.append("—" if not len(r) else
                             f"{_n(r['mean'].iloc[0])} ({_n(r['ci_low'].iloc[0])}–{_n(r['ci_high'].iloc[0])}); "
                             f"median {_n(r['median'].iloc[0])}")
            rows.append(cells)
        out.append(f"<p>Model masks against the reference masks on the original image grid "
                   f"(<code>analytical/segmentation_quality.tsv</code>): mean (95% percentile-bootstrap CI "
                   f"of the mean over cases); median. Surface Dice at a tolerance of {_e(tol)} mm.</p>")
        out.append(_table(["Cohort", "Modality", "Evaluation", "n", *_METRICS.values()], rows))
    for f in view.json(Results.SEGMENTATION_OVERLAYS_INDEX) or []:
        fig = h.png_file_figure(view.path(Results.SEGMENTATION_OVERLAYS) / f["file"],
                                f"<strong>{_e(f['modality'])}, {_e(f['case'])} case</strong> "
                                f"({_e(f['scan_id'])}; Dice {_n(f['dice'])}, HD95 {_n(f['hd95_mm'], 1)} mm): reference "
                                "contour green, model contour magenta dashed, on the slice with the largest "
                                "reference area.", f["file"])
        if fig is not None:
            out.append(fig)
    for template, what in ((Results.SEGMENTATION_ICC,
                        f"across the model's sample masks ({_e((seg.get('uncertainty') or {}).get('method'))}, "
                        f"{_e((seg.get('uncertainty') or {}).get('samples'))} samples per scan, each a reader)"),
                       (Results.REFERENCE_VS_MODEL_ICC, "between features from the reference mask and from the "
                                                      "model mask (two readers)")):
        icc = view.tsv(template)
        name = view.relative(template)
        if icc is None:
            continue
        flags = _flags(icc)
        if not len(icc):
            out.append(f"<p class=\"warn\">ICC(2,1) {what}: not computed (too few cases).</p>")
            continue
        med = float(np.nanmedian(pd.to_numeric(icc["icc"], errors="coerce")))
        listed = ", ".join(f"<code>{_e(f)}</code>" for f in flags[:30]) + (" …" if len(flags) > 30 else "")
        out.append(f"<p><strong>Contour dependence.</strong> ICC(2,1) per feature {what} "
                   f"(<code>{_e(name)}</code>): {len(icc)} features, median ICC {_n(med)}; "
                   f"<strong>{len(flags)}</strong> feature(s) have a 95% CI lower bound below {threshold:g} "
                   f"and are flagged as contour-dependent" + (f": {listed}." if flags else ".")
                   + " These flags are evidence only: the stable-feature selection follows the "
                   "configured reproducibility design.</p>")
    return Section("segmentation", "\n".join(out))
