"""Assemble per-scan features into features/features.tsv and features/repeats.tsv."""
from acceflow.config import log_to
from acceflow.io.table import assemble_feature_table

with log_to(snakemake.log[0]):
    features, repeats, qc = assemble_feature_table(snakemake.input.scans, snakemake.input.features,
                                                   snakemake.params.config)
    features.to_csv(snakemake.output.features, sep="\t", index=False)
    repeats.to_csv(snakemake.output.repeats, sep="\t", index=False)
    qc.to_csv(snakemake.output.qc, sep="\t", index=False)
    print(f"{len(features)} cases x {features.shape[1]} columns; {len(repeats)} repeat rows; "
          f"{int((qc.status != 'ok').sum())} scans failed")
