"""Feature-level domain shift: domain classifier before / after ComBat, MMD per site, performance drop
(acceflow.study.domain_shift.assess_domain_shift)."""
import json

import pandas as pd

from acceflow.runtime import log_to, write_json
from acceflow.study.domain_shift import assess_domain_shift

with log_to(snakemake.log[0]):
    table = pd.read_csv(snakemake.input.features, sep="\t", dtype={"case_id": str, "cohort": str})
    stable = [l.strip() for l in open(snakemake.input.stable) if l.strip()]
    cohorts = snakemake.params.cohorts
    metrics = {c: json.load(open(p)) for c, p in zip(cohorts, snakemake.input.metrics)}
    deep = deep_metrics = None
    if snakemake.input.get("deep_features"):
        deep = pd.read_csv(snakemake.input.deep_features, sep="\t", dtype={"case_id": str, "cohort": str})
        deep_metrics = {c: json.load(open(p)) for c, p in zip(cohorts, snakemake.input.deep_metrics)}
    dann = dann_metrics = None
    if snakemake.input.get("dann_features"):
        dann = pd.read_csv(snakemake.input.dann_features, sep="\t", dtype={"case_id": str, "cohort": str})
        dann_metrics = {c: json.load(open(p)) for c, p in zip(cohorts, snakemake.input.dann_metrics)}
    rows, summary = assess_domain_shift(table, stable, snakemake.params.config, metrics, deep, deep_metrics,
                                        dann_table=dann, dann_metrics=dann_metrics)
    rows.to_csv(snakemake.output.table, sep="\t", index=False, float_format="%.10g")
    write_json(summary, snakemake.output.summary)
