"""Kruskal-Wallis site effect per feature, before and after ComBat fitted on the training cohorts."""
import pandas as pd

from acceflow.models.harmonisation import SITE_EFFECT_COLUMNS, site_effect_table
from acceflow.runtime import log_to
from acceflow.study.training import model_features

with log_to(snakemake.log[0]):
    config = snakemake.params.config
    table = pd.read_csv(snakemake.input.features, sep="\t", dtype={"case_id": str, "cohort": str})
    stable = [l.strip() for l in open(snakemake.input.stable) if l.strip()]
    feats, _ = model_features(table, {**config, "model": {**config["model"], "include_clinical": False}}, stable)
    feats = [f for f in feats if pd.api.types.is_numeric_dtype(table[f])]
    if table["cohort"].nunique() >= 2 and feats:
        # the model's candidate features; unseen sites get the 'self' fallback here, as the report
        # shows what ComBat would do to each cohort (the model uses model.harmonisation_unseen)
        out = site_effect_table(table, feats, "cohort", train_sites=config["cohorts"]["train"], unseen="self")
    else:
        print("one site: no site effect to assess")
        out = pd.DataFrame(columns=SITE_EFFECT_COLUMNS)
    out.to_csv(snakemake.output.table, sep="\t", index=False, float_format="%.10g")
