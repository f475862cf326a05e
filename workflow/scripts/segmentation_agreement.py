"""Dice, Jaccard, HD95 and mean surface distance of every two masks of one image."""
import itertools

import pandas as pd

from acceflow.io.images import read_image, read_mask
from acceflow.metrics.segmentation import SEGMENTATION_COLUMNS, segmentation_agreement
from acceflow.runtime import log_to

COLUMNS = ["case_id", "image", "repeat_a", "repeat_b", *SEGMENTATION_COLUMNS]

with log_to(snakemake.log[0]):
    rows = []
    if snakemake.input.scans:
        scans = pd.read_csv(snakemake.input.scans, sep="\t", dtype=str, keep_default_na=False)
        scans = scans[scans["mask"] != ""]
        p = snakemake.params

        def mask_of(row, reference):  # label image, RTSTRUCT or SEG, on the image's grid
            return read_mask(row["mask"], reference, roi=row.get("roi", "") or p.roi, label=p.label,
                             tolerance=p.tolerance)

        for (case, image), group in scans.groupby(["case_id", "image"], sort=True):
            group = group.sort_values("repeat")
            pairs = list(itertools.combinations(group.iterrows(), 2))
            reference = read_image(image, series_uid=group.iloc[0].get("series_uid", "") or None) if pairs else None
            for (_, a), (_, b) in pairs:
                res = segmentation_agreement(mask_of(a, reference), mask_of(b, reference), label=p.label)
                rows.append({"case_id": case, "image": image, "repeat_a": a["repeat"], "repeat_b": b["repeat"], **res})
    print(f"{len(rows)} mask pairs")
    pd.DataFrame(rows, columns=COLUMNS).to_csv(snakemake.output.table, sep="\t", index=False, float_format="%.10g")
