"""The server: pooled channel mean and SD from the sites' sums; the round-0 global network (seeded)."""
import json

from acceflow.deep.federated import save_blob
from acceflow.runtime import log_to, write_json
from acceflow.study.federated_deep import standardisation_step

with log_to(snakemake.log[0]):
    stats, start = standardisation_step([json.load(open(f)) for f in snakemake.input.moments], snakemake.params.config)
    write_json(stats, snakemake.output.standardisation)
    save_blob(start, snakemake.output.start)
