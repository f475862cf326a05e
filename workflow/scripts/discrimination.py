"""AUC with DeLong CI, Brier score and log loss of one cohort's predictions."""
import json

import pandas as pd

from acceflow.clinical.discrimination import cohort_metrics
from acceflow.config import log_to
from acceflow.report.provenance import write_json

with log_to(snakemake.log[0]):
    cohort = snakemake.wildcards.cohort
    card = json.load(open(snakemake.input.card))
    preds = pd.read_csv(snakemake.input.predictions, sep="\t", dtype={"case_id": str})
    metrics = cohort_metrics(preds["outcome"], preds["probability"], alpha=snakemake.params.alpha)
    metrics["cohort"] = cohort
    metrics["validation"] = ("internal (out-of-fold): " + card["internal_validation"] if cohort == "train"
                             else "external (frozen model)")
    if cohort == "train":
        metrics["apparent_auc"] = card["apparent_auc"]
    write_json(metrics, snakemake.output.metrics)
