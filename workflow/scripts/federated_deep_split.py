"""One file of crops and outcomes per training site (a site's jobs read only its own)."""
import pandas as pd

from acceflow.runtime import log_to
from acceflow.study.deep import case_crops
from acceflow.study.federated_deep import save_site, split_sites

with log_to(snakemake.log[0]):
    table = pd.read_csv(snakemake.input.features, sep="\t", dtype={"case_id": str})
    scans = pd.read_csv(snakemake.input.scans, sep="\t", dtype=str, keep_default_na=False).set_index("scan_id")
    sites = split_sites(table, case_crops(scans, list(snakemake.input.crops)), snakemake.params.config)
    for site, path in zip(snakemake.params.sites, snakemake.output.sites):
        save_site(sites[site], path)
        print(f"site {site}: {len(sites[site]['y'])} cases ({int(sites[site]['y'].sum())} events), crops "
              f"{sites[site]['X'].shape[1:]}")
