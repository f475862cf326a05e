"""Ingest QC of every manifest row: ingest/qc.tsv and the usable scans (ingest/scans.tsv)."""
from acceflow.io.manifest import load_manifest
from acceflow.io.qc import ingest
from acceflow.runtime import log_to

with log_to(snakemake.log[0]):
    p = snakemake.params
    manifest = load_manifest(snakemake.input.manifest, data_root=p.data_root,
                             cohort_column=p.cohorts["column"], default_modality=p.default_modality)
    qc, scans = ingest(manifest, p.outcome, p.cohorts["train"], p.cohorts["external"], label=p.label,
                       min_voxels=p.min_voxels, need_mask=p.need_mask, on_error=p.on_error,
                       tolerance=p.tolerance, roi=p.roi,
                       time_to_event=p.time_to_event)
    qc.to_csv(snakemake.output.qc, sep="\t", index=False)
    scans.to_csv(snakemake.output.scans, sep="\t", index=False)
    print(f"{len(qc)} scans, {int((qc.status == 'ok').sum())} ok")
