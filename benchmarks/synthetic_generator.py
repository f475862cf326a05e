"""Speed of the lesion generators (acceflow.deep.synthetic): training iterations per second.

One iteration = n_critic critic steps (with the gradient penalty) + one generator step, on random
spheres of the crop size (speed does not depend on the values). CPU always; on CUDA with and without
mixed precision when torch sees a GPU.

    PYTHONPATH=src python benchmarks/synthetic_generator.py                     # 32³ crops, wgan_gp
    PYTHONPATH=src python benchmarks/synthetic_generator.py --kind cgan --crop 16 --iterations 20
"""
import argparse
import json

import numpy as np
import torch

from acceflow.deep.synthetic import GanSettings, train_generator


def crops(n, size, seed=0):
    rng = np.random.default_rng(seed)
    g = np.indices((size,) * 3) - (size - 1) / 2
    r = rng.uniform(size / 5, size / 3, n)
    masks = (np.sqrt((g ** 2).sum(0))[None] <= r[:, None, None, None]).astype(np.float32)
    return (100 * masks + rng.normal(0, 5, masks.shape)).astype(np.float32), masks, rng.integers(0, 2, n)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kind", default="wgan_gp", choices=["wgan_gp", "cgan"])
    ap.add_argument("--crop", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x, m, y = crops(64, args.crop)
    y[:32] = 0
    y[32:] = 1
    runs = [("cpu", False)] + ([("cuda", False), ("cuda", True)] if torch.cuda.is_available() else [])
    for device, amp in runs:
        s = GanSettings(kind=args.kind, iterations=args.iterations, batch_size=args.batch, device=device, amp=amp)
        train_generator(x, m, y, GanSettings(**{**s.__dict__, "iterations": 1}))  # warm-up (cuDNN, allocator)
        t = train_generator(x, m, y, s)
        print(json.dumps({"kind": args.kind, "device": device, "amp": amp, "crop": args.crop, "batch": args.batch,
                          "n_critic": s.n_critic, "iterations": args.iterations, "seconds": round(t.seconds, 3),
                          "iterations_per_s": round(args.iterations / t.seconds, 3)}))


if __name__ == "__main__":
    main()
