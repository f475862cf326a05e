"""Train the image generator on the generator-training cases' lesion crops (acceflow.study.synthetic.train_gan).

A diverging generator (NaN / infinite loss) stops the job: its losses so far are written to the log
(the arm is excluded from the run; lower synthetic.gan.learning_rate or raise gp_weight)."""
import json

import pandas as pd
import torch

from acceflow.deep.synthetic import GeneratorDiverged, save_generators
from acceflow.runtime import log_to
from acceflow.study.deep import case_crops
from acceflow.study.synthetic import train_gan

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    table = pd.read_csv(snakemake.input.features, sep="\t", dtype={"case_id": str})
    scans = pd.read_csv(snakemake.input.scans, sep="\t", dtype=str, keep_default_na=False).set_index("scan_id")
    try:
        split, generators, history, card = train_gan(table, case_crops(scans, list(snakemake.input.crops)),
                                                     snakemake.params.config, log=lambda line: print(line, flush=True))
    except GeneratorDiverged as exc:
        print(pd.DataFrame(exc.history).tail(50).to_csv(sep="\t", index=False), flush=True)
        raise
    split.to_csv(snakemake.output.split, sep="\t", index=False)
    save_generators(generators, snakemake.output.generator)
    history.to_csv(snakemake.output.history, sep="\t", index=False, float_format="%.10g")
    with open(snakemake.output.card, "w") as fh:
        json.dump(card, fh, indent=2)
    print(f"{card['generator']}: {card['n_training_crops']} crops, {card['seconds']:.1f} s "
          f"({card['iterations_per_second']:.2f} it/s) on {card['device']}", flush=True)
