"""Discrimination of one cohort's predictions.

Binary: AUC with DeLong and bootstrap CIs, Brier, log loss, and sensitivity, specificity, PPV and
NPV at the threshold fixed on the training data. Survival: Harrell's and Uno's C with CIs,
time-dependent AUC, hazard ratio per SD, log-rank test of the training-median risk groups.
"""
import json

import pandas as pd

from acceflow.metrics.discrimination import bootstrap_auc_ci, cohort_metrics
from acceflow.metrics.validation import threshold_metrics
from acceflow.runtime import log_to
from acceflow.runtime import write_json


def binary_metrics(preds, card, p):
    y, prob = preds["outcome"].to_numpy(), preds["probability"].to_numpy()
    metrics = cohort_metrics(y, prob, alpha=p.alpha)
    _, low, high = bootstrap_auc_ci(y, prob, n_boot=p.n_bootstrap, alpha=p.alpha, seed=p.seed, stratified=True)
    metrics.update(auc_bootstrap_ci_low=low, auc_bootstrap_ci_high=high,
                   auc_bootstrap_method=f"stratified percentile bootstrap, {p.n_bootstrap} replicates")
    at = threshold_metrics(y, prob, card["threshold"]["value"], alpha=p.alpha)
    metrics.update({f"at_threshold_{k}": v for k, v in at.items()})
    metrics["threshold_method"] = card["threshold"]["method"]
    return metrics


with log_to(snakemake.log[0]):
    cohort, p = snakemake.wildcards.cohort, snakemake.params
    card = json.load(open(snakemake.input.card))
    preds = pd.read_csv(snakemake.input.predictions, sep="\t", dtype={"case_id": str})
    if card["outcome"]["type"] == "survival":
        from acceflow.study.survival_training import survival_cohort_metrics

        metrics = survival_cohort_metrics(preds, card, alpha=p.alpha, n_boot=min(p.n_bootstrap, 1000), seed=p.seed)
    else:
        metrics = binary_metrics(preds, card, p)
    metrics["model"] = card["model"]
    metrics["cohort"] = cohort
    metrics["validation"] = ("internal (out-of-fold): " + card["internal_validation"] if cohort == "train"
                             else "external (frozen model)")
    if cohort == "train":
        metrics["apparent_auc" if "apparent_auc" in card else "apparent_c_index"] = card.get(
            "apparent_auc", card.get("apparent_c_index"))
    write_json(metrics, snakemake.output.metrics)
