"""Segment one batch of scans with nnU-Net (acceflow.imaging.nnunet.segment_scans): the training cases
of one fold by the fold model that did not see them, or the other scans by the fold ensemble; the
checkpoints' SHA-256 checked against their cards before nnU-Net loads them, once for the batch. Per scan:
the mask on the preprocessed grid (for extraction) and on the original grid (the deliverable), its
quality against the reference mask, or the empty-mask fallback flagged in its row (on_case_error)."""
import json

import torch

from acceflow.imaging.nnunet import model_folder, segment_scans, set_environment
from acceflow.runtime import log_to

if __name__ == "__main__":  # nnU-Net may spawn worker processes, which re-import this script
    with log_to(snakemake.log[0]):
        torch.set_num_threads(max(1, snakemake.threads))
        set_environment(snakemake.params.root, threads=snakemake.threads)
        nn = snakemake.params.nnunet
        cards = [json.loads(open(p).read()) for p in snakemake.input.cards]
        checkpoints = {int(c["fold"][len("fold"):]): c["checkpoint_sha256"] for c in cards}
        table = segment_scans(snakemake.params.scans, model_folder(nn["trainer"], nn["configuration"]), checkpoints,
                              snakemake.output.predictions, device=snakemake.params.device,
                              mirroring=nn["mirroring"], tolerance_mm=snakemake.params.tolerance_mm,
                              on_error=snakemake.params.on_error)
        print(table.to_string(index=False))
