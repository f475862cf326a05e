"""Apply a frozen model to one external cohort."""
import json

import pandas as pd

from acceflow.study.training import load_model, predict_cohort
from acceflow.runtime import log_to

with log_to(snakemake.log[0]):
    card = json.load(open(snakemake.input.card))
    model = load_model(snakemake.input.model, card["model_sha256"])
    table = pd.read_csv(snakemake.input.features, sep="\t", dtype={"case_id": str})
    if card["outcome"]["type"] == "survival":
        from acceflow.study.survival_training import predict_survival_cohort as predict
    else:
        predict = predict_cohort
    predict(model, card, table, snakemake.wildcards.cohort).to_csv(snakemake.output.predictions, sep="\t",
                                                                   index=False, float_format="%.10g")
