"""Real-only imaging model (TRTR) against the synthetic comparators on one cohort (paired DeLong)."""
import pandas as pd

from acceflow.runtime import log_to
from acceflow.study.synthetic import comparison

with log_to(snakemake.log[0]):
    preds = {m: pd.read_csv(f, sep="\t", dtype={"case_id": str})
             for m, f in zip(snakemake.params.models, snakemake.input.predictions)}
    comparison(preds, alpha=snakemake.params.alpha).to_csv(snakemake.output.comparison, sep="\t", index=False,
                                                           float_format="%.10g")
