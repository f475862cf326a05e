"""Per-cohort utility figures (PNG and SVG): calibration with band; decision curves of all models."""
import pandas as pd

from acceflow.report.figures import cohort_label, plt, save_figure
from acceflow.report.utility_figures import (calibration_band_figure, decision_curves_figure,
                                             survival_calibration_figure)
from acceflow.runtime import log_to
from acceflow.study.task import task_for

with log_to(snakemake.log[0]):
    cohort, models = snakemake.wildcards.cohort, snakemake.params.models
    read = lambda f: pd.read_csv(f, sep="\t", dtype={"case_id": str})  # noqa: E731
    curves = {m: read(f) for m, f in zip(models, snakemake.input.curves)}
    label = cohort_label(cohort)
    fig = decision_curves_figure(curves, curves[models[0]], f"Decision curves: {label}", models[0])
    save_figure(fig, snakemake.output.dc_png[:-4])
    plt.close(fig)
    if task_for(snakemake.params.outcome).smooth_calibration:
        fig = calibration_band_figure(read(snakemake.input.curve), read(snakemake.input.bins),
                                      read(snakemake.input.predictions), f"Calibration: {label}")
    else:  # grouped calibration at the horizon (survival)
        fig = survival_calibration_figure(read(snakemake.input.bins), f"Calibration: {label}")
    save_figure(fig, snakemake.output.cal_png[:-4])
    plt.close(fig)
