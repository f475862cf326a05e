"""The evidence dossier, summary.json and provenance.json (acceflow.report)."""
import pandas as pd

from acceflow.config import log_to
from acceflow.report.dossier import build_dossier
from acceflow.report.provenance import collect_provenance, write_json

with log_to(snakemake.log[0]):
    inputs = list(snakemake.input.inputs)
    if snakemake.input.scans:
        scans = pd.read_csv(snakemake.input.scans, sep="\t", dtype=str, keep_default_na=False)
        inputs += sorted(set(scans["image"]) | set(scans["mask"]) - {""})
    outputs = [snakemake.input.features, snakemake.input.icc, snakemake.input.card]
    for key in ("metrics", "predictions", "calibration", "curves"):
        outputs.extend(snakemake.input[key])
    provenance = collect_provenance(snakemake.params.config, inputs, outputs)
    write_json(provenance, snakemake.output.provenance)
    build_dossier(snakemake.params.results, snakemake.params.config, snakemake.params.cohorts,
                  snakemake.output.html, snakemake.output.summary, provenance=provenance)
