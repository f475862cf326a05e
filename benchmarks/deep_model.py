"""Speed of the deep biomarker: training samples per second and inference seconds per case.

Times the real training step of acceflow.deep (MONAI network, forward + backward + AdamW step,
batch of crops) and inference (forward, batch), on CPU and, when torch sees CUDA, on the GPU with
and without mixed precision (float16 autocast + gradient scaler). Inputs are random crops of the
configured shape (speed does not depend on the values).

    PYTHONPATH=src python benchmarks/deep_model.py                      # demo_deep settings
    PYTHONPATH=src python benchmarks/deep_model.py --network densenet121 --crop 64 --channels 2
"""
import argparse
import json
import time

import numpy as np
import torch

from acceflow.deep.networks import build_network
from acceflow.device import autocast, describe, grad_scaler, seed_everything


def bench(network, crop, channels, fusion, batch, device, amp, steps, threads):
    torch.set_num_threads(threads)
    seed_everything(0)
    model = build_network(network, channels, fusion).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = grad_scaler(device, amp)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    x = torch.randn(batch, channels, crop, crop, crop, device=device)
    y = torch.randint(0, 2, (batch, 1), device=device).float()

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast(device, amp):
            out = model(x)
        loss = loss_fn(out.float(), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model.train()
    step()  # warm-up (allocation, cuDNN autotune)
    sync()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    train_s = time.perf_counter() - t
    model.eval()
    with torch.no_grad(), autocast(device, amp):
        model(x)
        sync()
        t = time.perf_counter()
        for _ in range(steps):
            model(x)
        sync()
    infer_s = time.perf_counter() - t
    return {"device": str(device), "mixed_precision": amp, "network": network, "fusion": fusion,
            "crop_voxels": crop, "channels": channels, "batch": batch, "threads": threads, "steps": steps,
            "train_samples_per_s": round(steps * batch / train_s, 2),
            "inference_s_per_case": round(infer_s / (steps * batch), 5),
            "peak_gpu_memory_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
            if device.type == "cuda" else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--network", default="densenet121")
    ap.add_argument("--crop", type=int, default=32)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--fusion", default="early")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    rows = [bench(a.network, a.crop, a.channels, a.fusion, a.batch, torch.device("cpu"), False, a.steps, a.threads)]
    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        for amp in (False, True):
            rows.append(bench(a.network, a.crop, a.channels, a.fusion, a.batch, gpu, amp, a.steps * 4, a.threads))
        rows[-1]["gpu"] = describe(gpu).get("gpu_name")
    else:
        print("# no CUDA device: CPU only")
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
