"""A site's counts and per-channel voxel sums for the pooled crop normalisation (its own crops only)."""
from acceflow.runtime import log_to, write_json
from acceflow.study.federated_deep import load_site, moments_step

with log_to(snakemake.log[0]):
    write_json(moments_step(load_site(snakemake.input.site), snakemake.wildcards.site), snakemake.output.moments)
