"""One site's local step of one round (the Flower NumPyClient's fit) from the previous global model."""
import json

import pandas as pd

from acceflow.runtime import log_to, write_json
from acceflow.study.federated import site_round_step

with log_to(snakemake.log[0]):
    table = pd.read_csv(snakemake.input.table, sep="\t", dtype={"case_id": str})
    update = site_round_step(table, snakemake.wildcards.site, json.load(open(snakemake.input.standardisation)),
                             json.load(open(snakemake.input.previous)), snakemake.params.config)
    print(f"site {update['site']} round {update['round']}: n {update['n']}, loss {update['loss']:.6g}")
    write_json(update, snakemake.output.site_update)
