"""The frozen federated model (skops), its card and rounds.tsv, from the server's files only."""
import json

from acceflow.models.persistence import save_model
from acceflow.runtime import log_to
from acceflow.study.federated import final_model

with log_to(snakemake.log[0]):
    model, card, rounds = final_model(json.load(open(snakemake.input.standardisation)),
                                      [json.load(open(f)) for f in snakemake.input.rounds], snakemake.params.config,
                                      [json.load(open(f)) for f in snakemake.input.baselines])
    card.model_file = "model.skops"
    card.model_sha256 = save_model(model, snakemake.output.model)
    card.write(snakemake.output.card)
    rounds.to_csv(snakemake.output.rounds, sep="\t", index=False, float_format="%.10g")
