"""The server: pooled mean and SD from the sites' moments; the round-0 global model."""
import json

from acceflow.runtime import log_to, write_json
from acceflow.study.federated import standardisation_step

with log_to(snakemake.log[0]):
    std, start = standardisation_step([json.load(open(f)) for f in snakemake.input.moments])
    write_json(std, snakemake.output.standardisation)
    write_json(start, snakemake.output.start)
