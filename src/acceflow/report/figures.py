"""Figures of the evidence dossier.

Every function takes the tables of the results contract (predictions, metrics, decision curves,
ICC table) and returns a :class:`matplotlib.figure.Figure`; nothing here reads files, so each
figure can be drawn from a notebook as well. Figures are deterministic: no timestamps, fixed SVG
ids, no software tag in the PNG, so the same results give byte-identical images.

Colours: one colour-blind-safe palette for every figure of acceflow, defined here once
(:data:`PALETTE`, Okabe & Ito 2008, "Color Universal Design"; also matplotlib's default colour
cycle once this module is imported) with its named uses (:data:`MODEL_COLOURS`,
:data:`RISK_GROUP_COLOURS`, :data:`KOO_LI_COLOURS`, :data:`OUTCOME_COLOURS`, :data:`OVERLAY_COLOURS`); no figure pairs a red
with a green. The figures the rules draw (:mod:`acceflow.report.utility_figures`) take them from here.

The cohort named ``train`` holds out-of-fold predictions of the internal validation
(repeated cross-validation on the training site); it is labelled as such in every figure.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from acceflow.runtime import atomic_write_bytes  # noqa: E402

__all__ = [
    "KOO_LI_COLOURS",
    "MODEL_COLOURS",
    "OKABE_ITO",
    "OUTCOME_COLOURS",
    "OVERLAY_COLOURS",
    "PALETTE",
    "RISK_GROUP_COLOURS",
    "at_risk_counts",
    "cohort_label",
    "figure_to_base64_png",
    "feature_group",
    "federated_rounds_figure",
    "forest_figure",
    "icc_figure",
    "koo_li_band",
    "bland_altman_figure",
    "site_effect_figure",
    "domain_shift_figure",
    "roc_figure",
    "km_figure",
    "save_figure",
]

#: The Okabe & Ito (2008) colour-blind-safe palette, by name.
OKABE_ITO = {"blue": "#0072B2", "vermillion": "#D55E00", "bluish_green": "#009E73", "reddish_purple": "#CC79A7",
             "orange": "#E69F00", "sky_blue": "#56B4E9", "yellow": "#F0E442", "black": "#000000"}

#: Colour per cohort (and matplotlib's default cycle), in order of appearance: Okabe & Ito.
PALETTE = list(OKABE_ITO.values())

#: Colour per model kind (decision curves of every model, comparisons); the primary model is drawn
#: on top with a thicker line whatever its colour.
MODEL_COLOURS = {"imaging": OKABE_ITO["blue"], "clinical": OKABE_ITO["orange"],
                 "combined_early": OKABE_ITO["reddish_purple"], "combined_late": OKABE_ITO["sky_blue"],
                 "deep": OKABE_ITO["vermillion"], "deep_dann": OKABE_ITO["bluish_green"]}

#: Kaplan–Meier risk groups: low (0) and high (1) risk (blue against vermillion, not green against red).
RISK_GROUP_COLOURS = {0: OKABE_ITO["blue"], 1: OKABE_ITO["vermillion"]}

#: Events and non-events (histograms of predictions).
OUTCOME_COLOURS = {"event": OKABE_ITO["vermillion"], "non-event": "#4d4d4d"}

#: Mask contours over a grey-scale image: reference (solid) and model (dashed) segmentation.
OVERLAY_COLOURS = {"reference": OKABE_ITO["yellow"], "model": OKABE_ITO["reddish_purple"]}

#: Koo & Li (2016) reliability bands and their colours (poor to excellent; Okabe & Ito).
KOO_LI_COLOURS = {
    "poor": OKABE_ITO["vermillion"],
    "moderate": OKABE_ITO["orange"],
    "good": OKABE_ITO["sky_blue"],
    "excellent": OKABE_ITO["blue"],
}

matplotlib.rcParams["axes.prop_cycle"] = matplotlib.cycler(color=PALETTE)

#: pyradiomics feature classes, used to group features in the ICC figure.
_FEATURE_CLASSES = ("shape", "shape2D", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")

_RC = {  # every figure is drawn inside plt.rc_context(_RC): a style another library set (seaborn's) cannot leak in
    "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def cohort_label(cohort: str) -> str:
    """Label of a cohort in figures: ``train`` is the internal (out-of-fold) validation."""
    if cohort == "train":
        return "train (internal validation, out-of-fold)"
    return f"{cohort} (external)"


def _colours(cohorts) -> dict[str, str]:
    return {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(cohorts)}


def _grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    ncols = max(1, min(n, max_cols))
    return int(np.ceil(max(n, 1) / ncols)), ncols


def _fmt(x, nd: int = 3) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "NA"
    return "NA" if not np.isfinite(x) else f"{x:.{nd}f}"


# --------------------------------------------------------------------------------------- output


def figure_to_base64_png(fig: Figure, dpi: int = 110) -> str:
    """Render ``fig`` as PNG and return it base64-encoded (for a ``data:image/png`` URI).

    The PNG carries no software tag or timestamp, so it is reproducible byte for byte.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None}, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def save_figure(fig: Figure, path_without_ext: str | os.PathLike, dpi: int = 150) -> list[Path]:
    """Write ``fig`` as ``<path>.png`` and ``<path>.svg`` (atomically) and return both paths.

    The SVG carries no date and fixed element ids; the PNG no software tag.
    """
    base = Path(path_without_ext)
    written = []
    for fmt, metadata in (("png", {"Software": None}), ("svg", {"Date": None, "Creator": None})):
        buf = io.BytesIO()
        with plt.rc_context({"svg.hashsalt": "acceflow"}):  # fixed SVG ids instead of random ones
            fig.savefig(buf, format=fmt, dpi=dpi, metadata=metadata, bbox_inches="tight")
        written.append(atomic_write_bytes(buf.getvalue(), base.with_name(f"{base.name}.{fmt}")))
    return written


