"""Discrimination of one cohort's predictions (acceflow.study.task).

Binary: AUC with DeLong and bootstrap CIs, Brier, log loss, and sensitivity, specificity, PPV and
NPV at the threshold fixed on the training data. Survival: Harrell's and Uno's C with CIs,
time-dependent AUC, hazard ratio per SD, log-rank test of the training-median risk groups.
"""
import pandas as pd

from acceflow.runtime import log_to, write_json
from acceflow.study.card import ModelCard
from acceflow.study.task import task_for

with log_to(snakemake.log[0]):
    p = snakemake.params
    card = ModelCard.read(snakemake.input.card)
    preds = pd.read_csv(snakemake.input.predictions, sep="\t", dtype={"case_id": str})
    task = task_for(card)
    write_json(task.metrics(preds, card, snakemake.wildcards.cohort, alpha=p.alpha, n_bootstrap=p.n_bootstrap,
                            seed=p.seed), snakemake.output.metrics)
    task.discrimination_curve(preds, card).to_csv(snakemake.output.curve, sep="\t", index=False,
                                                  float_format="%.10g")
