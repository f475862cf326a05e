"""ICC per feature from the repeats and the stable-feature list (acceflow.analytical.icc)."""
import pandas as pd

from acceflow.analytical.icc import icc_table, stable_features
from acceflow.config import log_to

COLUMNS = ["feature", "icc_form", "icc", "ci_low", "ci_high", "wcv", "n_subjects", "n_repeats", "stable", "koo_li_band"]

with log_to(snakemake.log[0]):
    s = snakemake.params.settings
    long = (pd.read_csv(snakemake.input.repeats, sep="\t", dtype={"case_id": str, "repeat": str})
            if snakemake.input.repeats else pd.DataFrame(columns=["case_id", "repeat"]))
    features = [c for c in long.columns if c not in ("case_id", "repeat")]
    if snakemake.params.features:
        features = [c for c in features if c in snakemake.params.features]
    if len(long) and features:
        table = icc_table(long, features, form=s["icc_form"], threshold=s["threshold"])
    else:
        print("no repeated measurements: reproducibility not assessed")
        table = pd.DataFrame(columns=COLUMNS)
    table.to_csv(snakemake.output.icc, sep="\t", index=False, float_format="%.10g")
    with open(snakemake.output.stable, "w") as fh:
        fh.writelines(f"{f}\n" for f in (stable_features(table) if len(table) else []))
