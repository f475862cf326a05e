"""Cost of deep.dimensions: peak memory and throughput of 3D, 2.5D and 2D networks at the same crop.

For each dimension (and device: CPU, and CUDA when torch sees it) a fresh process builds the
network of acceflow.deep (``build_network`` with the dimension's settings), makes its input from
the same crops with the library's own slicing (``acceflow.deep.slices.slice_input``: the
``--slices`` largest axial lesion sections, 2.5D with ``--neighbours`` slices per modality), and
times the real training step (forward, binary cross-entropy, backward, AdamW step; with
``--multitask`` also the decoder's Dice + CE) and inference (forward, no gradient), in crops
(cases) per second: a 2D case is its ``--slices`` slices, a 3D case its crop.

Peak memory: CUDA, ``torch.cuda.max_memory_allocated`` (tensors only); CPU, the process's peak
resident set (``resource.getrusage`` ru_maxrss) and its rise over the resident set after importing
torch and MONAI (one process per configuration, so peaks do not carry over).

    PYTHONPATH=src python benchmarks/deep_dimensions.py                        # resnet10, 1 x 32^3 crops
    PYTHONPATH=src python benchmarks/deep_dimensions.py --network densenet121 --crop 64 --channels 2

Prints one table row per configuration and a last line ``deep_dimensions: ...`` (JSON rows with
``--json``).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time


def _rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes


def child(a):
    """One configuration in this process; prints one JSON line."""
    import numpy as np
    import torch

    from acceflow.device import autocast, grad_scaler, seed_everything
    from acceflow.deep.networks import build_network
    from acceflow.deep.slices import slice_input

    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    amp = device.type == "cuda" and a.amp
    base_rss = _rss_mb()
    seed_everything(0)
    rng = np.random.default_rng(0)
    n, c, s = a.batch, a.channels, a.crop
    X = rng.normal(size=(n, c, s, s, s)).astype(np.float32)
    masks = np.zeros((n, s, s, s), np.uint8)
    lo, hi = s // 2 - max(2, s // 8), s // 2 + max(2, s // 8)  # a lesion spanning s/4 axial slices
    masks[:, lo:hi, lo:hi, lo:hi] = 1
    Xin = slice_input(X, masks, a.dimensions, a.slices, a.neighbours)
    model = build_network(a.network, c, "early", dimensions=a.dimensions, slices=a.slices,
                          neighbours=a.neighbours, multitask=a.multitask).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = grad_scaler(device, amp)
    bce = torch.nn.BCEWithLogitsLoss()
    x = torch.as_tensor(Xin, device=device)
    y = torch.tensor([[i % 2] for i in range(n)], dtype=torch.float32, device=device)
    if a.multitask:
        from acceflow.deep.multitask import segmentation_loss
        from acceflow.deep.slices import slice_masks

        seg_fn = segmentation_loss()
        if a.dimensions == "3d":
            seg_target = torch.as_tensor(masks[:, None], device=device).float()
        else:
            sm = slice_masks(masks, a.slices).reshape(-1, s, s)
            seg_target = torch.as_tensor(sm[(sm != 255).reshape(len(sm), -1).any(1)][:, None], device=device).float()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast(device, amp):
            if a.multitask:
                out, seg = model.forward_multitask(x)
            else:
                out = model(x)
        loss = bce(out.float(), y)
        if a.multitask:
            loss = loss + seg_fn(seg.float(), seg_target)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model.train()
    step()  # warm-up (allocation, cuDNN autotune)
    sync()
    t = time.perf_counter()
    for _ in range(a.steps):
        step()
    sync()
    train_s = time.perf_counter() - t
    model.eval()
    with torch.no_grad(), autocast(device, amp):
        model(x)
        sync()
        t = time.perf_counter()
        for _ in range(a.steps):
            model(x)
        sync()
        infer_s = time.perf_counter() - t
    row = {"dimensions": a.dimensions, "multitask": a.multitask, "device": str(device), "amp": amp,
           "network": a.network, "crop": f"{c}x{s}^3", "input": "x".join(map(str, Xin.shape[1:])),
           "slices_per_case": 1 if a.dimensions == "3d" else a.slices,
           "parameters": sum(p.numel() for p in model.parameters()),
           "train_crops_per_s": a.steps * n / train_s, "infer_crops_per_s": a.steps * n / infer_s}
    if device.type == "cuda":
        row["peak_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        row["peak_kind"] = "cuda max_memory_allocated"
    else:
        row["peak_mb"] = _rss_mb()
        row["peak_rise_mb"] = _rss_mb() - base_rss
        row["peak_kind"] = "peak RSS"
    print("ROW " + json.dumps(row))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--network", default="resnet10")
    p.add_argument("--crop", type=int, default=32)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--slices", type=int, default=5, help="deep.slices_2d")
    p.add_argument("--neighbours", type=int, default=3, help="deep.slices_2_5d")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--multitask", action="store_true")
    p.add_argument("--no-amp", dest="amp", action="store_false")
    p.add_argument("--devices", default="auto", help="auto (cpu, and cuda when present), cpu, cuda")
    p.add_argument("--json", action="store_true")
    p.add_argument("--dimensions", default=None, help=argparse.SUPPRESS)  # child process
    p.add_argument("--device", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.dimensions:
        return child(a)
    if a.devices == "auto":
        import torch

        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    else:
        devices = a.devices.split(",")
    rows = []
    passthrough = [arg for arg in sys.argv[1:] if not arg.startswith("--devices") and arg != "--json"]
    for device in devices:
        for dims in ("3d", "2.5d", "2d"):
            out = subprocess.run([sys.executable, __file__, *passthrough, "--dimensions", dims, "--device", device],
                                 capture_output=True, text=True, env=os.environ)
            line = [x for x in out.stdout.splitlines() if x.startswith("ROW ")]
            if out.returncode or not line:
                print(out.stderr[-2000:], file=sys.stderr)
                raise SystemExit(f"{dims} on {device} failed (exit {out.returncode})")
            rows.append(json.loads(line[0][4:]))
    head = f"{'device':<7} {'dims':<5} {'input/case':<14} {'params':>9} {'train crops/s':>13} {'infer crops/s':>13} " \
           f"{'peak MB':>8} {'rise MB':>8}"
    print(head)
    for r in rows:
        print(f"{r['device']:<7} {r['dimensions']:<5} {r['input']:<14} {r['parameters']:>9} "
              f"{r['train_crops_per_s']:>13.2f} {r['infer_crops_per_s']:>13.2f} {r['peak_mb']:>8.0f} "
              f"{r.get('peak_rise_mb', float('nan')):>8.0f}")
    if a.json:
        print(json.dumps(rows))
    print("deep_dimensions: " + "; ".join(
        f"{r['device']} {r['dimensions']} train {r['train_crops_per_s']:.2f}/s infer {r['infer_crops_per_s']:.2f}/s "
        f"peak {r['peak_mb']:.0f} MB" for r in rows)
          + f" ({a.network}, {a.channels}x{a.crop}^3 crop, batch {a.batch}, {a.slices} slices"
          + (", multi-task" if a.multitask else "") + ")")


if __name__ == "__main__":
    main()
