"""The federated model on its training rows (apparent predictions, as the card says)."""
import pandas as pd

from acceflow.models.persistence import load_model
from acceflow.runtime import log_to
from acceflow.study.card import ModelCard
from acceflow.study.federated import apparent_predictions

with log_to(snakemake.log[0]):
    card = ModelCard.read(snakemake.input.card)
    model = load_model(snakemake.input.model, card.model_sha256)
    table = pd.read_csv(snakemake.input.features, sep="\t", dtype={"case_id": str})
    apparent_predictions(table, model, card, snakemake.params.config).to_csv(
        snakemake.output.predictions, sep="\t", index=False, float_format="%.10g")
