"""The frozen federated network (weights only), its card and rounds.tsv, from the server's files only."""
import json

from acceflow.deep.federated import load_blob
from acceflow.deep.train import save_model
from acceflow.runtime import log_to
from acceflow.study.federated_deep import final_model

with log_to(snakemake.log[0]):
    fitted, card, rounds = final_model(json.load(open(snakemake.input.standardisation)),
                                       [load_blob(f, "global") for f in snakemake.input.rounds],
                                       snakemake.params.config)
    card.model_file = "model.pt"
    card.model_sha256 = save_model(fitted, snakemake.output.model)
    card.write(snakemake.output.card)
    rounds.to_csv(snakemake.output.rounds, sep="\t", index=False, float_format="%.10g")
