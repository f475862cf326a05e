"""Write one modality's training scans and reference masks as an nnU-Net v2 raw dataset, with the
study's case ids and folds mapped to nnU-Net's case ids in cases.tsv (acceflow.imaging.nnunet)."""
import pandas as pd

from acceflow.imaging.nnunet import set_environment, write_raw_dataset
from acceflow.runtime import log_to

if __name__ == "__main__":  # nnU-Net spawns worker processes, which re-import this script
    with log_to(snakemake.log[0]):
        set_environment(snakemake.params.root)
        cases = pd.DataFrame.from_dict(snakemake.params.cases, orient="index").rename_axis("scan_id").reset_index()
        cases = cases.sort_values("scan_id").reset_index(drop=True)  # the order of input.images / input.masks
        table = write_raw_dataset(cases, snakemake.input.images, snakemake.input.masks, snakemake.output.raw,
                                  snakemake.wildcards.modality, snakemake.params.label, snakemake.params.folds)
        table[["scan_id", "case_id", "fold", "nnunet_id"]].to_csv(snakemake.output.cases, sep="\t", index=False)
        print(table.groupby("fold").size().to_string())
