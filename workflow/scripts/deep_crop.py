"""Lesion-centred crop of one scan, every modality on one grid (acceflow.deep.crops).

A case whose crop cannot be made gets a file with an ``error`` entry (its case is left out of the
deep model and named in the model card) instead of failing the run."""
import numpy as np

from acceflow.deep.crops import CropError, make_crop, save_crop
from acceflow.runtime import log_to

with log_to(snakemake.log[0]):
    images = {k[len("image_"):]: v for k, v in snakemake.input.items() if k.startswith("image_")}
    scan, p = snakemake.wildcards.scan, snakemake.params
    try:
        crop = make_crop(images, snakemake.input.mask, p.size, p.spacing, p.label, case=scan)
        print(f"{scan}: {list(images)} crop {crop['image'].shape}, centre {crop['centre_mm'].round(1).tolist()} mm, "
              f"{crop['lesion_fraction_in_crop']:.3f} of the lesion inside")
        if crop["lesion_fraction_in_crop"] < 0.5:
            print(f"warning: {scan}: less than half the lesion lies inside the crop; raise deep.crop_size or crop_spacing")
    except CropError as exc:
        print(f"error: {exc}")
        crop = {"error": np.array(str(exc))}
    save_crop(crop, snakemake.output.crop)
