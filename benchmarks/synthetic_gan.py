"""Speed and memory of the lesion generators (acceflow.deep.synthetic): iterations/s, peak memory, wall time.

For each generator (wgan_gp, cgan) and crop edge (16, 32 voxels) the real training loop of
:func:`acceflow.deep.synthetic.train_generator` runs on two-channel crops (image + lesion mask) of
random spheres; one iteration = ``n_critic`` critic steps (each with the gradient penalty) + one
generator step, batch ``--batch``. Speed does not depend on the values. Devices: the CPU always
(``--threads`` threads); on CUDA, when torch sees a GPU, with and without mixed precision.

Each configuration runs in its own Python process so that its peak memory is its own: on the CPU the
process's peak resident set size (``ru_maxrss``; the process after ``import torch`` and the data is
shown as ``baseline_rss_mib``), on CUDA ``torch.cuda.max_memory_allocated``. One warm-up iteration
(allocator, cuDNN autotuning) is not timed; ``seconds_per_100`` is the timed iterations' wall time
scaled to 100 iterations. One JSON line per configuration, the last line a one-line summary.

    PYTHONPATH=src nice -n 19 python benchmarks/synthetic_gan.py                 # 16 and 32, both kinds
    PYTHONPATH=src python benchmarks/synthetic_gan.py --crops 32 --kinds cgan --iterations 50
"""
import argparse
import json
import resource
import subprocess
import sys


def crops(n, size, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    g = np.indices((size,) * 3) - (size - 1) / 2
    r = rng.uniform(size / 5, size / 3, n)
    masks = (np.sqrt((g ** 2).sum(0))[None] <= r[:, None, None, None]).astype(np.float32)
    labels = np.repeat([0, 1], n // 2)
    return (100 * masks + rng.normal(0, 5, masks.shape)).astype(np.float32), masks, labels


def one(kind, crop, device, amp, iterations, batch, threads):
    """Time one configuration in this process; returns the JSON row."""
    import torch

    from acceflow.deep.synthetic import GanSettings, train_generator

    torch.set_num_threads(threads)
    x, m, y = crops(64, crop)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    s = GanSettings(kind=kind, iterations=iterations, batch_size=batch, device=device, amp=amp)
    train_generator(x, m, y, GanSettings(**{**s.__dict__, "iterations": 1}))  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = train_generator(x, m, y, s)  # float(loss) each iteration synchronises CUDA
    row = {"kind": kind, "crop": crop, "device": device, "amp": amp, "batch": batch, "n_critic": s.n_critic,
           "threads": threads if device == "cpu" else None, "iterations": iterations,
           "seconds": round(t.seconds, 3), "iterations_per_s": round(iterations / t.seconds, 3),
           "seconds_per_100": round(100 * t.seconds / iterations, 1)}
    if device == "cuda":
        row["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
        row["gpu"] = torch.cuda.get_device_name()
    row["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    row["baseline_rss_mib"] = round(baseline, 1)
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kinds", nargs="+", default=["wgan_gp", "cgan"], choices=["wgan_gp", "cgan"])
    ap.add_argument("--crops", nargs="+", type=int, default=[16, 32])
    ap.add_argument("--iterations", type=int, default=20, help="timed iterations per configuration")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    ap.add_argument("--one", nargs=4, metavar=("KIND", "CROP", "DEVICE", "AMP"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        kind, crop, device, amp = args.one
        print(json.dumps(one(kind, int(crop), device, amp == "1", args.iterations, args.batch, args.threads)))
        return
    import torch

    devices = [("cpu", False)] + ([("cuda", False), ("cuda", True)] if torch.cuda.is_available() else [])
    rows = []
    for kind in args.kinds:
        for crop in args.crops:
            for device, amp in devices:
                cmd = [sys.executable, __file__, "--one", kind, str(crop), device, "1" if amp else "0",
                       "--iterations", str(args.iterations), "--batch", str(args.batch), "--threads", str(args.threads)]
                out = subprocess.run(cmd, capture_output=True, text=True)
                if out.returncode:
                    print(json.dumps({"kind": kind, "crop": crop, "device": device, "amp": amp,
                                      "error": out.stderr.strip().splitlines()[-1:]}), flush=True)
                    continue
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(json.dumps(rows[-1]), flush=True)
    print("summary: " + "; ".join(
        f"{r['kind']} {r['crop']}³ {r['device']}{'+amp' if r['amp'] else ''}: {r['iterations_per_s']:.2f} it/s, "
        f"{r['seconds_per_100']:.0f} s/100 it, peak {r.get('peak_cuda_mib', r['peak_rss_mib']):.0f} MiB" for r in rows))


if __name__ == "__main__":
    main()