# ------------------------------------------------------------------------------------------ ROC


def roc_figure(
    curves_by_cohort: Mapping[str, pd.DataFrame],
    metrics_by_cohort: Mapping[str, Mapping] | None = None,
) -> Figure:
    """ROC curves, one per cohort, on one set of axes, drawn from ``discrimination_curve.tsv``.

    Parameters
    ----------
    curves_by_cohort : mapping cohort -> DataFrame with columns ``fpr`` and ``tpr`` (as the
        discrimination rule writes them; an empty table draws nothing)
    metrics_by_cohort : mapping cohort -> metrics dict (``auc``, ``auc_ci_low``, ``auc_ci_high``, ``n``),
        optional; the legend shows the AUC with its 95% CI and n from there.
    """
    metrics_by_cohort = metrics_by_cohort or {}
    colours = _colours(curves_by_cohort)
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(5.2, 5.0))
        ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=1, label="chance (AUC 0.5)")
        for cohort, curve in curves_by_cohort.items():
            if curve is None or not len(curve):
                continue
            m = metrics_by_cohort.get(cohort, {})
            auc = f"AUC {_fmt(m.get('auc'))} (95% CI {_fmt(m.get('auc_ci_low'))}–{_fmt(m.get('auc_ci_high'))})"
            ls = "--" if cohort == "train" else "-"
            ax.step(curve["fpr"], curve["tpr"], where="post", color=colours[cohort], ls=ls, lw=1.6,
                    label=f"{cohort_label(cohort)}\n{auc}, n={m.get('n', '?')}")
        ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), aspect="equal",
               xlabel="1 − specificity (false-positive rate)", ylabel="Sensitivity (true-positive rate)",
               title="Discrimination: ROC curves")
        ax.legend(loc="lower right", frameon=False)
        fig.tight_layout()
    return fig


def at_risk_counts(km: pd.DataFrame, ticks) -> list[int]:
    """Number at risk of one Kaplan–Meier curve at each time in ``ticks``, as lifelines'
    :func:`lifelines.plotting.add_at_risk_counts` counts it (its default,
    ``at_risk_count_from_start_of_period=False``): at risk minus removed (events and censored) at the
    last event-table time at or before the tick.

    Parameters
    ----------
    km : DataFrame
        One group of ``discrimination_curve.tsv`` of a survival model: ``time`` (days, from 0) with
        lifelines' event-table columns ``at_risk``, ``events``, ``censored`` at each time.
    ticks : sequence of float
        Times (days).
    """
    d = km.sort_values("time")
    left = (d["at_risk"] - d["events"] - d["censored"]).to_numpy()
    times = d["time"].to_numpy(float)
    out = []
    for t in ticks:
        i = np.searchsorted(times, t, side="right") - 1
        out.append(int(left[i]) if i >= 0 else 0)
    return out


