"""Assemble per-scan features into features/features.tsv and features/repeats.tsv, and pyradiomics'
per-scan diagnostics into the provenance table features/diagnostics.tsv (never into the features)."""
from acceflow.runtime import log_to
from acceflow.study.tables import assemble_diagnostics, assemble_feature_table

with log_to(snakemake.log[0]):
    features, repeats, qc = assemble_feature_table(snakemake.input.scans, snakemake.input.features,
                                                   snakemake.params.config)
    features.to_csv(snakemake.output.features, sep="\t", index=False)
    repeats.to_csv(snakemake.output.repeats, sep="\t", index=False)
    qc.to_csv(snakemake.output.qc, sep="\t", index=False)
    diagnostics = assemble_diagnostics(snakemake.input.scans, snakemake.input.diagnostics)
    diagnostics.to_csv(snakemake.output.diagnostics, sep="\t", index=False)
    print(f"{len(features)} cases x {features.shape[1]} columns; {len(repeats)} repeat rows; "
          f"{int((qc.status != 'ok').sum())} scans failed; diagnostics of {len(diagnostics)} scans")
