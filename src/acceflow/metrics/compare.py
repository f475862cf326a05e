"""Side-by-side comparison of several models on the same cases."""

from __future__ import annotations

import numpy as np
import pandas as pd

from acceflow.metrics.discrimination import delong_ci, delong_test


def compare_models(predictions: dict[str, pd.DataFrame], reference: str | None = None,
                   alpha: float = 0.05) -> pd.DataFrame:
    """AUC of each model with its DeLong CI and a paired DeLong test against a reference model.

    Parameters
    ----------
    predictions : dict of str -> pandas.DataFrame
        Model name -> ``case_id, outcome, probability`` on one cohort; the first entry is the
        primary model.
    reference : str, optional
        Model the others are tested against; default ``"clinical"`` when present (the clinical
        baseline: does the biomarker add to it?), else the first model.
    alpha : float
        1 - confidence level.

    Returns
    -------
    pandas.DataFrame
        One row per model: ``model, n, n_events, auc, auc_ci_low, auc_ci_high, reference,
        auc_difference, difference_se, z, p_value`` (test columns empty on the reference row).

    Raises
    ------
    ValueError
        When the models were not evaluated on the same cases with the same outcomes.

    References
    ----------
    DeLong ER, DeLong DM, Clarke-Pearson DL (1988). Comparing the areas under two or more
    correlated receiver operating characteristic curves. Biometrics 44:837-845.
    """
    names = list(predictions)
    if reference is None:
        reference = "clinical" if "clinical" in predictions else names[0]
    base = predictions[reference][["case_id", "outcome"]]
    merged = base.copy()
    for name in names:
        df = predictions[name]
        if len(df) != len(base) or set(df["case_id"]) != set(base["case_id"]):
            raise ValueError(f"model {name} was evaluated on other cases than {reference}")
        merged = merged.merge(df[["case_id", "outcome", "probability"]].rename(
            columns={"outcome": f"outcome_{name}", "probability": name}), on="case_id", validate="one_to_one")
        if not (merged[f"outcome_{name}"] == merged["outcome"]).all():
            raise ValueError(f"model {name} has other outcomes than {reference} for the same cases")
    y = merged["outcome"].to_numpy()
    rows = []
    for name in names:
        auc, low, high = delong_ci(y, merged[name].to_numpy(), alpha=alpha)
        row = {"model": name, "n": int(len(y)), "n_events": int(y.sum()), "auc": auc, "auc_ci_low": low,
               "auc_ci_high": high, "reference": reference, "auc_difference": np.nan, "difference_se": np.nan,
               "z": np.nan, "p_value": np.nan}
        if name != reference:
            test = delong_test(y, merged[name].to_numpy(), merged[reference].to_numpy())
            row.update(auc_difference=test["diff"], difference_se=test["se"], z=test["z"], p_value=test["p_value"])
        rows.append(row)
    return pd.DataFrame(rows)
