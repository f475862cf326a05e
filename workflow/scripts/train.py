"""Train a frozen model on the training cohorts (acceflow.study.task: binary or survival)."""
import json

import pandas as pd

from acceflow.models.persistence import save_model
from acceflow.runtime import log_to
from acceflow.study.task import task_for

with log_to(snakemake.log[0]):
    config = snakemake.params.config
    table = pd.read_csv(snakemake.input.features, sep="\t", dtype={"case_id": str})
    stable = [l.strip() for l in open(snakemake.input.stable) if l.strip()]
    model, card, predictions, folds = task_for(config).train(table, config, stable, kind=snakemake.params.kind)
    card.model_file = "model.skops"
    card.model_sha256 = save_model(model, snakemake.output.model)
    card.write(snakemake.output.card)
    predictions.to_csv(snakemake.output.predictions, sep="\t", index=False, float_format="%.10g")
    folds.to_csv(snakemake.output.folds, sep="\t", index=False, float_format="%.10g")
    print(json.dumps({k: card[k] for k in ("hyperparameters", "n_nonzero") if k in card}, default=str))
