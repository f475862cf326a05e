"""Segment one scan with its model (out-of-fold or final), write the mask on the preprocessed grid
(for extraction) and on the original image's grid (the deliverable), and its quality against the
reference mask when the scan has one (acceflow.imaging.segment_model, acceflow.metrics.segmentation)."""
import csv
import logging
import traceback
from time import perf_counter

import SimpleITK as sitk
import torch

from acceflow.imaging.segment_model import infer_mask, load_model_with_card, to_original_grid
from acceflow.io.images import describe_image, read_image, read_mask, write_image
from acceflow.metrics.segmentation import QUALITY_COLUMNS, segmentation_quality
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
        mask = infer_mask(model, image, s, label=m["label"])
    except Exception as exc:  # noqa: BLE001 - the scan's extraction then fails and is listed, others go on
        if snakemake.params.on_error == "stop":
            raise
        traceback.print_exc()
        row["error"] = f"segmentation failed: {exc}"
        mask = sitk.Image(image.GetSize(), sitk.sitkUInt8)
        mask.CopyInformation(image)
    log.info("scan %s: segmented with %s: %s", scan, snakemake.input.model, describe_image(image, mask, m["label"]))
    write_image(mask, snakemake.output.preprocessed)
    original = read_image(snakemake.input.original, series_uid=m["series_uid"] or None)
    on_original = to_original_grid(mask, original)
    write_image(on_original, snakemake.output.mask)
    if "reference" in snakemake.input.keys() and not row["error"]:
        try:
            reference = read_mask(snakemake.input.reference, original, roi=m["roi"] or None, label=m["label"],
                                  tolerance=m["tolerance"])
            row.update(segmentation_quality(reference, on_original, label=m["label"],
                                            tolerance_mm=s["surface_tolerance_mm"]))
        except Exception as exc:  # noqa: BLE001
            if snakemake.params.on_error == "stop":
                raise
            row["error"] = f"evaluation failed: {exc}"
    print(row)
    log.info("scan %s: done in %.1f s", scan, perf_counter() - start)
    with open(snakemake.output.quality, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["scan_id", "model", "error", *QUALITY_COLUMNS], delimiter="\t",
                           lineterminator="\n")
        w.writeheader()
        w.writerow(row)
