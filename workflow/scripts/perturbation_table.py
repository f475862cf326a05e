"""Long repeat table of the perturbed copies (acceflow.study.tables.assemble_perturbation_table)."""
from acceflow.runtime import log_to
from acceflow.study.tables import assemble_perturbation_table

with log_to(snakemake.log[0]):
    long = assemble_perturbation_table(snakemake.input.scans, list(snakemake.input.features))
    long.to_csv(snakemake.output.repeats, sep="\t", index=False)
    print(f"{long['case_id'].nunique() if len(long) else 0} cases, {len(long)} perturbed copies")
