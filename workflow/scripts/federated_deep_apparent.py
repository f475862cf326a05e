"""The federated network on its training cohorts' cases (apparent predictions, as the card says)."""
import pandas as pd
import torch

from acceflow.deep.train import load_model
from acceflow.runtime import log_to
from acceflow.study.card import ModelCard
from acceflow.study.deep import case_crops
from acceflow.study.federated_deep import apparent_predictions

with log_to(snakemake.log[0]):
    torch.set_num_threads(max(1, snakemake.threads))
    card = ModelCard.read(snakemake.input.card)
    fitted = load_model(snakemake.input.model, card["model_sha256"])
    table = pd.read_csv(snakemake.input.features, sep="\t", dtype={"case_id": str})
    scans = pd.read_csv(snakemake.input.scans, sep="\t", dtype=str, keep_default_na=False).set_index("scan_id")
    apparent_predictions(fitted, card, table, case_crops(scans, list(snakemake.input.crops)),
                         snakemake.params.config, log=print).to_csv(
        snakemake.output.predictions, sep="\t", index=False, float_format="%.10g")
