"""Per-cohort clinical-utility figures, drawn by the ``utility_figures`` rule and embedded by the
dossier once each: calibration (binary: loess curve with its bootstrap band; survival: grouped
calibration at the horizon), and the decision curves of every model with the primary model's
bootstrap band, the primary drawn last and on top. Colours from :mod:`acceflow.report.figures`."""

from __future__ import annotations

import pandas as pd

from acceflow.report import figures as F

MODEL_COLOURS = F.MODEL_COLOURS
#: The primary model's decision curve: drawn last, above every other line, thicker.
PRIMARY_ZORDER, PRIMARY_LW, COMPARATOR_LW = 6, 2.8, 1.3


def calibration_band_figure(curve: pd.DataFrame, bins: pd.DataFrame, predictions: pd.DataFrame, title: str):
    """Loess calibration curve with its 95% bootstrap band, binned observed proportions, histogram.

    Parameters
    ----------
    curve : DataFrame
        ``predicted, observed, observed_ci_low, observed_ci_high`` (calibration_curve.tsv).
    bins : DataFrame
        ``mean_predicted, observed_proportion, observed_ci_low, observed_ci_high`` (calibration_bins.tsv).
    predictions : DataFrame
        ``outcome, probability``.
    title : str
    """
    fig, (ax, hist) = F.plt.subplots(2, 1, figsize=(4.6, 5.2), sharex=True, gridspec_kw={"height_ratios": [4, 1]})
    ax.plot([0, 1], [0, 1], ":", color="grey", lw=1, label="ideal")
    blue = F.OKABE_ITO["blue"]
    ax.fill_between(curve["predicted"], curve["observed_ci_low"], curve["observed_ci_high"], color=blue,
                    alpha=0.2, lw=0, label="95% bootstrap band")
    ax.plot(curve["predicted"], curve["observed"], color=blue, lw=1.6, label="loess curve")
    if bins is not None and len(bins):
        ax.errorbar(bins["mean_predicted"], bins["observed_proportion"],
                    yerr=[bins["observed_proportion"] - bins["observed_ci_low"],
                          bins["observed_ci_high"] - bins["observed_proportion"]],
                    fmt="o", mfc="white", color="black", ms=4, capsize=2, lw=0.8, label="deciles (95% CI)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("observed proportion")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    y = predictions["outcome"].to_numpy().astype(bool)
    p = predictions["probability"].to_numpy()
    edges = [i / 40 for i in range(41)]
    hist.hist(p[y], bins=edges, color=F.OUTCOME_COLOURS["event"])
    hist.hist(p[~y], bins=edges, weights=-1 * (p[~y] * 0 + 1), color=F.OUTCOME_COLOURS["non-event"])
    hist.axhline(0, color="black", lw=0.5)
    hist.set_xlabel("predicted probability")
    hist.set_yticks([])
    fig.tight_layout()
    return fig


def decision_curves_figure(curves: dict, band: pd.DataFrame | None, title: str, primary: str):
    """Net benefit of every model, treat-all and treat-none on one plot.

    Parameters
    ----------
    curves : dict of str -> DataFrame
        Model name -> decision_curve.tsv (``threshold, net_benefit_model, net_benefit_all``).
    band : DataFrame, optional
        The primary model's bootstrap band (``net_benefit_model_ci_low/high``).
    title : str
    primary : str
        Name of the primary model: drawn with its band, last, on top of every other line
        (``zorder`` :data:`PRIMARY_ZORDER`) and thicker (:data:`PRIMARY_LW`).
    """
    fig, ax = F.plt.subplots(figsize=(5.2, 3.8))
    first = next(iter(curves.values()))
    ax.plot(first["threshold"], first["net_benefit_all"], "--", color="grey", lw=1, label="treat all", zorder=2)
    ax.axhline(0, color="black", lw=0.8, ls=":", label="treat none", zorder=2)
    colour = MODEL_COLOURS.get(primary, F.OKABE_ITO["blue"])
    if band is not None and "net_benefit_model_ci_low" in band:
        ax.fill_between(band["threshold"], band["net_benefit_model_ci_low"], band["net_benefit_model_ci_high"],
                        color=colour, alpha=0.15, lw=0, zorder=1)
    others = [n for n in curves if n != primary]
    for i, name in enumerate(others):  # comparators first, thinner, under the primary model
        c = curves[name]
        ax.plot(c["threshold"], c["net_benefit_model"], lw=COMPARATOR_LW, zorder=3,
                color=MODEL_COLOURS.get(name, F.PALETTE[(i + 1) % len(F.PALETTE)]), label=name)
    if primary in curves:
        c = curves[primary]
        ax.plot(c["threshold"], c["net_benefit_model"], lw=PRIMARY_LW, color=colour, zorder=PRIMARY_ZORDER,
                label=f"{primary} (primary)")
    top = max(float(c["net_benefit_model"].max()) for c in curves.values())
    top = max(top, float(first["net_benefit_all"].max()), 0.05)
    ax.set_ylim(-0.05, top + 0.05)
    ax.set_xlim(float(first["threshold"].min()), float(first["threshold"].max()))
    ax.set_xlabel("threshold probability")
    ax.set_ylabel("net benefit")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def survival_calibration_figure(bins: pd.DataFrame, title: str, horizon: float | None = None):
    """Grouped calibration of a survival model at the horizon: mean predicted risk against the
    Kaplan–Meier observed risk per group of predicted risk, with 95% CIs.

    Parameters
    ----------
    bins : DataFrame
        ``mean_predicted, observed, observed_ci_low, observed_ci_high`` (calibration_bins.tsv).
    title : str
    horizon : float, optional
        The horizon in days (axis labels).
    """
    at = f"at {horizon:g} days" if horizon else "at the horizon"
    fig, ax = F.plt.subplots(figsize=(4.6, 4.2))
    ax.plot([0, 1], [0, 1], ":", color="grey", lw=1, label="ideal")
    ax.errorbar(bins["mean_predicted"], bins["observed"],
                yerr=[bins["observed"] - bins["observed_ci_low"], bins["observed_ci_high"] - bins["observed"]],
                fmt="o-", capsize=2, lw=1, color=F.OKABE_ITO["blue"], label="groups of predicted risk (95% CI)")
    hi = max(0.2, float(max(bins["mean_predicted"].max(), bins["observed_ci_high"].max())))
    ax.set_xlim(0, min(1, hi * 1.1))
    ax.set_ylim(0, min(1, hi * 1.1))
    ax.set_xlabel(f"predicted risk {at}")
    ax.set_ylabel(f"observed risk {at} (Kaplan–Meier)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig
