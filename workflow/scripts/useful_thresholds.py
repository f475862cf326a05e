"""The threshold range where the model beats treat-all and treat-none (acceflow.metrics.decision_curve)."""
import pandas as pd

from acceflow.metrics.decision_curve import useful_threshold_range
from acceflow.runtime import log_to, write_json

with log_to(snakemake.log[0]):
    low, high = useful_threshold_range(pd.read_csv(snakemake.input.curve, sep="\t"))
    write_json({"useful_threshold_low": low, "useful_threshold_high": high}, snakemake.output.range)
