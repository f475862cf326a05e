"""Survival: a site's event-time table and sorted risk scores at the last global model (its own table only)."""
import json

import pandas as pd

from acceflow.runtime import log_to, write_json
from acceflow.study.federated import site_baseline_step

with log_to(snakemake.log[0]):
    table = pd.read_csv(snakemake.input.table, sep="\t", dtype={"case_id": str})
    baseline = site_baseline_step(table, snakemake.wildcards.site, json.load(open(snakemake.input.standardisation)),
                                  json.load(open(snakemake.input.last)))
    print(f"site {baseline['site']}: {baseline['n']} cases, {baseline['n_events']} events, "
          f"{len(baseline['event_table']['time'])} distinct follow-up times shared")
    write_json(baseline, snakemake.output.baseline)
