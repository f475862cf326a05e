"""Segment one scan with nnU-Net: the fold that did not see it (training cohorts) or the ensemble of
the folds (external cohorts), each checkpoint's SHA-256 checked against its card before nnU-Net loads
it; the mask on the preprocessed grid (for extraction) and on the original grid (the deliverable), and
its quality against the reference mask (acceflow.imaging.nnunet, acceflow.metrics.segmentation)."""
import json
import os
import traceback

import SimpleITK as sitk
import torch

from acceflow.imaging.nnunet import model_folder, predict, set_environment
from acceflow.imaging.segment_model import mask_on_original, write_quality_row
from acceflow.io.images import read_image, write_image
from acceflow.runtime import log_to

if __name__ == "__main__":  # nnU-Net spawns worker processes, which re-import this script
    with log_to(snakemake.log[0]):
        torch.set_num_threads(max(1, snakemake.threads))
        set_environment(snakemake.params.root, threads=snakemake.threads)
        m, nn = snakemake.params.mask, snakemake.params.nnunet
        cards = [json.loads(open(p).read()) for p in snakemake.input.cards]
        checkpoints = {int(c["fold"][len("fold"):]): c["checkpoint_sha256"] for c in cards}
        # the quality table's fold column is the card's folder: foldN (out-of-fold) or ensemble
        model = snakemake.input.cards[0] if len(cards) == 1 else os.path.join(
            os.path.dirname(os.path.dirname(snakemake.input.cards[0])), "ensemble", "model_card.json")
        row = {"scan_id": snakemake.wildcards.scan, "model": model, "error": ""}
        image = read_image(snakemake.input.image)
        try:
            mask = predict(image, model_folder(nn["trainer"], nn["configuration"]), checkpoints,
                           device=snakemake.params.device, mirroring=nn["mirroring"])
        except Exception as exc:  # noqa: BLE001 - the scan's extraction then fails and is listed, others go on
            if snakemake.params.on_error == "stop":
                raise
            traceback.print_exc()
            row["error"] = f"segmentation failed: {exc}"
            mask = sitk.Image(image.GetSize(), sitk.sitkUInt8)
            mask.CopyInformation(image)
        write_image(mask, snakemake.output.preprocessed)
        reference = snakemake.input.reference if "reference" in snakemake.input.keys() else None
        on_original = mask_on_original(mask, row, snakemake.input.original, reference, m,
                                       snakemake.params.tolerance_mm, snakemake.params.on_error)
        write_image(on_original, snakemake.output.mask)
        print(row)
        write_quality_row(row, snakemake.output.quality)
