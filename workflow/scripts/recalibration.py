"""Cross-validated recalibration of the frozen model on one external cohort (labelled recalibrated)."""
import pandas as pd

from acceflow.models.recalibration import recalibrate_cv
from acceflow.runtime import log_to

with log_to(snakemake.log[0]):
    preds = pd.read_csv(snakemake.input.predictions, sep="\t", dtype={"case_id": str})
    summary, _ = recalibrate_cv(preds["outcome"].to_numpy(), preds["probability"].to_numpy(),
                                methods=snakemake.params.methods, folds=snakemake.params.folds,
                                seed=snakemake.params.seed)
    summary.to_csv(snakemake.output.recalibration, sep="\t", index=False, float_format="%.10g")
