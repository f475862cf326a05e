"""Train the frozen model on the training cohorts (acceflow.clinical.model.train)."""
import json

import pandas as pd

from acceflow.clinical.model import save_model, train
from acceflow.config import log_to

with log_to(snakemake.log[0]):
    table = pd.read_csv(snakemake.input.features, sep="\t", dtype={"case_id": str})
    stable = [l.strip() for l in open(snakemake.input.stable) if l.strip()]
    model, card, predictions, folds = train(table, snakemake.params.config, stable, kind=snakemake.params.kind)
    card["model_file"] = "model.joblib"
    card["model_sha256"] = save_model(model, snakemake.output.model)
    with open(snakemake.output.card, "w") as fh:
        json.dump(card, fh, indent=2, sort_keys=True)
    predictions.to_csv(snakemake.output.predictions, sep="\t", index=False)
    folds.to_csv(snakemake.output.folds, sep="\t", index=False)
    print(json.dumps({k: card[k] for k in ("hyperparameters", "n_nonzero", "cv_auc_mean", "apparent_auc")}))
