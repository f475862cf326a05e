"""Calibration of one cohort's predictions (acceflow.utility.calibration)."""
import pandas as pd

from acceflow.config import log_to
from acceflow.report.provenance import write_json
from acceflow.utility.calibration import binned_calibration, calibration_summary

with log_to(snakemake.log[0]):
    preds = pd.read_csv(snakemake.input.predictions, sep="\t", dtype={"case_id": str})
    write_json(calibration_summary(preds["outcome"].to_numpy(), preds["probability"].to_numpy()),
               snakemake.output.calibration)
    binned_calibration(preds["outcome"].to_numpy(), preds["probability"].to_numpy(),
                       n_bins=snakemake.params.bins).to_csv(snakemake.output.bins, sep="\t", index=False)
