"""Feature-table entry: validate the table, write ingest/qc.tsv and features/features.tsv."""
from acceflow.runtime import log_to
from acceflow.study.tables import ingest_feature_table

with log_to(snakemake.log[0]):
    qc, features = ingest_feature_table(snakemake.input.table, snakemake.params.config)
    qc.to_csv(snakemake.output.qc, sep="\t", index=False)
    features.to_csv(snakemake.output.features, sep="\t", index=False)
    print(f"{len(qc)} cases, {len(features)} usable")
