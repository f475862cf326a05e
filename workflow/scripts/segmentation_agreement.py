"""Dice, Jaccard, HD95 and mean surface distance of every two masks of one image."""
import itertools

import pandas as pd

from acceflow.analytical.segmentation import SEGMENTATION_COLUMNS, segmentation_agreement
from acceflow.config import log_to
from acceflow.io.images import read_image

COLUMNS = ["case_id", "image", "repeat_a", "repeat_b", *SEGMENTATION_COLUMNS]

with log_to(snakemake.log[0]):
    rows = []
    if snakemake.input.scans:
        scans = pd.read_csv(snakemake.input.scans, sep="\t", dtype=str, keep_default_na=False)
        scans = scans[scans["mask"] != ""]
        for (case, image), group in scans.groupby(["case_id", "image"], sort=True):
            group = group.sort_values("repeat")
            for (_, a), (_, b) in itertools.combinations(group.iterrows(), 2):
                res = segmentation_agreement(read_image(a["mask"]), read_image(b["mask"]),
                                             label=snakemake.params.label)
                rows.append({"case_id": case, "image": image, "repeat_a": a["repeat"], "repeat_b": b["repeat"], **res})
    print(f"{len(rows)} mask pairs")
    pd.DataFrame(rows, columns=COLUMNS).to_csv(snakemake.output.table, sep="\t", index=False, float_format="%.10g")
