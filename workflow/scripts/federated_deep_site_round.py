"""One site's local training of one round (the Flower NumPyClient's fit) from the previous global network."""
import json

import torch

from acceflow.deep.federated import load_blob, save_blob
from acceflow.runtime import log_to
from acceflow.study.federated_deep import load_site, site_round_step

with log_to(snakemake.log[0]):
    torch.set_num_threads(max(1, snakemake.threads))
    kept_before = snakemake.input.get("local") or []  # the site's own state of the previous round (none in round 1)
    kept_before = [kept_before] if isinstance(kept_before, str) else list(kept_before)
    local = load_blob(kept_before[0], "local") if kept_before else None
    update, kept = site_round_step(load_site(snakemake.input.site), snakemake.wildcards.site,
                                   json.load(open(snakemake.input.standardisation)),
                                   load_blob(snakemake.input.previous, "global"), local, snakemake.params.config)
    print(f"site {update['site']} round {update['round']}: n {update['n']}, loss {update['loss']:.6g}")
    save_blob(update, snakemake.output.site_update)
    save_blob(kept, snakemake.output.local)
