"""Permutation importance (drop in AUC) of the frozen primary model on one external cohort."""
import pandas as pd

from acceflow.io.manifest import binary_outcome
from acceflow.models.explain import permutation_importance_auc
from acceflow.models.persistence import load_model
from acceflow.runtime import log_to
from acceflow.study.card import ModelCard
from acceflow.study.training import batch_column, cohort_design

with log_to(snakemake.log[0]):
    card = ModelCard.read(snakemake.input.card)
    model = load_model(snakemake.input.model, card["model_sha256"])
    table = pd.read_csv(snakemake.input.features, sep="\t", dtype={"case_id": str})
    rows, X = cohort_design(card, table, snakemake.wildcards.cohort)
    y = binary_outcome(rows[card["outcome"]["column"]], card["outcome"]["positive"]).astype(int).to_numpy()
    batch = batch_column(card)  # ComBat's batch column goes to the model unpermuted
    fixed = X[[batch]] if batch else None
    features = X.drop(columns=[batch]) if batch else X
    permutation_importance_auc(model, features, y, n_repeats=snakemake.params.repeats, seed=snakemake.params.seed,
                               fixed=fixed).to_csv(snakemake.output.importance, sep="\t", index=False,
                                                   float_format="%.10g")
