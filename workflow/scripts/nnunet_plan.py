"""nnU-Net's fingerprint, planning and preprocessing of one modality's dataset, the study's folds as
splits_final.json, and a summary of the plans (version, nnUNetPlans.json SHA-256) for the provenance."""
import json

import pandas as pd
import torch

from acceflow.imaging.nnunet import plan_and_preprocess, set_environment
from acceflow.runtime import log_to

if __name__ == "__main__":  # nnU-Net spawns worker processes, which re-import this script
    with log_to(snakemake.log[0]):
        torch.set_num_threads(max(1, snakemake.threads))
        set_environment(snakemake.params.root, threads=snakemake.threads)
        cases = pd.read_csv(snakemake.input.cases, sep="\t", dtype={"scan_id": str, "case_id": str})
        nn = snakemake.params.nnunet
        summary = plan_and_preprocess(cases, nn["configuration"], nn["folds"], threads=snakemake.threads)
        summary["modality"] = snakemake.wildcards.modality
        print(json.dumps(summary, indent=2))
        with open(snakemake.output.summary, "w") as fh:
            json.dump(summary, fh, indent=2)
