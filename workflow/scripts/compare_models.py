"""Paired comparison of every model on one cohort's cases (DeLong test for correlated AUCs)."""
import pandas as pd

from acceflow.metrics.compare import compare_models
from acceflow.runtime import log_to

with log_to(snakemake.log[0]):
    preds = {m: pd.read_csv(f, sep="\t", dtype={"case_id": str})
             for m, f in zip(snakemake.params.models, snakemake.input.predictions)}
    compare_models(preds, alpha=snakemake.params.alpha).to_csv(snakemake.output.comparison, sep="\t", index=False,
                                                               float_format="%.10g")
