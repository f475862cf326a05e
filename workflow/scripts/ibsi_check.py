"""IBSI 1 conformance of the extraction (acceflow.imaging.ibsi.run_ibsi_check) -> two tables.

Without the IBSI data at ibsi.data both tables say 'not computed' with the reason; the DAG goes on.
"""
from acceflow.config import log_to
from acceflow.imaging.extract import load_params
from acceflow.imaging.ibsi import run_ibsi_check

with log_to(snakemake.log[0]):
    settings = snakemake.params.settings
    study = None
    if settings["study"] and snakemake.input.get("params"):
        study = {"params": load_params(snakemake.input.params), "preprocessing": snakemake.params.preprocessing,
                 "modality": "CT"}
    table, summary = run_ibsi_check(settings["data"], settings["configurations"], study=study)
    table.to_csv(snakemake.output.table, sep="\t", index=False)
    summary.to_csv(snakemake.output.summary, sep="\t", index=False)
