"""nnU-Net v2 on STS, one fold: planning, training for a fixed number of epochs, out-of-fold Dice.

Builds one modality's nnU-Net dataset from the STS NIfTI layout (each scan resampled to the STS
study's grid, 2 mm by default, as config/studies/sts_nnunet.yaml's preprocess rule does; the grids
are also written as <out>/sts/preprocessed/<case>__<modality>/{image,mask}.nii.gz for
benchmarks/segmentation.py), plans and preprocesses with nnU-Net, trains fold ``--fold`` of
``--folds`` (the study's case-level folds, seed 42) for ``--epochs`` epochs on the GPU, segments that
fold's held-out cases with the trained checkpoint (SHA-256 checked) and prints their Dice and HD95.
``--cpu-iterations N`` first times N training iterations of another fold on the CPU (the CPU figure
printed beside the GPU one). Everything goes through acceflow.imaging.nnunet.

    PYTHONPATH=src python benchmarks/nnunet_sts.py --sts ../shared/data/sts/nifti --epochs 3
"""
import argparse
import json
import os
import time
from pathlib import Path

import pandas as pd
import SimpleITK as sitk

from acceflow.imaging import nnunet
from acceflow.imaging.preprocess import preprocess
from acceflow.imaging.segment_model import assign_folds
from acceflow.metrics.segmentation import segmentation_quality

FILES = {"MR": ("MR_T1_image.nii.gz", "MR_T1_mask.nii.gz"), "PET": ("PET_image.nii.gz", "PET_mask.nii.gz")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sts", default="../shared/data/sts/nifti")
    ap.add_argument("--out", default="/tmp/acceflow_gpu_check")
    ap.add_argument("--modality", default="MR", choices=sorted(FILES))
    ap.add_argument("--spacing", type=float, default=2.0)
    ap.add_argument("--configuration", default="3d_fullres")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=250, help="per epoch (nnU-Net's default 250)")
    ap.add_argument("--cpu-iterations", type=int, default=0)
    ap.add_argument("--threads", type=int, default=min(8, os.cpu_count() or 1))
    ap.add_argument("--device", default="auto")
    a = ap.parse_args()
    out = Path(a.out)
    nnunet.set_environment(out / "nnunet", threads=a.threads)
    import torch  # after the nnU-Net environment is set

    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    rows, images, masks = [], [], []
    case_dirs = sorted(p for p in Path(a.sts).glob("STS_*") if (p / FILES[a.modality][0]).is_file())
    if not case_dirs:
        raise SystemExit(f"no STS {a.modality} scans under {a.sts}: pass --sts <folder with STS_*/>")
    folds = assign_folds([p.name for p in case_dirs], a.folds, 42)
    for p in case_dirs:
        d = out / "sts" / "preprocessed" / f"{p.name}__{a.modality}"
        if not (d / "mask.nii.gz").is_file():
            d.mkdir(parents=True, exist_ok=True)
            img, msk = preprocess(sitk.ReadImage(str(p / FILES[a.modality][0])),
                                  sitk.ReadImage(str(p / FILES[a.modality][1])), spacing=[a.spacing] * 3)
            sitk.WriteImage(img, str(d / "image.nii.gz"))
            sitk.WriteImage(msk, str(d / "mask.nii.gz"))
        rows.append({"scan_id": f"{p.name}__{a.modality}", "case_id": p.name, "fold": folds[p.name]})
        images.append(str(d / "image.nii.gz"))
        masks.append(str(d / "mask.nii.gz"))
    prep_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    table = nnunet.write_raw_dataset(pd.DataFrame(rows), images, masks, out / "nnunet" / "nnUNet_raw", a.modality,
                                     1, a.folds)
    summary = nnunet.plan_and_preprocess(table, a.configuration, a.folds, threads=a.threads)
    plan_s = time.perf_counter() - t0
    report = {"modality": a.modality, "cases": len(table), "resample_s": round(prep_s, 1),
              "plan_preprocess_s": round(plan_s, 1), "nnunet": summary["nnunet_version"], "plans": summary["plans"]}
    if a.cpu_iterations:
        cpu_fold = (a.fold + 1) % a.folds
        cpu = nnunet.train_fold(cpu_fold, a.configuration, epochs=1, iterations=a.cpu_iterations, val_iterations=1,
                                device="cpu", augmentation_workers=a.threads - 1)
        report["cpu"] = {k: cpu[k] for k in ("iterations_per_s", "wall_s", "iterations_per_epoch")}
    card = nnunet.train_fold(a.fold, a.configuration, epochs=a.epochs, iterations=a.iterations,
                             device=a.device, augmentation_workers=a.threads - 1)
    report["train"] = {k: card[k] for k in ("device", "epochs_run", "iterations_per_epoch", "wall_s",
                                            "iterations_per_s", "ema_pseudo_dice", "peak_gpu_memory_mb")}
    held_out = table[table["fold"] == a.fold]
    by_scan = dict(zip(pd.DataFrame(rows)["scan_id"], zip(images, masks)))
    model_dir = nnunet.model_folder("nnUNetTrainer", a.configuration)
    t0, quality = time.perf_counter(), []
    for scan in held_out["scan_id"]:
        img_path, msk_path = by_scan[scan]
        predicted = nnunet.predict(sitk.ReadImage(img_path), model_dir, {a.fold: card["checkpoint_sha256"]},
                                   device=a.device)
        quality.append(segmentation_quality(sitk.ReadImage(msk_path), predicted, tolerance_mm=2 * a.spacing))
    q = pd.DataFrame(quality)
    report["out_of_fold"] = {"n": len(q), "dice_mean": round(float(q["dice"].mean()), 4),
                             "dice_median": round(float(q["dice"].median()), 4),
                             "hd95_mm_mean": round(float(q["hd95_mm"].mean()), 2),
                             "predict_s_per_case": round((time.perf_counter() - t0) / max(1, len(q)), 2)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
