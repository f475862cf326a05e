"""Record which training cases go to which segmentation fold (acceflow.imaging.segment_model.assign_folds)."""
import pandas as pd

from acceflow.runtime import log_to

with log_to(snakemake.log[0]):
    table = pd.DataFrame.from_dict(snakemake.params.table, orient="index")
    table.index.name = "scan_id"
    table = table.rename(columns={"seg_modality": "modality"}).reset_index().sort_values("scan_id")
    table.to_csv(snakemake.output.folds, sep="\t", index=False)
    print(table.groupby(["modality", "fold"]).size().to_string())
