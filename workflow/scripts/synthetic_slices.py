"""The slice grid of real (generator-training) and synthetic lesions per class (acceflow.deep.synthetic.slice_grid)."""
import pandas as pd

from acceflow.deep.crops import load_crop
from acceflow.deep.synthetic import slice_grid
from acceflow.runtime import log_to
from acceflow.study.deep import case_crops
from acceflow.study.synthetic import slice_grid_crops

with log_to(snakemake.log[0]):
    split = pd.read_csv(snakemake.input.split, sep="\t", dtype={"case_id": str})
    scans = pd.read_csv(snakemake.input.scans, sep="\t", dtype=str, keep_default_na=False).set_index("scan_id")
    real, synthetic = slice_grid_crops(split, case_crops(scans, list(snakemake.input.crops)),
                                       load_crop(snakemake.input.synthetic))
    slice_grid(real, synthetic, snakemake.output.png, units=f"{snakemake.params.units} intensity")
