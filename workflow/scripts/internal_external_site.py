"""Internal-external cross-validation, one held-out site: the primary model's training refitted on the
other sites and validated on this one (acceflow.study.internal_external.hold_out_site)."""
import pandas as pd

from acceflow.runtime import log_to, write_json
from acceflow.study.internal_external import hold_out_site

with log_to(snakemake.log[0]):
    table = pd.read_csv(snakemake.input.features, sep="\t", dtype={"case_id": str})
    stable = [l.strip() for l in open(snakemake.input.stable) if l.strip()]
    row, predictions = hold_out_site(table, snakemake.params.config, stable, snakemake.wildcards.site)
    predictions.to_csv(snakemake.output.predictions, sep="\t", index=False, float_format="%.10g")
    write_json(row, snakemake.output.metrics)
