"""Segmentation speed on this machine: training iterations per second and inference seconds per case.

Trains the study's network (segmentation settings of a study config, default
config/studies/sts_segmentation.yaml) on the first N preprocessed scans of one modality for a few
iterations and segments each of them, on one CPU thread (or the device the config names).
Needs the study's preprocessed images (run the study once, or at least its preprocess rules):

    PYTHONPATH=src python benchmarks/segmentation.py --results results/sts_segmentation --modality MR

Prints wall-clock and CPU-time figures (on a shared machine the CPU time of this process is the
fairer figure). Prints iterations/s (optimiser steps of batch_size x samples_per_case patches, validation
excluded) and seconds per case of sliding-window inference (+ largest component) and the device.
"""
import argparse
import glob
import os
import time
import warnings

import torch
import yaml

from acceflow.imaging.segment_model import SegmentationCase, infer_mask, planned_settings, train_segmenter
from acceflow.io.images import read_image
from acceflow.study.settings import section_settings

warnings.simplefilter("ignore", FutureWarning)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="config/studies/sts_segmentation.yaml")
    ap.add_argument("--results", help="results folder with preprocessed/ (default: the config's)")
    ap.add_argument("--modality", default="MR")
    ap.add_argument("--cases", type=int, default=8)
    ap.add_argument("--iterations", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", help="cpu, cuda, auto (default: the config's segmentation.device)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    config = yaml.safe_load(open(args.config))
    settings = section_settings("segmentation", config.get("segmentation"))
    settings.update(iterations=args.iterations, validation_fraction=0, validation_interval=args.iterations)
    if args.device:
        settings["device"] = args.device
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    results = args.results or config["results"]
    dirs = sorted(glob.glob(f"{results}/preprocessed/*__{args.modality}"))[: args.cases]
    if not dirs:
        raise SystemExit(f"no preprocessed {args.modality} scans under {results}/preprocessed: run the study first")
    cases = [SegmentationCase(d.rsplit("/", 1)[1], read_image(f"{d}/image.nii.gz"), read_image(f"{d}/mask.nii.gz"))
             for d in dirs]
    cpu0 = time.process_time()
    model, card = train_segmenter(cases, settings, seed=config.get("seed", 42), log=lambda *_: None)
    train_cpu = time.process_time() - cpu0
    start, cpu0 = time.perf_counter(), time.process_time()
    settings = planned_settings(settings, card)  # the planned patch size and target spacing
    for c in cases:
        infer_mask(model, c.image, settings)
    per_case = (time.perf_counter() - start) / len(cases)
    per_case_cpu = (time.process_time() - cpu0) / len(cases)
    sizes = [c.image.GetSize() for c in cases]
    print(f"device {card['device']['device']} ({args.threads} thread(s), torch {torch.__version__}); "
          f"network {settings['network']} {settings['channels']}, patch {settings['patch_size']}, "
          f"batch {settings['batch_size']} x {settings['samples_per_case']} patches")
    print(f"{args.modality}: {len(cases)} cases, grids {sizes[0]} .. (voxels)")
    print(f"training: {card['iterations_per_s']:.2f} iterations/s ({card['iterations_run']} iterations, "
          f"{card['train_seconds']:.1f} s wall incl. caching; {train_cpu:.1f} s CPU time of this process, "
          f"i.e. {card['iterations_run'] / train_cpu:.2f} iterations per CPU-second)")
    print(f"inference: {per_case:.2f} s/case wall, {per_case_cpu:.2f} CPU-s/case (sliding window, overlap "
          f"{settings['overlap']}, largest component)")
    if card["device"]["device"].startswith("cuda"):
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
