"""The server's aggregation of one round of the federated network (Flower FedAvg / FedProx aggregate_fit)."""
from acceflow.deep.federated import load_blob, save_blob
from acceflow.runtime import log_to
from acceflow.study.federated_deep import aggregate_step

with log_to(snakemake.log[0]):
    new = aggregate_step([load_blob(f, "update") for f in snakemake.input.updates],
                         load_blob(snakemake.input.previous, "global"), snakemake.params.config)
    for row in new["rows"]:
        print(" ".join(f"{k}={v}" for k, v in row.items()))
    save_blob(new, snakemake.output.model)
