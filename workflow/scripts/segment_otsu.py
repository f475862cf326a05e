"""Baseline Otsu segmentation of one scan (acceflow.imaging.segment)."""
import SimpleITK as sitk

from acceflow.imaging.segment import otsu_segment
from acceflow.io.images import read_image, write_image
from acceflow.runtime import log_to

with log_to(snakemake.log[0]):
    s = snakemake.params.settings
    image = read_image(snakemake.input.image)
    reference = read_image(snakemake.input.mask)
    has_reference = sitk.GetArrayViewFromImage(reference).any()
    mask = otsu_segment(image, reference if has_reference else None, margin_mm=s["margin_mm"],
                        box_mm=s["box_mm"], label=snakemake.params.label)
    write_image(mask, snakemake.output.mask)
