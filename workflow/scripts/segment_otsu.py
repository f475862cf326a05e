"""Baseline Otsu segmentation of one scan (acceflow.imaging.segment)."""
import logging
from time import perf_counter

import SimpleITK as sitk

from acceflow.imaging.segment import otsu_segment
from acceflow.io.images import describe_image, read_image, write_image
from acceflow.runtime import log_to

log = logging.getLogger("acceflow.segment_otsu")

with log_to(snakemake.log[0]):
    start = perf_counter()
    s = snakemake.params.settings
    image = read_image(snakemake.input.image)
    reference = read_image(snakemake.input.mask)
    has_reference = sitk.GetArrayViewFromImage(reference).any()
    mask = otsu_segment(image, reference if has_reference else None, margin_mm=s["margin_mm"],
                        box_mm=s["box_mm"], label=snakemake.params.label)
    write_image(mask, snakemake.output.mask)
    log.info("scan %s: Otsu segmentation %s (margin %s mm, box %s mm): %s; %.1f s", snakemake.wildcards.scan,
             "inside the reference mask's neighbourhood" if has_reference else "without a reference mask",
             s["margin_mm"], s["box_mm"], describe_image(image, mask, snakemake.params.label), perf_counter() - start)
