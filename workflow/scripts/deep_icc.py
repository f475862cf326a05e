"""ICC of the deep features across the repeats, beside the handcrafted features' (acceflow.metrics.icc)."""
import pandas as pd

from acceflow.metrics.icc import _COLUMNS as COLUMNS
from acceflow.metrics.icc import UNLINKED_DESIGNS, icc_form_warning, icc_table, resolve_icc_form, unlinked_repeats
from acceflow.runtime import log_to

with log_to(snakemake.log[0]):
    s = snakemake.params.settings
    long = pd.read_csv(snakemake.input.repeats, sep="\t", dtype={"case_id": str, "repeat": str})
    features = [c for c in long.columns if c.startswith("deep_")]
    form = resolve_icc_form(s["icc_form"], s["design"])
    warning = icc_form_warning(form, s["design"])
    if warning:
        print(f"WARNING: {warning}")
    if s["design"] in UNLINKED_DESIGNS and len(long):  # readers differ per subject: number the readings
        long = unlinked_repeats(long).drop(columns="repeat_original")
    if len(long) and features and long["repeat"].nunique() >= 2:
        # embedding units that are constant (dead ReLU) over all repeats carry no information
        varying = [f for f in features if long[f].std() > 0]
        print(f"{form}: {long['case_id'].nunique()} subjects, {len(varying)} of {len(features)} embedding units vary")
        table = icc_table(long, varying, form=form, threshold=s["threshold"])
    else:
        print("no repeated crops: ICC of the deep features not assessed")
        table = pd.DataFrame(columns=COLUMNS)
    table["design"] = s["design"]
    table["icc_form_warning"] = warning
    table.to_csv(snakemake.output.icc, sep="\t", index=False, float_format="%.10g")
