"""Penultimate-layer embeddings of every crop by the frozen deep model (acceflow.study.deep)."""
import json

import pandas as pd
import torch

from acceflow.deep.train import load_model
from acceflow.runtime import log_to
from acceflow.study.deep import embedding_tables

with log_to(snakemake.log[0]):
    torch.set_num_threads(max(1, snakemake.threads))
    card = json.load(open(snakemake.input.card))
    fitted = load_model(snakemake.input.model, card["model_sha256"])
    table = pd.read_csv(snakemake.input.features, sep="\t", dtype={"case_id": str})
    scans = pd.read_csv(snakemake.input.scans, sep="\t", dtype=str, keep_default_na=False).set_index("scan_id")
    features, repeats = embedding_tables(fitted, table, scans, list(snakemake.input.crops), snakemake.params.config)
    features.to_csv(snakemake.output.features, sep="\t", index=False, float_format="%.8g")
    repeats.to_csv(snakemake.output.repeats, sep="\t", index=False, float_format="%.8g")
    print(f"{len(features)} cases x {features.shape[1]} columns; {len(repeats)} repeat rows")
