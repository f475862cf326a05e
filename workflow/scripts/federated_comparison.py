"""Federated vs central (pooled) vs local-only models per external cohort (paired DeLong); coefficients."""
import pandas as pd

from acceflow.models.persistence import load_model
from acceflow.runtime import log_to, write_json
from acceflow.study.card import ModelCard
from acceflow.study.federated import compare_federated

with log_to(snakemake.log[0]):
    card = ModelCard.read(snakemake.input.card)
    model = load_model(snakemake.input.model, card.model_sha256)
    table = pd.read_csv(snakemake.input.features, sep="\t", dtype={"case_id": str})
    comparison, coefficients, summary = compare_federated(table, model, card, snakemake.params.config,
                                                          alpha=snakemake.params.alpha)
    comparison.to_csv(snakemake.output.comparison, sep="\t", index=False, float_format="%.10g")
    coefficients.to_csv(snakemake.output.coefficients, sep="\t", index=False, float_format="%.10g")
    write_json(summary, snakemake.output.summary)
