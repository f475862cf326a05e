"""Coefficients of the primary model with bootstrap CIs and selection frequencies.

The bootstrap refits the pipeline with the hyper-parameters chosen on all training cases held
fixed (the chosen C; imputation, scaling and the L1 fit are refitted on every replicate), which
keeps the cost at one fit per replicate.
"""
import pandas as pd
from sklearn.base import clone

from acceflow.models.explain import bootstrap_coefficients
from acceflow.runtime import log_to
from acceflow.study.training import training_data

with log_to(snakemake.log[0]):
    config = snakemake.params.config
    table = pd.read_csv(snakemake.input.features, sep="\t", dtype={"case_id": str})
    stable = [l.strip() for l in open(snakemake.input.stable) if l.strip()]
    _, X, y, _, _, make = training_data(table, config, stable)
    chosen = make().fit(X, y)
    fixed = getattr(chosen, "best_estimator_", chosen)
    try:
        result = bootstrap_coefficients(X, y, lambda: clone(fixed), n_boot=config["validation"]["coefficient_bootstrap"],
                                        seed=config["seed"], alpha=config["validation"]["alpha"])
    except ValueError as exc:  # learners without coefficients (forest, SVM, boosting, stacking)
        print(f"no coefficients: {exc}")
        result = pd.DataFrame(columns=["feature", "coefficient", "ci_low", "ci_high", "selected_fraction", "n_boot"])
    result.to_csv(snakemake.output.coefficients, sep="\t", index=False, float_format="%.10g")