def km_figure(curves_by_cohort: Mapping[str, pd.DataFrame]) -> Figure:
    """Kaplan–Meier curves of the risk groups (cut at the training median), one panel per cohort,
    drawn from ``discrimination_curve.tsv`` of a survival model (``group``, ``n``, ``time``,
    ``survival``, ``ci_lower``, ``ci_upper``), with a number-at-risk table under each panel when the
    table has lifelines' event-table columns (``at_risk``, ``events``, ``censored``; counts as
    :func:`at_risk_counts`)."""
    names = {0: "low risk", 1: "high risk"}
    at_risk = all({"at_risk", "events", "censored"} <= set(c) for c in curves_by_cohort.values())
    with plt.rc_context(_RC):
        fig, axes = plt.subplots(1, len(curves_by_cohort), figsize=(4.4 * len(curves_by_cohort),
                                                                    4.4 if at_risk else 3.6), squeeze=False)
        for ax, (cohort, curve) in zip(axes[0], curves_by_cohort.items()):
            groups = list(curve.groupby("group", sort=True))
            for group, km in groups:
                label = names.get(int(group), f"group {group}")
                colour = RISK_GROUP_COLOURS.get(int(group))
                ax.step(km["time"], km["survival"], where="post", color=colour, lw=1.6,
                        label=f"{label} (n={int(km['n'].iloc[0])})")
                ax.fill_between(km["time"], km["ci_lower"], km["ci_upper"], step="post", color=colour, alpha=0.2)
            ax.set_title(cohort_label(cohort), fontsize=9)
            ax.set_xlabel("days")
            ax.set_ylabel("survival probability")
            ax.set_ylim(0, 1.02)
            ax.set_xlim(left=0)
            ax.legend(fontsize=7, loc="lower left")
            if at_risk:
                ticks = [t for t in ax.get_xticks() if 0 <= t <= float(curve["time"].max())]
                ax.set_xticks(ticks)
                xmax = ax.get_xlim()[1]
                width = (ticks[1] - ticks[0]) / xmax if len(ticks) > 1 else 0.2  # one column per tick, centred on it
                rows = [(names.get(int(g), f"group {g}"), at_risk_counts(km, ticks)) for g, km in groups]
                table = ax.table(cellText=[[str(v) for v in counts] for _, counts in rows],
                                 rowLabels=[lab for lab, _ in rows], cellLoc="center", edges="open",
                                 bbox=[ticks[0] / xmax - width / 2, -0.46, width * len(ticks), 0.16])
                table.auto_set_font_size(False)
                table.set_fontsize(7)
                for (r, _), cell in table.get_celld().items():
                    cell.get_text().set_color(RISK_GROUP_COLOURS.get(int(groups[r][0]), "black"))
                ax.text(0, -0.26, "Number at risk", transform=ax.transAxes, fontsize=7, va="top")
        fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------ ICC


def koo_li_band(icc) -> str:
    """Koo & Li (2016) interpretation band of an ICC value (a label for the reader, not a statistic):
    ``poor`` (< 0.5), ``moderate`` (0.5 to < 0.75), ``good`` (0.75 to 0.9), ``excellent`` (> 0.9),
    ``undefined`` for NaN. The same bands as the ICC table's ``koo_li_band`` column."""
    try:
        icc = float(icc)
    except (TypeError, ValueError):
        return "undefined"
    if not np.isfinite(icc):
        return "undefined"
    if icc < 0.5:
        return "poor"
    if icc < 0.75:
        return "moderate"
    if icc <= 0.9:
        return "good"
    return "excellent"


