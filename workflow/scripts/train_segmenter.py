"""Train one segmentation network (one modality, one fold or the final model; acceflow.imaging.segment_model)."""
import json

import torch

from acceflow.imaging.segment_model import SegmentationCase, save_model, train_segmenter
from acceflow.io.images import read_image
from acceflow.runtime import log_to

with log_to(snakemake.log[0]):
    torch.set_num_threads(max(1, snakemake.threads))
    scans = list(snakemake.params.scans)
    cases = [SegmentationCase(scan, read_image(img), read_image(msk))
             for scan, img, msk in zip(scans, snakemake.input.images, snakemake.input.masks)]
    print(f"{snakemake.wildcards.modality} {snakemake.wildcards.fold}: {len(cases)} training scans")
    model, card = train_segmenter(cases, snakemake.params.settings, seed=snakemake.params.seed,
                                  label=snakemake.params.label)
    card.update(modality=snakemake.wildcards.modality, fold=snakemake.wildcards.fold)
    card["model_file"] = "model.pt"
    card["model_sha256"] = save_model(model, card, snakemake.output.model)  # checked on every load
    with open(snakemake.output.card, "w") as fh:
        json.dump(card, fh, indent=2)
