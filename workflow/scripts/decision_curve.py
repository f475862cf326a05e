"""Decision curve (net benefit) of one cohort's predictions (acceflow.utility.decision_curve)."""
import numpy as np
import pandas as pd

from acceflow.config import log_to
from acceflow.utility.decision_curve import decision_curve

with log_to(snakemake.log[0]):
    start, stop, step = snakemake.params.thresholds
    thresholds = np.round(np.arange(start, stop + step / 2, step), 10)
    preds = pd.read_csv(snakemake.input.predictions, sep="\t", dtype={"case_id": str})
    decision_curve(preds["outcome"].to_numpy(), preds["probability"].to_numpy(), thresholds).to_csv(
        snakemake.output.curve, sep="\t", index=False, float_format="%.10g")
