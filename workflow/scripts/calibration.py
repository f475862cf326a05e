"""Calibration of one cohort's predictions (acceflow.study.task; survival: at the horizon)."""
import pandas as pd

from acceflow.runtime import log_to, write_json
from acceflow.study.card import ModelCard
from acceflow.study.task import task_for

with log_to(snakemake.log[0]):
    card = ModelCard.read(snakemake.input.card)
    preds = pd.read_csv(snakemake.input.predictions, sep="\t", dtype={"case_id": str})
    summary, bins, curve = task_for(card).calibration(preds, card, bins=snakemake.params.bins,
                                                      n_boot=snakemake.params.n_boot, seed=snakemake.params.seed)
    write_json(summary, snakemake.output.calibration)
    curve.to_csv(snakemake.output.curve, sep="\t", index=False, float_format="%.10g")
    bins.to_csv(snakemake.output.bins, sep="\t", index=False, float_format="%.10g")
