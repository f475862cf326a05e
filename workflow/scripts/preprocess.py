"""IBSI image processing of one scan and its mask (acceflow.imaging.preprocess.preprocess).

Per-modality settings (normalisation, round_intensities, n4) are looked up with the scan's modality.
"""
import logging
from time import perf_counter

import SimpleITK as sitk

from acceflow.imaging.preprocess import preprocess
from acceflow.io.images import describe_image, read_image, read_mask, write_image
from acceflow.runtime import log_to

log = logging.getLogger("acceflow.preprocess")

with log_to(snakemake.log[0]):
    start = perf_counter()
    s = snakemake.params.settings
    modality = snakemake.params.modality
    m = snakemake.params.mask
    image = read_image(snakemake.input.image, series_uid=m["series_uid"] or None)
    # the mask may be a label image, an RTSTRUCT or a SEG: it comes back on the image's grid
    mask = (read_mask(snakemake.input.mask, image, roi=m["roi"], label=m["label"], tolerance=m["tolerance"])
            if "mask" in snakemake.input.keys() else None)
    options = dict(
        spacing=s["spacing"], interpolator=s["image_interpolator"],
        normalisation=s["normalisation"].get(modality, "none"),
        mask_interpolator=s.get("mask_interpolator", "nearest"), mask_threshold=s.get("mask_threshold", 0.5),
        rounding=bool(s.get("round_intensities", {}).get(modality, False)),
        n4=bool(s.get("n4", {}).get(modality, False)), n4_shrink=s.get("n4_shrink", 4),
        n4_iterations=s.get("n4_iterations", [50, 50, 50, 50]), reference_label=s.get("reference_label"),
    )
    label = m["label"] or 1
    log.info("scan %s (%s): read %s", snakemake.wildcards.scan, modality, describe_image(image, mask, label))
    log.info("settings: %s", options)
    image, mask = preprocess(image, mask, **options)
    log.info("after preprocessing (%s to %s mm, %s normalisation): %s",
             "resampled" if options["spacing"] else "not resampled", options["spacing"] or "own grid",
             options["normalisation"], describe_image(image, mask, label))
    if mask is None:  # segmentation from a box: an empty mask keeps the file contract
        mask = sitk.Image(image.GetSize(), sitk.sitkUInt8)
        mask.CopyInformation(image)
    write_image(image, snakemake.output.image)
    write_image(mask, snakemake.output.mask)
    log.info("wrote %s and its mask in %.1f s", snakemake.output.image, perf_counter() - start)
