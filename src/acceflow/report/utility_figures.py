"""Per-cohort clinical-utility figures: calibration with its bootstrap band, and the decision
curves of every model with the primary model's bootstrap band."""

from __future__ import annotations

import pandas as pd

from acceflow.report import figures as F

MODEL_COLOURS = {"imaging": "#1f77b4", "clinical": "#ff7f0e", "combined_early": "#2ca02c", "combined_late": "#9467bd"}


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
    ax.fill_between(curve["predicted"], curve["observed_ci_low"], curve["observed_ci_high"], color="#1f77b4",
                    alpha=0.2, lw=0, label="95% bootstrap band")
    ax.plot(curve["predicted"], curve["observed"], color="#1f77b4", lw=1.6, label="loess curve")
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
    hist.hist(p[y], bins=edges, color="#b2182b")
    hist.hist(p[~y], bins=edges, weights=-1 * (p[~y] * 0 + 1), color="#4d4d4d")
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
        Name of the primary model (drawn with its band).
    """
    fig, ax = F.plt.subplots(figsize=(5.2, 3.8))
    first = next(iter(curves.values()))
    ax.plot(first["threshold"], first["net_benefit_all"], "--", color="grey", lw=1, label="treat all")
    ax.axhline(0, color="black", lw=0.8, ls=":", label="treat none")
    if band is not None and "net_benefit_model_ci_low" in band:
        ax.fill_between(band["threshold"], band["net_benefit_model_ci_low"], band["net_benefit_model_ci_high"],
                        color=MODEL_COLOURS.get(primary, "#1f77b4"), alpha=0.15, lw=0)
    for name, c in curves.items():
        ax.plot(c["threshold"], c["net_benefit_model"], lw=1.8 if name == primary else 1.2,
                color=MODEL_COLOURS.get(name), label=f"{name}{' (primary)' if name == primary else ''}")
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