def feature_group(name: str) -> tuple[str, str]:
    """Split a feature name into (group, short label), the group ending at the pyradiomics class.

    ``CT_original_firstorder_Mean`` -> (``CT original firstorder``, ``Mean``); names without a
    known class go to group ``other``.
    """
    parts = str(name).split("_")
    for i, tok in enumerate(parts[:-1]):
        if tok in _FEATURE_CLASSES:
            return " ".join(parts[: i + 1]), "_".join(parts[i + 1:])
    return "other", str(name)


def _group_order(group: str) -> tuple:
    """Sort key of feature groups: by prefix (modality, image type), then pyradiomics class order."""
    *prefix, cls = group.split(" ")
    rank = _FEATURE_CLASSES.index(cls) if cls in _FEATURE_CLASSES else len(_FEATURE_CLASSES)
    return (group == "other", " ".join(prefix), rank, group)


def icc_figure(icc_df: pd.DataFrame, threshold: float | None = 0.75, max_detailed: int = 150) -> Figure:
    """ICC per feature with its 95% CI, grouped by feature class, coloured by Koo & Li band.

    Up to ``max_detailed`` features, one row per feature (sorted by ICC within its group);
    beyond that, one row per group with each feature's ICC as a dot (a strip plot), so the
    figure stays readable with a thousand features. A dashed line marks the stability
    threshold (a feature is stable when its CI lower bound reaches it).
    """
    d = icc_df.copy()
    for col in ("icc", "ci_low", "ci_high"):
        d[col] = pd.to_numeric(d[col], errors="coerce")
    if "koo_li_band" in d and d["koo_li_band"].notna().all():
        d["band"] = d["koo_li_band"].astype(str).str.lower()
    else:
        d["band"] = d["icc"].map(koo_li_band)
    grp = d["feature"].map(feature_group)
    d["group"] = [g for g, _ in grp]
    d["label"] = [lab for _, lab in grp]
    colours = d["band"].map(KOO_LI_COLOURS).fillna("black")
    lo = float(np.nanmin(np.r_[d["ci_low"].to_numpy(), d["icc"].to_numpy(), 0.0]))
    xlim = (max(-1.0, np.floor(lo * 10) / 10), 1.0)
    groups = sorted(d["group"].unique(), key=_group_order)
    detailed = len(d) <= max_detailed

    with plt.rc_context(_RC):
        if detailed:
            height = 1.4 + 0.16 * len(d) + 0.25 * len(groups)
            fig, ax = plt.subplots(figsize=(7.5, max(height, 3.0)), layout="constrained")
            y, ticks, labels = 0.0, [], []
            for g in groups:  # top to bottom (inverted y axis), highest ICC first within a group
                sub = d[d["group"] == g].sort_values("icc", ascending=False, na_position="last")
                ys = y + 1 + np.arange(len(sub))
                ax.hlines(ys, sub["ci_low"], sub["ci_high"], colors=colours[sub.index], lw=1.2)
                ax.scatter(sub["icc"], ys, c=colours[sub.index], s=14, zorder=3)
                ticks += list(ys)
                labels += list(sub["label"])
                ax.text(xlim[0], y + 0.3, f" {g} (n={len(sub)})", fontsize=8, fontweight="bold",
                        va="center", ha="left")
                if y > 0:
                    ax.axhline(y - 0.3, color="lightgrey", lw=0.6)
                y = ys[-1] + 1.3
            ax.set_yticks(ticks, labels, fontsize=7 if len(d) > 40 else 8)
            ax.set_ylim(y - 0.3, -0.5)
            ax.set_xlabel("ICC (dot) and 95% CI (bar)")
        else:
            fig, ax = plt.subplots(figsize=(7.5, 1.8 + 0.4 * len(groups)), layout="constrained")
            rng = np.random.default_rng(0)
            for k, g in enumerate(groups):
                sub = d[d["group"] == g]
                jitter = rng.uniform(-0.25, 0.25, len(sub))
                ax.scatter(sub["icc"], k + jitter, c=colours[sub.index], s=6, alpha=0.8)
            ax.set_yticks(range(len(groups)), [f"{g} (n={(d['group'] == g).sum()})" for g in groups])
            ax.set_ylim(len(groups) - 0.4, -0.6)
            ax.set_xlabel("ICC per feature (one dot each)")
        if threshold is not None:
            ax.axvline(threshold, color="black", ls="--", lw=1)
        ax.set_xlim(*xlim)
        handles = [Patch(color=c, label=b) for b, c in KOO_LI_COLOURS.items()]
        if threshold is not None:
            handles.append(Line2D([], [], color="black", ls="--", label=f"stability threshold {threshold:g}"))
        forms = ", ".join(sorted(map(str, d["icc_form"].dropna().unique()))) if "icc_form" in d else ""
        fig.legend(handles=handles, title="Koo & Li (2016) band", loc="outside lower center",
                   ncols=len(handles), frameon=False, fontsize=7, title_fontsize=7)
        ax.set_title(f"Analytical validity: feature reproducibility {forms}".strip())
    return fig



