"""Counts and share of stable features, for the dossier's analytical verdict (acceflow.study.stability)."""
import pandas as pd

from acceflow.runtime import log_to, write_json
from acceflow.study.stability import stability_summary

with log_to(snakemake.log[0]):
    try:
        icc = pd.read_csv(snakemake.input.icc, sep="\t")
    except pd.errors.EmptyDataError:  # no repeated measurements: the icc rule may write a bare file
        icc = pd.DataFrame(columns=["feature", "icc_form", "ci_low", "stable"])
    summary = stability_summary(icc, snakemake.params.threshold)
    print(f"{summary['n_stable']} of {summary['n_features']} features stable "
          f"(ICC 95% CI lower bound >= {summary['threshold']})")
    write_json(summary, snakemake.output.summary)
