"""Train a frozen model on the training cohorts (acceflow.study.training / survival_model)."""
import json

import pandas as pd

from acceflow.study.training import model_features, save_model, train
from acceflow.runtime import log_to
from acceflow.runtime import write_json

with log_to(snakemake.log[0]):
    config = snakemake.params.config
    table = pd.read_csv(snakemake.input.features, sep="\t", dtype={"case_id": str})
    stable = [l.strip() for l in open(snakemake.input.stable) if l.strip()]
    if config["outcome"]["type"] == "survival":
        from acceflow.study.survival_training import train_survival

        features, note = model_features(table, config, stable)
        model, card, predictions, folds = train_survival(table, config, features, note)
    else:
        model, card, predictions, folds = train(table, config, stable, kind=snakemake.params.kind)
    card["model_file"] = "model.joblib"
    card["model_sha256"] = save_model(model, snakemake.output.model)
    write_json(card, snakemake.output.card)
    predictions.to_csv(snakemake.output.predictions, sep="\t", index=False, float_format="%.10g")
    folds.to_csv(snakemake.output.folds, sep="\t", index=False, float_format="%.10g")
    print(json.dumps({k: card[k] for k in ("hyperparameters", "n_nonzero") if k in card}, default=str))
