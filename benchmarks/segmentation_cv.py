"""Out-of-fold Dice and HD95 of the MONAI segmenter on one modality of a study, in one process.

What the segmentation rules compute (train_segmenter per fold, segment_model per held-out scan, the
quality against the reference mask on the original grid), without the per-scan jobs and the final
model, so that recipes can be compared on a loaded CPU. It reads the study config's ``segmentation``
section (its recipe), the fold table and the preprocessed scans of a run of that study
(``segmentation/model/folds.tsv``, ``preprocessed/``, ``ingest/scans.tsv``: run the study up to the
fold table first, e.g. ``snakemake ... -- <results>/segmentation/model/folds.tsv``), and writes one row
per held-out scan (fold, Dice, HD95, ...) and a line per fold with its training time.

    python benchmarks/segmentation_cv.py --config config/studies/sts_segmentation_cpu.yaml \\
        --results results/sts_nnunet_cpu --modality PET --out results/cv_PET_after.tsv [--folds 0]
"""
import argparse
import os
import time

import pandas as pd
import torch
import yaml

from acceflow.imaging.segment_model import (
    SegmentationCase,
    infer_mask,
    mask_on_original,
    planned_settings,
    train_segmenter,
)
from acceflow.io.images import read_image
from acceflow.metrics.segmentation import summarise_quality
from acceflow.study.settings import section_settings

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True, help="study config whose segmentation section is the recipe")
    ap.add_argument("--results", help="results folder with the fold table and the preprocessed scans "
                                      "(default: the config's)")
    ap.add_argument("--modality", required=True)
    ap.add_argument("--folds", type=int, nargs="*", help="only these folds (default: all)")
    ap.add_argument("--iterations", type=int, help="override segmentation.iterations")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True, help="per-scan TSV; the summary is printed")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    config = yaml.safe_load(open(args.config))
    settings = section_settings("segmentation", config.get("segmentation"))
    if args.iterations:
        settings["iterations"] = args.iterations
    results = args.results or config["results"]
    label, tol = 1, float(settings["surface_tolerance_mm"])
    folds = pd.read_csv(f"{results}/segmentation/model/folds.tsv", sep="\t", dtype={"fold": int})
    folds = folds[folds["modality"] == args.modality]
    scans = pd.read_csv(f"{results}/ingest/scans.tsv", sep="\t", dtype=str, keep_default_na=False).set_index(
        "scan_id")
    cases = {s: SegmentationCase(s, read_image(f"{results}/preprocessed/{s}/image.nii.gz"),
                                 read_image(f"{results}/preprocessed/{s}/mask.nii.gz")) for s in folds["scan_id"]}
    rows = []
    for k in args.folds if args.folds is not None else sorted(folds["fold"].unique()):
        held = list(folds.loc[folds["fold"] == k, "scan_id"])
        train = [cases[s] for s in folds.loc[folds["fold"] != k, "scan_id"]]
        start = time.perf_counter()
        model, card = train_segmenter(train, settings, seed=config.get("seed", 42),
                                      log=lambda line, k=k: print(f"fold {k}: {line}", flush=True))
        seconds = time.perf_counter() - start
        s = planned_settings(settings, card)
        print(f"fold {k}: {len(train)} training scans, {card['iterations_run']} iterations in {seconds:.0f} s "
              f"({card['iterations_per_s']:.2f} it/s, best validation Dice {card['best_val_dice']}), plan "
              f"{card['plan']['target_spacing']} mm, patch {card['plan']['patch_size']}; load "
              f"{os.getloadavg()[0]:.1f}", flush=True)
        for scan in held:
            row = {"scan_id": scan, "model": f"fold{k}", "error": ""}
            mask = infer_mask(model, cases[scan].image, s, label=label)
            mask_on_original(mask, row, scans.loc[scan, "image"], scans.loc[scan, "mask"],
                             {"series_uid": "", "roi": "", "label": label, "tolerance": 1e-3}, tol, "stop")
            rows.append({**row, "fold": k, "cohort": args.modality, "train_seconds": seconds,
                         "iterations": card["iterations_run"]})
    table = pd.DataFrame(rows)
    table.to_csv(args.out, sep="\t", index=False)
    print(summarise_quality(table).to_string(index=False))
