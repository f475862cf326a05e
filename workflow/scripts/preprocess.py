"""Resample and normalise one scan and its mask (acceflow.imaging.preprocess)."""
import SimpleITK as sitk

from acceflow.config import log_to
from acceflow.imaging.preprocess import preprocess
from acceflow.io.images import read_image, read_mask, write_image

with log_to(snakemake.log[0]):
    s = snakemake.params.settings
    modality = snakemake.params.modality
    m = snakemake.params.mask
    image = read_image(snakemake.input.image, series_uid=m["series_uid"] or None)
    # the mask may be a label image, an RTSTRUCT or a SEG: it comes back on the image's grid
    mask = (read_mask(snakemake.input.mask, image, roi=m["roi"], label=m["label"], tolerance=m["tolerance"])
            if "mask" in snakemake.input.keys() else None)
    image, mask = preprocess(image, mask, spacing=s["spacing"], interpolator=s["image_interpolator"],
                             normalisation=s["normalisation"].get(modality, "none"))
    if mask is None:  # segmentation from a box: an empty mask keeps the file contract
        mask = sitk.Image(image.GetSize(), sitk.sitkUInt8)
        mask.CopyInformation(image)
    write_image(image, snakemake.output.image)
    write_image(mask, snakemake.output.mask)
