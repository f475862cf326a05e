"""Integrated-gradients overlays (acceflow.deep.attribution) of the cases Grad-CAM shows on one cohort."""
import os

import numpy as np
import pandas as pd
import torch

from acceflow.deep.attribution import display_map, integrated_gradients_maps
from acceflow.deep.crops import load_crop
from acceflow.deep.gradcam import overlay_png
from acceflow.runtime import log_to
from acceflow.study.deep import explained_cases, frozen_model_inputs

with log_to(snakemake.log[0]):
    torch.set_num_threads(max(1, snakemake.threads))
    cohort, p = snakemake.wildcards.cohort, snakemake.params
    card, fitted, crops, preds = frozen_model_inputs(snakemake.input.card, snakemake.input.model, snakemake.input.scans,
                                                     snakemake.input.crops, snakemake.input.predictions)
    chosen = explained_cases(preds, card["threshold"]["value"], p.cases)
    folder = os.path.dirname(snakemake.output.table)
    rows = []
    if len(chosen):
        loaded = [load_crop(crops[c]) for c in chosen["case_id"]]
        ig = integrated_gradients_maps(fitted, np.stack([c["image"] for c in loaded]), p.steps, p.batch)
        for i, ((_, r), crop) in enumerate(zip(chosen.iterrows(), loaded)):
            heat, scale = display_map(ig["maps"][i])
            png = f"{r['case_id']}.png"
            overlay_png(crop, heat, os.path.join(folder, png),
                        f"{cohort} {r['case_id']}: IG, p = {r['probability']:.2f} "
                        f"({'correct' if r['correct'] else 'wrong'})")
            rows.append({"case_id": r["case_id"], "outcome": int(r["outcome"]), "probability": r["probability"],
                         "correct": bool(r["correct"]), "png": png, "n_steps": ig["n_steps"],
                         "output": ig["output"][i], "baseline_output": ig["baseline_output"][i],
                         "attribution_sum": float(ig["attributions"][i].sum()), "delta": ig["delta"][i],
                         "display_scale": scale, "modality": str(crop["modalities"][0])})
    pd.DataFrame(rows, columns=["case_id", "outcome", "probability", "correct", "png", "n_steps", "output",
                                "baseline_output", "attribution_sum", "delta", "display_scale", "modality"]) \
        .to_csv(snakemake.output.table, sep="\t", index=False, float_format="%.10g")
    print(f"{len(rows)} integrated-gradients maps, completeness |delta| max "
          f"{max((abs(r['delta']) for r in rows), default=0):.3g}")
