"""The evidence dossier, summary.json, provenance.json and the rule graph (acceflow.report)."""
from pathlib import Path

import pandas as pd

from acceflow.report.dossier import build_dossier
from acceflow.report.provenance import collect_provenance
from acceflow.report.rulegraph import rulegraph_svg
from acceflow.runtime import atomic_write_bytes, log_to, sha256_file, write_json
from acceflow.study.results import contract_files

with log_to(snakemake.log[0]):
    results = Path(snakemake.params.results)
    run = dict(snakemake.params.run)
    inputs = list(snakemake.input.inputs)
    if snakemake.input.scans:
        scans = pd.read_csv(snakemake.input.scans, sep="\t", dtype=str, keep_default_na=False)
        inputs += sorted(set(scans["image"]) | set(scans["mask"]) - {""})
    outputs = [snakemake.input.qc, snakemake.input.features, snakemake.input.icc, snakemake.input.card]
    if snakemake.input.extraction_qc:
        outputs.append(snakemake.input.extraction_qc)
    for key in ("metrics", "predictions", "calibration", "curves"):
        outputs.extend(snakemake.input[key])
    outputs.append(snakemake.input.quality_scores)  # METRICS and RQS (report/, so not in contract_files)
    outputs.extend(snakemake.input.get("ibsi") or [])  # the IBSI conformance tables, when the check ran
    # every table, JSON, model file and figure of the results contract in the folder (the report's
    # own files are added below), so that `acceflow verify` re-checks all that a reader relies on
    outputs.extend(str(results / rel) for rel in contract_files(results))
    provenance = collect_provenance(snakemake.params.config, inputs, outputs, results_dir=results, run=run)

    dot = run.get("rulegraph_dot")
    if dot:
        svg = rulegraph_svg(dot, job_counts=run.get("jobs_per_rule"))
    else:
        why = run.get("rulegraph_error", "not available")
        svg = ('<svg xmlns="http://www.w3.org/2000/svg" width="400" height="40"><text x="10" y="25" '
               f'font-family="sans-serif" font-size="12">Rule graph {why}</text></svg>\n')
    atomic_write_bytes(svg.encode("utf-8"), snakemake.output.rulegraph)

    summary = build_dossier(results, snakemake.params.config, snakemake.params.cohorts, snakemake.output.html,
                            snakemake.output.summary, provenance=provenance, rulegraph_svg=svg,
                            figures_dir=snakemake.output.figures)
    figures = sorted(Path(snakemake.output.figures).glob("*.*"))
    print(f"{len(figures)} figure files in {snakemake.output.figures}; verdicts: "
          + ", ".join(f"{t} {v['verdict']}" for t, v in summary["verdicts"].items()))
    # the report files are named in the provenance too, so `acceflow verify` also checks them
    for path in (snakemake.output.html, snakemake.output.summary, snakemake.output.rulegraph, *figures):
        provenance["outputs"][Path(path).resolve().relative_to(results.resolve()).as_posix()] = sha256_file(path)
    write_json(provenance, snakemake.output.provenance)
