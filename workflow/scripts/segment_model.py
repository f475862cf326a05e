"""Segment one scan with its model (out-of-fold or final), write the mask on the preprocessed grid
(for extraction) and on the original image's grid (the deliverable), and its quality against the
reference mask when the scan has one (acceflow.imaging.segment_model, acceflow.metrics.segmentation)."""
import logging
import traceback
from time import perf_counter

import SimpleITK as sitk
import torch

from acceflow.imaging.segment_model import (
    infer_mask,
    load_model_with_card,
    mask_on_original,
    planned_settings,
    write_quality_row,
)
from acceflow.io.images import describe_image, read_image, write_image
from acceflow.runtime import log_to

log = logging.getLogger("acceflow.segment_model")

with log_to(snakemake.log[0]):
    start = perf_counter()
    torch.set_num_threads(max(1, snakemake.threads))
    scan, s, m = snakemake.wildcards.scan, snakemake.params.settings, snakemake.params.mask
    row = {"scan_id": scan, "model": snakemake.input.model, "error": ""}
    image = read_image(snakemake.input.image)
    try:
        model, card = load_model_with_card(snakemake.input.model)
        mask = infer_mask(model, image, planned_settings(s, card), label=m["label"])  # the card's patch, spacing
    except Exception as exc:  # noqa: BLE001 - the scan's extraction then fails and is listed, others go on
        if snakemake.params.on_error == "stop":
            raise
        traceback.print_exc()
        row["error"] = f"segmentation failed: {exc}"
        mask = sitk.Image(image.GetSize(), sitk.sitkUInt8)
        mask.CopyInformation(image)
    log.info("scan %s: segmented with %s: %s", scan, snakemake.input.model, describe_image(image, mask, m["label"]))
    write_image(mask, snakemake.output.preprocessed)
    reference = snakemake.input.reference if "reference" in snakemake.input.keys() else None
    on_original = mask_on_original(mask, row, snakemake.input.original, reference, m, s["surface_tolerance_mm"],
                                   snakemake.params.on_error)
    write_image(on_original, snakemake.output.mask)
    print(row)
    log.info("scan %s: done in %.1f s", scan, perf_counter() - start)
    write_quality_row(row, snakemake.output.quality)
