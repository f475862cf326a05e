"""Calibration of one cohort's predictions (acceflow.metrics.calibration; survival: at the horizon)."""
import json

import pandas as pd

from acceflow.runtime import log_to
from acceflow.runtime import write_json
from acceflow.metrics.calibration import (binned_calibration, calibration_curve_band, calibration_level,
                                          calibration_summary)

with log_to(snakemake.log[0]):
    card = json.load(open(snakemake.input.card))
    preds = pd.read_csv(snakemake.input.predictions, sep="\t", dtype={"case_id": str})
    if card["outcome"]["type"] == "survival":
        from acceflow.metrics.survival_utility import calibration_at, grouped_calibration_at

        t = card["horizon_days"]
        args = preds["time"].to_numpy(), preds["event"].to_numpy(), preds["risk_at_horizon"].to_numpy()
        write_json(calibration_at(*args, preds["risk"].to_numpy(), t), snakemake.output.calibration)
        grouped_calibration_at(*args, t, n_groups=min(snakemake.params.bins, 5)).to_csv(
            snakemake.output.bins, sep="\t", index=False, float_format="%.10g")
        # survival: the smoothed curve is summarised by ICI/E50/E90 at the horizon; no band file
        pd.DataFrame(columns=["predicted", "observed", "observed_ci_low", "observed_ci_high"]).to_csv(
            snakemake.output.curve, sep="\t", index=False)
    else:
        y, prob = preds["outcome"].to_numpy(), preds["probability"].to_numpy()
        summary = calibration_summary(y, prob)
        band = calibration_curve_band(y, prob, n_boot=snakemake.params.n_boot, seed=snakemake.params.seed)
        summary["calibration_level"], summary["calibration_level_evidence"] = calibration_level(summary, band)
        write_json(summary, snakemake.output.calibration)
        band.to_csv(snakemake.output.curve, sep="\t", index=False, float_format="%.10g")
        binned_calibration(y, prob, n_bins=snakemake.params.bins).to_csv(snakemake.output.bins, sep="\t",
                                                                         index=False, float_format="%.10g")
