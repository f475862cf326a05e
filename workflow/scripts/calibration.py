"""Calibration of one cohort's predictions (acceflow.utility.calibration; survival: at the horizon)."""
import json

import pandas as pd

from acceflow.config import log_to
from acceflow.report.provenance import write_json
from acceflow.utility.calibration import binned_calibration, calibration_summary

with log_to(snakemake.log[0]):
    card = json.load(open(snakemake.input.card))
    preds = pd.read_csv(snakemake.input.predictions, sep="\t", dtype={"case_id": str})
    if card["outcome"]["type"] == "survival":
        from acceflow.utility.survival_utility import calibration_at, grouped_calibration_at

        t = card["horizon_days"]
        args = preds["time"].to_numpy(), preds["event"].to_numpy(), preds["risk_at_horizon"].to_numpy()
        write_json(calibration_at(*args, preds["risk"].to_numpy(), t), snakemake.output.calibration)
        grouped_calibration_at(*args, t, n_groups=min(snakemake.params.bins, 5)).to_csv(
            snakemake.output.bins, sep="\t", index=False, float_format="%.10g")
    else:
        y, prob = preds["outcome"].to_numpy(), preds["probability"].to_numpy()
        write_json(calibration_summary(y, prob), snakemake.output.calibration)
        binned_calibration(y, prob, n_bins=snakemake.params.bins).to_csv(snakemake.output.bins, sep="\t",
                                                                         index=False, float_format="%.10g")
