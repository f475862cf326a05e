"""ICC(2,1) per feature across segmentations (acceflow.metrics.icc): the sample masks of the model
(segmentation uncertainty readers), or the reference mask against the model mask."""
import pandas as pd

from acceflow.metrics.icc import _COLUMNS as COLUMNS
from acceflow.metrics.icc import icc_table
from acceflow.runtime import log_to
from acceflow.study.tables import assemble_perturbation_table

with log_to(snakemake.log[0]):
    if "samples" in snakemake.input.keys():
        long = assemble_perturbation_table(snakemake.input.scans, list(snakemake.input.samples))
    else:  # one row per scan and mask source: the reference and the model are the two readers
        frames = []
        for source, files in (("reference", snakemake.input.reference), ("model", snakemake.input.model)):
            for f in files:  # reference: one row per scan; model: one row per scan of a case (extract_case)
                rows = pd.read_csv(f, sep="\t", dtype={"scan_id": str, "error": str})
                ok = rows["error"].fillna("") == "" if "error" in rows else pd.Series(True, index=rows.index)
                rows = rows[ok & rows["scan_id"].isin(snakemake.params.scans)]
                if len(rows):
                    frames.append(rows.drop(columns=["error"], errors="ignore").assign(perturbation=source))
        tmp = snakemake.output.icc + ".rows.tsv"
        pd.concat(frames, ignore_index=True).to_csv(tmp, sep="\t", index=False) if frames else \
            pd.DataFrame(columns=["scan_id", "perturbation"]).to_csv(tmp, sep="\t", index=False)
        long = assemble_perturbation_table(snakemake.input.scans, [tmp])
        import os

        os.remove(tmp)
    features = [c for c in long.columns if c not in ("case_id", "repeat")]
    if len(long) and features and long["repeat"].nunique() >= 2:
        table = icc_table(long, features, form="ICC(2,1)", threshold=snakemake.params.threshold)
        table["contour_dependent"] = ~table["stable"].astype(bool)
        print(f"{long['case_id'].nunique()} cases, {long['repeat'].nunique()} readers, {len(features)} features: "
              f"{int(table['contour_dependent'].sum())} contour-dependent (lower 95% CI < {snakemake.params.threshold})")
    else:
        print("fewer than two segmentations per case: no ICC")
        table = pd.DataFrame(columns=[*COLUMNS, "contour_dependent"])
    table.to_csv(snakemake.output.icc, sep="\t", index=False, float_format="%.10g")
