"""Decision curve (net benefit) of one cohort's predictions (survival: at the horizon, Kaplan-Meier)."""
import json

import numpy as np
import pandas as pd

from acceflow.runtime import log_to
from acceflow.metrics.decision_curve import decision_curve, decision_curve_ci

with log_to(snakemake.log[0]):
    card = json.load(open(snakemake.input.card))
    start, stop, step = snakemake.params.thresholds
    thresholds = np.round(np.arange(start, stop + step / 2, step), 10)
    preds = pd.read_csv(snakemake.input.predictions, sep="\t", dtype={"case_id": str})
    if card["outcome"]["type"] == "survival":
        from acceflow.metrics.survival_utility import survival_decision_curve

        curve = survival_decision_curve(preds["time"], preds["event"], preds["risk_at_horizon"],
                                        card["horizon_days"], thresholds)
    else:
        y, prob = preds["outcome"].to_numpy(), preds["probability"].to_numpy()
        curve = decision_curve(y, prob, thresholds)
        band = decision_curve_ci(y, prob, thresholds, n_boot=snakemake.params.n_boot, seed=snakemake.params.seed)
        curve = curve.merge(band, on="threshold", validate="one_to_one")
    curve.to_csv(snakemake.output.curve, sep="\t", index=False, float_format="%.10g")
