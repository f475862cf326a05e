"""Internal-external cross-validation: the per-site figures in one table and their random-effects
pooling (acceflow.study.internal_external.pool_sites)."""
import json

from acceflow.runtime import log_to, write_json
from acceflow.study.internal_external import pool_sites

with log_to(snakemake.log[0]):
    rows = [json.load(open(path, encoding="utf-8")) for path in snakemake.input.sites]
    sites, pooled = pool_sites(rows, snakemake.params.task, snakemake.params.alpha)
    sites.to_csv(snakemake.output.sites, sep="\t", index=False, float_format="%.10g")
    write_json(pooled, snakemake.output.pooled)
