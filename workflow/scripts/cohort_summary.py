"""Cases, events and prevalence per cohort, and the number of candidate features (acceflow.study.cohorts)."""
import pandas as pd

from acceflow.runtime import log_to, write_json
from acceflow.study.cohorts import cohort_table, feature_summary

with log_to(snakemake.log[0]):
    features = pd.read_csv(snakemake.input.features, sep="\t", dtype={"case_id": str})
    config = snakemake.params.config
    cohort_table(features, config).to_csv(snakemake.output.cohorts, sep="\t", index=False, float_format="%.10g")
    write_json(feature_summary(features, config), snakemake.output.summary)
