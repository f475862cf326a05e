"""Grad-CAM overlays of a few correctly and wrongly classified cases of one cohort (acceflow.deep.gradcam)."""
import os

import numpy as np
import pandas as pd
import torch

from acceflow.deep.crops import load_crop
from acceflow.deep.gradcam import gradcam_maps, overlay_png
from acceflow.deep.networks import gradcam_layer
from acceflow.runtime import log_to
from acceflow.study.deep import explained_cases, frozen_model_inputs

with log_to(snakemake.log[0]):
    torch.set_num_threads(max(1, snakemake.threads))
    cohort, p = snakemake.wildcards.cohort, snakemake.params
    card, fitted, crops, preds = frozen_model_inputs(snakemake.input.card, snakemake.input.model, snakemake.input.scans,
                                                     snakemake.input.crops, snakemake.input.predictions)
    chosen = explained_cases(preds, card["threshold"]["value"], p.cases)
    layer = gradcam_layer(card["network"], card["fusion"], p.layer, card["crop"]["size_voxels"])
    folder = os.path.dirname(snakemake.output.table)
    rows = []
    if len(chosen):
        loaded = [load_crop(crops[c]) for c in chosen["case_id"]]
        g = gradcam_maps(fitted, np.stack([c["image"] for c in loaded]), layer)
        voxel_mm = [float(card["crop"]["size_voxels"]) * card["crop"]["spacing_mm"] / s for s in g["layer_shape"]]
        for (_, r), crop, heat in zip(chosen.iterrows(), loaded, g["maps"]):
            png = f"{r['case_id']}.png"
            title = (f"{cohort} {r['case_id']}: outcome {int(r['outcome'])}, p = {r['probability']:.2f} "
                     f"({'correct' if r['correct'] else 'wrong'})")
            overlay_png(crop, heat, os.path.join(folder, png), title)
            rows.append({"case_id": r["case_id"], "outcome": int(r["outcome"]), "probability": r["probability"],
                         "correct": bool(r["correct"]), "png": png, "layer": layer,
                         "layer_shape": "x".join(map(str, g["layer_shape"])),
                         "layer_voxel_mm": "x".join(f"{v:g}" for v in voxel_mm),
                         "modality": str(crop["modalities"][0])})
    pd.DataFrame(rows, columns=["case_id", "outcome", "probability", "correct", "png", "layer", "layer_shape",
                                "layer_voxel_mm", "modality"]).to_csv(snakemake.output.table, sep="\t", index=False)
    print(f"{len(rows)} Grad-CAM maps of layer {layer}")
