"""Write one table per training site (a site's jobs read only its own)."""
import pandas as pd

from acceflow.runtime import log_to
from acceflow.study.federated import split_sites

with log_to(snakemake.log[0]):
    table = pd.read_csv(snakemake.input.features, sep="\t", dtype={"case_id": str})
    stable = [l.strip() for l in open(snakemake.input.stable) if l.strip()]
    sites = split_sites(table, snakemake.params.config, stable)
    for site, path in zip(snakemake.params.sites, snakemake.output.tables):
        sites[site].to_csv(path, sep="\t", index=False, float_format="%.17g")
        print(f"site {site}: {len(sites[site])} rows, {sites[site].shape[1] - 2} features")