# ------------------------------------------------------------------ agreement and site effect


def bland_altman_figure(repeats: pd.DataFrame, features, agreement: pd.DataFrame, subject: str = "case_id",
                        rater: str = "repeat", max_features: int = 4) -> Figure:
    """Bland–Altman plots (Bland & Altman 1986) of up to ``max_features`` features of a two-repeat table.

    x: mean of the two repeats; y: second minus first (repeats in sorted order); solid line the
    bias, dashed lines the 95% limits of agreement (bias ± 1.96 SD), read from ``agreement``
    (``analytical/agreement.tsv``: ``feature``, ``ba_bias``, ``ba_loa_low``, ``ba_loa_high``).
    """
    ba_table = agreement.set_index("feature")
    features = [f for f in features if f in repeats][:max_features]
    order = sorted(repeats[rater].astype(str).unique())
    if len(order) != 2 or not features:
        raise ValueError("a Bland–Altman plot needs a two-repeat table and at least one of the features")
    rows, cols = _grid(len(features), 2)
    with plt.rc_context(_RC):
        fig, axes = plt.subplots(rows, cols, figsize=(3.8 * cols, 3.2 * rows), layout="constrained", squeeze=False)
        for ax, f in zip(axes.ravel(), features):
            wide = repeats.assign(**{rater: repeats[rater].astype(str)}).pivot(index=subject, columns=rater,
                                                                                 values=f)[order].dropna()
            x, y = wide[order[0]].to_numpy(float), wide[order[1]].to_numpy(float)
            ba = {"bias": ba_table.loc[f, "ba_bias"], "loa_low": ba_table.loc[f, "ba_loa_low"],
                  "loa_high": ba_table.loc[f, "ba_loa_high"]}
            ax.scatter((x + y) / 2, y - x, s=12, color="#1f77b4")
            ax.axhline(ba["bias"], color="black", lw=1)
            for v in (ba["loa_low"], ba["loa_high"]):
                ax.axhline(v, color="black", ls="--", lw=0.8)
            ax.set_title(feature_group(f)[1], fontsize=8)
            ax.set_xlabel("mean of the two repeats", fontsize=7)
            ax.set_ylabel(f"{order[1]} − {order[0]}", fontsize=7)
        for ax in axes.ravel()[len(features):]:
            ax.set_visible(False)
    return fig


def site_effect_figure(site_effect_df: pd.DataFrame, alpha: float = 0.05) -> Figure:
    """Kruskal–Wallis −log10 p across sites per feature, before vs after ComBat (one dot per feature)."""
    d = site_effect_df.copy()
    for col in ("kw_p_before", "kw_p_after"):
        d[col] = -np.log10(pd.to_numeric(d[col], errors="coerce").clip(lower=1e-300))
    d = d.dropna(subset=["kw_p_before", "kw_p_after"])
    if d.empty:
        raise ValueError("no feature with a site-effect test")
    top = float(max(d["kw_p_before"].max(), d["kw_p_after"].max(), -np.log10(alpha)) * 1.05)
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(5.0, 4.6), layout="constrained")
        ax.scatter(d["kw_p_before"], d["kw_p_after"], s=12, alpha=0.8)
        ax.plot([0, top], [0, top], color="lightgrey", lw=1)
        ax.axhline(-np.log10(alpha), color="black", ls="--", lw=0.8)
        ax.axvline(-np.log10(alpha), color="black", ls="--", lw=0.8)
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.set_xlabel("site effect before ComBat, −log10 p (Kruskal–Wallis)")
        ax.set_ylabel("after ComBat, −log10 p")
        ax.set_title("Site effect per feature before and after harmonisation")
    return fig


