"""Train one nnU-Net fold of one modality (acceflow.imaging.nnunet.train_fold) and write its card: the
checkpoint's SHA-256 (checked before every load), the plans' SHA-256, nnU-Net's version, run time."""
import json
import os

import torch

from acceflow.device import seed_everything
from acceflow.imaging.nnunet import set_environment, train_fold
from acceflow.runtime import log_to

if __name__ == "__main__":  # nnU-Net spawns worker processes, which re-import this script
    with log_to(snakemake.log[0]):
        torch.set_num_threads(max(1, snakemake.threads))
        set_environment(snakemake.params.root, threads=snakemake.threads)
        seed_everything(snakemake.params.seed, deterministic=False)
        nn, fold = snakemake.params.nnunet, int(snakemake.wildcards.fold[len("fold"):])
        summary = json.loads(open(snakemake.input.summary).read())
        card = train_fold(fold, nn["configuration"], nn["trainer"], nn["epochs"], nn["iterations"],
                          nn["val_iterations"], device=snakemake.params.device,
                          augmentation_workers=snakemake.threads - 1)
        card.update(backend="nnunet", modality=snakemake.wildcards.modality, fold=snakemake.wildcards.fold,
                    nnunet_version=summary["nnunet_version"], plans_sha256=summary["plans_sha256"],
                    plans=summary["plans"], settings={"network": f"nnU-Net {nn['configuration']}", **nn},
                    iterations_run=card["epochs_run"] * card["iterations_per_epoch"], seed=snakemake.params.seed)
        # relative to the modality's nnU-Net folder (the card stays valid when the results folder moves)
        card["model_file"] = os.path.relpath(card.pop("checkpoint"), os.path.abspath(snakemake.params.root))
        print(json.dumps(card, indent=2))
        with open(snakemake.output.card, "w") as fh:
            json.dump(card, fh, indent=2)
