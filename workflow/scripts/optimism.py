"""Harrell's bootstrap optimism correction of the primary model (internal validation)."""
import pandas as pd

from acceflow.metrics.validation import optimism_corrected
from acceflow.runtime import log_to
from acceflow.study.training import training_data

with log_to(snakemake.log[0]):
    config = snakemake.params.config
    table = pd.read_csv(snakemake.input.features, sep="\t", dtype={"case_id": str})
    stable = [l.strip() for l in open(snakemake.input.stable) if l.strip()]
    _, X, y, _, _, make = training_data(table, config, stable)
    result = optimism_corrected(X, y, make, n_boot=config["validation"]["optimism_bootstrap"], seed=config["seed"])
    result.to_csv(snakemake.output.optimism, sep="\t", index=False, float_format="%.10g")
    print(result.to_string())
