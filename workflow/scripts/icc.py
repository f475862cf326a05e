"""ICC, agreement and the stable-feature list from the repeats (acceflow.analytical)."""
import pandas as pd

from acceflow.metrics.agreement import AGREEMENT_COLUMNS, agreement_table
from acceflow.metrics.icc import _COLUMNS as COLUMNS
from acceflow.metrics.icc import (UNLINKED_DESIGNS, icc_form_warning, icc_table, resolve_icc_form, select_stable,
                                  unlinked_repeats)
from acceflow.runtime import log_to

with log_to(snakemake.log[0]):
    s = snakemake.params.settings
    long = (pd.read_csv(snakemake.input.repeats, sep="\t", dtype={"case_id": str, "repeat": str})
            if snakemake.input.repeats else pd.DataFrame(columns=["case_id", "repeat"]))
    features = [c for c in long.columns if c not in ("case_id", "repeat")]
    if snakemake.params.features:
        features = [c for c in features if c in snakemake.params.features]
    form = resolve_icc_form(s["icc_form"], s["design"])
    warning = icc_form_warning(form, s["design"])
    if warning:
        print(f"WARNING: {warning}")
    if s["design"] in UNLINKED_DESIGNS and len(long):  # readers differ per subject: number the readings
        long = unlinked_repeats(long).drop(columns="repeat_original")
    if len(long) and features and long["repeat"].nunique() >= 2:
        print(f"design {s['design']}: {form}, {long['case_id'].nunique()} subjects, {len(features)} features")
        table = icc_table(long, features, form=form, threshold=s["threshold"])
        kept, dropped = select_stable(table, s["threshold"], s.get("max_wcv"))
        table["stable"] = table["feature"].isin(kept)
        agreement = agreement_table(long, features, alpha=snakemake.params.alpha)
    else:
        print("no repeated measurements: reproducibility not assessed")
        table, agreement = pd.DataFrame(columns=COLUMNS), pd.DataFrame(columns=AGREEMENT_COLUMNS)
        kept, dropped = [], pd.DataFrame(columns=["feature", "icc", "ci_low", "wcv", "reason"])
    table["design"] = s["design"]
    table["icc_form_warning"] = warning
    table.to_csv(snakemake.output.icc, sep="\t", index=False, float_format="%.10g")
    agreement.to_csv(snakemake.output.agreement, sep="\t", index=False, float_format="%.10g")
    dropped.to_csv(snakemake.output.dropped, sep="\t", index=False, float_format="%.10g")
    with open(snakemake.output.stable, "w") as fh:
        fh.writelines(f"{f}\n" for f in kept)
