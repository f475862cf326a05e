"""Grouped explanations of one frozen model (acceflow.study.explanations): correlation clusters, grouped SHAP,
grouped permutation importance per cohort, odds / hazard ratios per SD from an unpenalised refit."""
import pandas as pd

from acceflow.models.persistence import load_model
from acceflow.runtime import log_to
from acceflow.study.card import ModelCard
from acceflow.study.explanations import explain_model

with log_to(snakemake.log[0]):
    p = snakemake.params
    card = ModelCard.read(snakemake.input.card)
    model = load_model(snakemake.input.model, card["model_sha256"])
    table = pd.read_csv(snakemake.input.features, sep="\t", dtype={"case_id": str})
    tables = explain_model(model, card, table, p.cohorts, p.settings, seed=p.seed, n_repeats=p.repeats, alpha=p.alpha)
    for name, frame in tables.items():
        frame.to_csv(snakemake.output[name.lower()], sep="\t", index=False, float_format="%.10g")
    print(tables["SHAP_SUMMARY"].head(10).to_string())