#: Marker colour per feature set of the domain-shift figure.
FEATURE_SET_COLOURS = {"radiomics": OKABE_ITO["blue"], "deep": OKABE_ITO["vermillion"],
                       "deep_dann": OKABE_ITO["bluish_green"]}


def domain_shift_figure(domain_shift_df: pd.DataFrame) -> Figure:
    """Per external site: performance drop (site AUC minus internal out-of-fold AUC) against the
    site's MMD^2 to the training pool, one colour per feature set, sites labelled
    (``analytical/domain_shift.tsv``)."""
    d = domain_shift_df.copy()
    for col in ("mmd2_before", "performance_drop"):
        d[col] = pd.to_numeric(d[col], errors="coerce")
    d = d[(d["role"] == "external")].dropna(subset=["mmd2_before", "performance_drop"])
    if d.empty:
        raise ValueError("no external site with both an MMD and a performance value")
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(5.2, 4.0), layout="constrained")
        for name, g in d.groupby("feature_set", sort=False):
            ax.scatter(g["mmd2_before"], g["performance_drop"], s=30, label=str(name),
                       color=FEATURE_SET_COLOURS.get(str(name)))
            for r in g.itertuples():
                ax.annotate(str(r.site), (r.mmd2_before, r.performance_drop), fontsize=7,
                            xytext=(3, 3), textcoords="offset points")
        ax.axhline(0, color="black", lw=0.8, ls="--")
        metric = str(d["performance_metric"].iloc[0]).replace("_", "-").upper() if "performance_metric" in d else "AUC"
        ax.set_xlabel("MMD² to the training pool (standardised features)")
        ax.set_ylabel(f"{metric} at the site − internal {metric}")
        ax.legend(title="features", fontsize=7)
        ax.set_title("Performance drop against domain shift")
    return fig


# ------------------------------------------------------------------------------- forest plot


