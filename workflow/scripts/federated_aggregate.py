"""The server's aggregation of one round with the configured Flower strategy (FedAvg / FedProx)."""
import json

from acceflow.runtime import log_to, write_json
from acceflow.study.federated import aggregate_step

with log_to(snakemake.log[0]):
    new = aggregate_step([json.load(open(f)) for f in snakemake.input.updates], json.load(open(snakemake.input.previous)),
                         snakemake.params.config)
    write_json(new, snakemake.output.model)
