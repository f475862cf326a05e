"""Build the image manifest from a folder-per-case layout (input.layout)."""
import os

from acceflow.io.manifest import build_manifest_from_layout
from acceflow.runtime import log_to

with log_to(snakemake.log[0]):
    lay = snakemake.params.layout
    df = build_manifest_from_layout(lay["root"], lay["images"], lay["masks"], cases=lay.get("cases", "*"),
                                    clinical=lay.get("clinical"), clinical_id=lay.get("clinical_id", "case_id"),
                                    cohort=lay.get("cohort", "site"))
    tmp = snakemake.output[0] + ".tmp"
    df.to_csv(tmp, sep="\t", index=False)
    os.replace(tmp, snakemake.output[0])
    print(f"{len(df)} rows, {df['case_id'].nunique()} cases")
