"""Train a synthetic comparator (TSTR, real + synthetic, real + SMOTE in fold; acceflow.study.synthetic)."""
import pandas as pd

from acceflow.models.persistence import save_model
from acceflow.runtime import log_to
from acceflow.study.synthetic import train_arm

with log_to(snakemake.log[0]):
    table = pd.read_csv(snakemake.input.features, sep="\t", dtype={"case_id": str})
    stable = [l.strip() for l in open(snakemake.input.stable) if l.strip()]
    synthetic = pd.read_csv(snakemake.input.synthetic, sep="\t", dtype={"case_id": str}) \
        if snakemake.input.synthetic else None
    model, card, predictions, folds = train_arm(table, synthetic, snakemake.params.config, stable,
                                                snakemake.wildcards.model)
    card.model_file = "model.skops"
    card.model_sha256 = save_model(model, snakemake.output.model)
    card.write(snakemake.output.card)
    predictions.to_csv(snakemake.output.predictions, sep="\t", index=False, float_format="%.10g")
    folds.to_csv(snakemake.output.folds, sep="\t", index=False, float_format="%.10g")
