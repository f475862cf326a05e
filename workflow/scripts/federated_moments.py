"""A site's counts, sums and sums of squares for the pooled standardisation (its own table only)."""
import pandas as pd

from acceflow.runtime import log_to, write_json
from acceflow.study.federated import site_moments_step

with log_to(snakemake.log[0]):
    table = pd.read_csv(snakemake.input.table, sep="\t", dtype={"case_id": str})
    write_json(site_moments_step(table, snakemake.wildcards.site), snakemake.output.moments)
