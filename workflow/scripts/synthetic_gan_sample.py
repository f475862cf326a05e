"""Generate the labelled synthetic lesion crops (acceflow.study.synthetic.sample_gan) in the crops' units."""
import json

import pandas as pd

from acceflow.deep.crops import save_crop
from acceflow.deep.synthetic import load_generators
from acceflow.runtime import log_to
from acceflow.study.synthetic import sample_gan

with log_to(snakemake.log[0]):
    split = pd.read_csv(snakemake.input.split, sep="\t", dtype={"case_id": str})
    with open(snakemake.input.card) as fh:
        card = json.load(fh)
    crops = sample_gan(load_generators(snakemake.input.generator), split, snakemake.params.config,
                       log=lambda line: print(line, flush=True), lesion_voxels_range=card.get("lesion_voxels_range"))
    crops["spacing_mm"] = float(card["crop_spacing_mm"])
    save_crop(crops, snakemake.output.crops)
    lesion = crops["image"][crops["mask"] > 0]
    print(f"{len(crops['case_id'])} synthetic lesions kept, {len(crops['dropped'])} dropped (empty or implausible mask)"
          + (f"; intensity range in the lesions {float(lesion.min()):.4g} .. {float(lesion.max()):.4g} (training "
             f"crops {card['intensity_range']})" if lesion.size else ""), flush=True)
