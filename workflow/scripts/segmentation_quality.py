"""Per-case segmentation quality table, per-cohort summary with 95% bootstrap CIs, and overlays of the
worst and the median case per modality (acceflow.metrics.segmentation, acceflow.report.segmentation_section)."""
import json
import os

import pandas as pd

from acceflow.io.images import read_image
from acceflow.metrics.segmentation import summarise_quality
from acceflow.report.segmentation_section import overlay_figure
from acceflow.runtime import log_to

with log_to(snakemake.log[0]):
    scans = pd.read_csv(snakemake.input.scans, sep="\t", dtype=str, keep_default_na=False)
    rows = pd.concat([pd.read_csv(f, sep="\t", dtype={"scan_id": str, "error": str}, keep_default_na=False,
                                  na_values=[""]) for f in snakemake.input.quality], ignore_index=True)
    table = scans[["scan_id", "case_id", "cohort", "modality", "primary"]].merge(rows, on="scan_id")
    table["modality"] = table["modality"].replace("", "all")
    table["fold"] = table["model"].map(lambda p: os.path.basename(os.path.dirname(p)))
    train = table["cohort"].isin(snakemake.params.train)
    table["evaluation"] = "external"
    table.loc[train & (table["fold"] != "final"), "evaluation"] = "out-of-fold"
    table.loc[train & (table["fold"] == "final"), "evaluation"] = "training (seen by the model)"
    table = table.drop(columns=["model"]).sort_values("scan_id")
    table.to_csv(snakemake.output.table, sep="\t", index=False, float_format="%.6g")
    ok = table[table["error"].fillna("") == ""]
    summary = summarise_quality(ok, group=["cohort", "modality", "evaluation"], seed=snakemake.params.seed)
    summary.to_csv(snakemake.output.summary, sep="\t", index=False, float_format="%.6g")
    print(summary.to_string())
    os.makedirs(snakemake.output.overlays, exist_ok=True)
    paths = {s: (i, r, m) for s, i, r, m in zip(
        [os.path.basename(os.path.dirname(p)) for p in snakemake.input.images],
        snakemake.input.images, snakemake.input.references, snakemake.input.models)}
    figures = []
    for modality, part in ok.dropna(subset=["dice"]).groupby("modality"):
        part = part.sort_values(["dice", "scan_id"]).reset_index(drop=True)
        for which, idx in (("worst", 0), ("median", (len(part) - 1) // 2)):
            r = part.iloc[idx]
            img, ref, mod = (read_image(p) for p in paths[r["scan_id"]])
            fig = overlay_figure(img, ref, mod, title=f"{modality} {which}: {r['scan_id']} (Dice {r['dice']:.3f}, "
                                                      f"HD95 {r['hd95_mm']:.1f} mm)")
            name = f"{which}_{modality}.png"
            fig.savefig(os.path.join(snakemake.output.overlays, name), dpi=100)
            figures.append({"file": name, "modality": modality, "case": which, "scan_id": r["scan_id"],
                            "dice": float(r["dice"]), "hd95_mm": float(r["hd95_mm"])})
    with open(os.path.join(snakemake.output.overlays, "overlays.json"), "w") as fh:
        json.dump(figures, fh, indent=2)
