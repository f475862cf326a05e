"""IBSI 1 conformance of the extraction (acceflow.imaging.ibsi.run_ibsi_check) -> two tables.

Without the IBSI data at ibsi.data both tables say 'not computed' with the reason; the DAG goes on.
The study's own settings are applied to the CT phantom only when the study has CT scans.
"""
import logging

import pandas as pd

from acceflow.imaging.extract import load_params
from acceflow.imaging.ibsi import run_ibsi_check
from acceflow.runtime import log_to

with log_to(snakemake.log[0]):
    logging.getLogger("pykwalify").setLevel(logging.WARNING)  # pyradiomics' parameter validation chatter
    settings = snakemake.params.settings
    study = None
    if settings["study"] and snakemake.input.get("params"):
        scans = pd.read_csv(snakemake.input.scans, sep="\t", dtype=str, keep_default_na=False)
        modalities = sorted(set(scans.get("modality", pd.Series(dtype=str))) - {""})
        if "CT" in modalities:
            study = {"params": load_params(snakemake.input.params), "preprocessing": snakemake.params.preprocessing,
                     "modality": "CT"}
        else:
            study = {"skip": f"not computed: the study has no CT scans (modalities: {', '.join(modalities) or 'none'}); "
                             "its settings do not apply to the CT phantom"}
    table, summary = run_ibsi_check(settings["data"], settings["configurations"], study=study)
    table.to_csv(snakemake.output.table, sep="\t", index=False)
    summary.to_csv(snakemake.output.summary, sep="\t", index=False)
