"""Segment one scan with its model (out-of-fold or final), write the mask on the preprocessed grid
(for extraction) and on the original image's grid (the deliverable), and its quality against the
reference mask when the scan has one (acceflow.imaging.segment_model, acceflow.metrics.segmentation).
A failed segmentation is the shared fallback (segment_or_empty): an empty mask, flagged in the row."""
import logging
from time import perf_counter

import torch

from acceflow.imaging.segment_model import (
    infer_mask,
    load_model_with_card,
    mask_on_original,
    planned_settings,
    segment_or_empty,
    write_quality_row,
)
from acceflow.io.images import describe_image, read_image, write_image
from acceflow.runtime import log_to

log = logging.getLogger("acceflow.segment_model")


def _segment(image, s, label):
    model, card = load_model_with_card(snakemake.input.model)
    return infer_mask(model, image, planned_settings(s, card), label=label)  # the card's patch and spacing


with log_to(snakemake.log[0]):
    start = perf_counter()
    torch.set_num_threads(max(1, snakemake.threads))
    scan, s, m = snakemake.wildcards.scan, snakemake.params.settings, snakemake.params.mask
    row = {"scan_id": scan, "model": snakemake.input.model, "error": ""}
    image = read_image(snakemake.input.image)
    mask = segment_or_empty(lambda: _segment(image, s, m["label"]), image, row, snakemake.params.on_error)
    log.info("scan %s: segmented with %s: %s", scan, snakemake.input.model, describe_image(image, mask, m["label"]))
    write_image(mask, snakemake.output.preprocessed)
    reference = snakemake.input.reference if "reference" in snakemake.input.keys() else None
    on_original = mask_on_original(mask, row, snakemake.input.original, reference, m, s["surface_tolerance_mm"],
                                   snakemake.params.on_error)
    write_image(on_original, snakemake.output.mask)
    print(row)
    log.info("scan %s: done in %.1f s", scan, perf_counter() - start)
    write_quality_row(row, snakemake.output.quality)