def forest_figure(sites: pd.DataFrame, pooled: Mapping, measure: str, label: str, reference: float | None = None) -> Figure:
    """Forest plot of one measure across held-out sites (internal–external cross-validation).

    Parameters
    ----------
    sites : DataFrame
        ``site_metrics.tsv``: ``site``, ``n``, ``n_events``, ``{measure}``, ``{measure}_ci_low``,
        ``{measure}_ci_high`` (sites without an estimate are listed without a marker).
    pooled : mapping
        ``pooled.json``: ``pooled_{measure}`` with ``_ci_low`` / ``_ci_high`` (the diamond) and
        ``_pi_low`` / ``_pi_high`` (the prediction interval, a line through the diamond; absent or
        null when k < 3), ``{measure}_i2``, ``{measure}_tau2``, ``{measure}_k``.
    measure : str
        ``auc``, ``c_index``, ``calibration_slope`` or ``calibration_intercept``.
    label : str
        Axis label.
    reference : float, optional
        A dotted vertical line (0.5 for discrimination, 1 for the slope, 0 for the intercept).
    """
    rows = sites.reset_index(drop=True)
    k = len(rows)

    def num(x):
        try:
            x = float(x)
        except (TypeError, ValueError):
            return float("nan")
        return x

    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.4, 1.2 + 0.38 * (k + 2)))
        y_of = {i: k + 1 - i for i in range(k)}
        labels = []
        for i, r in rows.iterrows():
            est, lo, hi = (num(r.get(c)) for c in (measure, f"{measure}_ci_low", f"{measure}_ci_high"))
            y = y_of[i]
            n, ev = r.get("n"), r.get("n_events")
            counts = f"n={int(num(n))}, {int(num(ev))} events" if np.isfinite(num(n)) and np.isfinite(num(ev)) else ""
            if np.isfinite(est):
                ax.plot([lo, hi], [y, y], color=OKABE_ITO["black"], lw=1.2)
                size = 4 + 6 * np.sqrt(num(n) / max(1.0, np.nanmax(pd.to_numeric(rows["n"], errors="coerce")))) \
                    if np.isfinite(num(n)) else 6
                ax.plot([est], [y], marker="s", ms=size, color=OKABE_ITO["blue"], ls="none")
                labels.append((y, f"{r['site']} ({counts})\n{_fmt(est)} [{_fmt(lo)}, {_fmt(hi)}]"))
            else:
                labels.append((y, f"{r['site']} ({counts})\nnot estimated ({r.get('status', '')})"))
        est, lo, hi = (num(pooled.get(f"pooled_{measure}{s}")) for s in ("", "_ci_low", "_ci_high"))
        pi_lo, pi_hi = num(pooled.get(f"pooled_{measure}_pi_low")), num(pooled.get(f"pooled_{measure}_pi_high"))
        if np.isfinite(est):
            if np.isfinite(pi_lo) and np.isfinite(pi_hi):
                ax.plot([pi_lo, pi_hi], [0, 0], color=OKABE_ITO["vermillion"], lw=1.6, ls="-",
                        label=f"95% prediction interval for a new site [{_fmt(pi_lo)}, {_fmt(pi_hi)}]")
            ax.fill([lo, est, hi, est], [0, 0.3, 0, -0.3], color=OKABE_ITO["orange"], ec=OKABE_ITO["black"], lw=0.8,
                    label="random-effects mean, 95% CI (DerSimonian–Laird)", zorder=3)
            i2, tau2 = num(pooled.get(f"{measure}_i2")), num(pooled.get(f"{measure}_tau2"))
            labels.append((0, f"Pooled (k={pooled.get(f'{measure}_k', '?')}; I²={_fmt(100 * i2, 0)}%, "
                              f"τ²={_fmt(tau2, 4)})\n{_fmt(est)} [{_fmt(lo)}, {_fmt(hi)}]"))
        if reference is not None:
            ax.axvline(reference, color="grey", ls=":", lw=1)
        ax.set_yticks([y for y, _ in labels], [t for _, t in labels])
        ax.set_ylim(-0.8, k + 1.6)
        ax.set_xlabel(label)
        ax.set_title(f"Internal–external cross-validation: {label}")
        if np.isfinite(est):
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35 if k < 3 else -0.2), frameon=False, ncol=1)
        fig.tight_layout()
    return fig


def federated_rounds_figure(rounds: pd.DataFrame) -> Figure:
    """Federated training round by round: each site's loss, update norm and drift (three panels).

    Parameters
    ----------
    rounds : DataFrame
        ``clinical/federated/rounds.tsv``: ``round``, ``site``, ``n``, ``loss`` (the site's mean
        loss after its local step: log-loss, or the negative partial log-likelihood per case),
        ``update_norm`` (distance of the site's parameters from the global model it started from),
        ``drift`` (their distance from the round's new global model). Norms on a log scale.
    """
    panels = [("loss", "site loss after its local step", False), ("update_norm", "update norm", True),
              ("drift", "drift from the new global model", True)]
    sites = list(dict.fromkeys(rounds["site"].astype(str)))
    colours = _colours(sites)
    with plt.rc_context(_RC):
        fig, axes = plt.subplots(1, 3, figsize=(9.0, 2.6), constrained_layout=True)
        for ax, (column, title, log) in zip(axes, panels):
            for site in sites:
                r = rounds[rounds["site"].astype(str) == site].sort_values("round")
                y = pd.to_numeric(r[column], errors="coerce").to_numpy(dtype=float)
                if log:
                    y = np.where(y > 0, y, np.nan)
                ax.plot(r["round"], y, marker="o", ms=2.5, lw=1.2, color=colours[site],
                        label=f"{site} (n={int(r['n'].iloc[0])})" if len(r) else site)
            if log and np.isfinite(pd.to_numeric(rounds[column], errors="coerce").where(lambda v: v > 0)).any():
                ax.set_yscale("log")
            ax.set_title(title)
            ax.set_xlabel("round")
        axes[0].legend(frameon=False)
    return fig
