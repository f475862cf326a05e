"""Decision curve (net benefit) of one cohort's predictions (survival: at the horizon, Kaplan-Meier)."""
import pandas as pd

from acceflow.runtime import log_to
from acceflow.study.card import ModelCard
from acceflow.study.task import task_for

with log_to(snakemake.log[0]):
    card = ModelCard.read(snakemake.input.card)
    task = task_for(card)
    preds = pd.read_csv(snakemake.input.predictions, sep="\t", dtype={"case_id": str})
    curve = task.decision_curve(preds, card, task.thresholds(*snakemake.params.thresholds),
                                n_boot=snakemake.params.n_boot, seed=snakemake.params.seed)
    curve.to_csv(snakemake.output.curve, sep="\t", index=False, float_format="%.10g")
