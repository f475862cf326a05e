"""How many features are reproducible: the counts behind the dossier's analytical verdict.

:func:`stability_summary` reads the ICC table the ``icc`` rule wrote (``analytical/icc.tsv``) and
returns the counts and the share of stable features, so that the dossier (which computes nothing)
reads the share from a results file (``analytical/icc_summary.json``, rule ``icc_summary``).
"""

from __future__ import annotations

import math

import pandas as pd

__all__ = ["stability_summary"]

_TRUE = {"true", "1", "1.0", "yes"}


def stability_summary(icc: pd.DataFrame, threshold: float) -> dict:
    """Counts of features assessed and stable, and the share of stable features.

    Parameters
    ----------
    icc : the ``analytical/icc.tsv`` table (columns ``feature``, ``icc_form``, ``ci_low``, ``stable``;
        one row per feature; no rows when the study has no repeated measurements)
    threshold : the stability threshold of the run (``reproducibility.threshold``): a feature is
        stable when the lower bound of its ICC 95% CI reaches it (the ``stable`` column, which may
        also apply ``reproducibility.max_wcv``)

    Returns
    -------
    dict : ``n_features`` (rows of the table), ``n_stable`` (rows whose ``stable`` is true),
        ``n_ci_low_at_threshold`` (rows with ``ci_low >= threshold``), ``share_stable``
        (``n_stable / n_features``; ``None`` without features), ``threshold``, ``icc_forms`` (sorted).

    Raises
    ------
    ValueError : when the table lacks the ``stable`` or ``ci_low`` column (names the column).
    """
    for col in ("stable", "ci_low"):
        if col not in icc.columns:
            raise ValueError(f"analytical/icc.tsv has no column {col!r}; it is written by the icc rule "
                             "(acceflow.metrics.icc); re-run that rule")
    n = int(len(icc))
    stable = icc["stable"].astype(str).str.strip().str.lower().isin(_TRUE)
    ci_low = pd.to_numeric(icc["ci_low"], errors="coerce")
    n_stable = int(stable.sum())
    return {
        "n_features": n,
        "n_stable": n_stable,
        "n_ci_low_at_threshold": int((ci_low >= threshold).sum()),
        "share_stable": (n_stable / n) if n else None,
        "threshold": float(threshold) if math.isfinite(float(threshold)) else None,
        "icc_forms": sorted(icc["icc_form"].dropna().astype(str).unique()) if "icc_form" in icc else [],
    }
