"""The dossier's federated-training block reads the federated results files and computes nothing."""
import json

import numpy as np
import pandas as pd

from acceflow.models.federated import federated_fit
from acceflow.report import html as h
from acceflow.report.federated_section import federated_block
from acceflow.report.view import Results, ResultsView


def test_the_block_shows_the_rounds_the_comparison_and_the_largest_coefficient_difference(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 2))
    y = (rng.random(120) < 1 / (1 + np.exp(-X[:, 0]))).astype(int)
    _, _, rounds = federated_fit({"RUMC": (X[:70], y[:70]), "PCNN": (X[70:], y[70:])}, rounds=4, local_epochs=2)
    fed = tmp_path / "clinical" / "federated"
    fed.mkdir(parents=True)
    rounds.to_csv(tmp_path / Results.FEDERATED_ROUNDS, sep="\t", index=False)
    (tmp_path / Results.FEDERATED_SUMMARY).write_text(json.dumps({
        "max_abs_coefficient_difference": 0.04917, "feature": "pirads_max", "sites": ["RUMC", "PCNN"],
        "coefficient_scale": "per pooled standard deviation", "rounds": 4, "strategy": "fedavg", "local_epochs": 2,
        "penalty": "l2", "C": 1.0, "central": "scikit-learn LogisticRegression on the pooled training rows"}))
    pd.DataFrame({"cohort": ["ZGT"] * 3, "model": ["federated", "central", "local_RUMC"], "n": 350, "n_events": 80,
                  "auc": [0.9126, 0.9127, 0.91], "auc_ci_low": [0.8833, 0.8834, 0.88], "auc_ci_high": [0.9419, 0.942, 0.94],
                  "reference": "federated", "auc_difference": [np.nan, 0.0001, -0.0026],
                  "difference_se": [np.nan, 0.001, 0.002], "z": [np.nan, 0.1, -1.3],
                  "p_value": [np.nan, 0.9066, 0.1378]}).to_csv(tmp_path / Results.FEDERATED_COMPARISON, sep="\t",
                                                                index=False)
    html = federated_block(ResultsView(tmp_path, {}, ["train", "ZGT"]))
    assert "Federated training" in html and "FedAvg" in html and "RUMC, PCNN" in html and "for 4 rounds" in html
    assert str(h.ci(0.9126, 0.8833, 0.9419)) in html
    assert "0.907" in html and "0.138" in html and "local-only (RUMC)" in html  # paired DeLong p
    assert "0.0492" in html and "pirads_max" in html
    last = rounds[rounds["round"] == 4]
    assert all(h.num(v) in html for v in last[["loss", "update_norm", "drift"]].to_numpy().ravel())
    assert "<img" in html  # the rounds figure, drawn from rounds.tsv
    assert federated_block(ResultsView(tmp_path / "none", {}, ["train"])) == ""


def test_the_block_states_each_model_and_whether_federated_training_reached_the_central_optimum(tmp_path):
    """demo_across_sites' figures (issue 18): 10 FedAvg rounds stopped 12.75 % above the central optimum."""
    _, _, rounds = federated_fit({"site_A": (np.eye(4)[[0, 1, 2, 3] * 5], [0, 1] * 10),
                                  "site_B": (np.eye(4)[[1, 2, 3, 0] * 5], [1, 0] * 10)}, rounds=2, local_epochs=1)
    (tmp_path / "clinical" / "federated").mkdir(parents=True)
    rounds.to_csv(tmp_path / Results.FEDERATED_ROUNDS, sep="\t", index=False)
    summary = {"sites": ["site_A", "site_B"], "rounds": 10, "strategy": "fedavg", "local_epochs": 5, "penalty": "l2",
               "C": 1.0, "objective": "J = mean log-loss + penalty / (C N)", "objective_start": 0.6931,
               "objective_federated": 0.49077, "objective_central": 0.43526, "objective_gap": 0.12754,
               "objective_gap_same_steps": 0.10933, "objective_gap_tolerance": 0.01, "converged": False,
               "convergence": "stopped_early"}
    (tmp_path / Results.FEDERATED_SUMMARY).write_text(json.dumps(summary))
    models = ["federated", "central", "central_same_steps", "local_site_A"]
    pd.DataFrame({"cohort": "site_C", "model": models, "n": 60, "n_events": 14, "auc": [0.803, 0.557, 0.798, 0.634],
                  "auc_ci_low": 0.4, "auc_ci_high": 0.9, "reference": "federated",
                  "auc_difference": [np.nan, -0.245, -0.005, -0.169], "p_value": [np.nan, 2.1e-5, 0.481, 0.0011],
                  "n_features": 51, "penalty": "l2, C = 1",
                  "standardisation": ["pooled from the sites' moments", "pooled rows", "pooled rows", "site_A rows"],
                  "fit": ["FedAvg, 10 rounds x 5 local steps, 2 sites", "to the optimum (scikit-learn lbfgs, tol 1e-8)",
                          "the federated learner with the pooled rows as one site, 10 rounds x 5 local steps",
                          "to the optimum (scikit-learn lbfgs, tol 1e-8)"],
                  "objective_gap": [0.12754, 0.0, 0.10933, np.nan]}).to_csv(
        tmp_path / Results.FEDERATED_COMPARISON, sep="\t", index=False)
    html = federated_block(ResultsView(tmp_path, {}, ["train", "site_C"]))
    for text in ("Objective above central optimum", "12.75 %", "10.93 %", "0.00 %", "l2, C = 1", "site_A rows",
                 "FedAvg, 10 rounds x 5 local steps, 2 sites", "central, federated schedule (pooled rows as one site)",
                 "as early stopping does", "0.4908 vs 0.4353", "Above the 1.00 % tolerance"):
        assert text in html, text
    summary.update(objective_gap_same_steps=0.0001, convergence="client_drift")
    (tmp_path / Results.FEDERATED_SUMMARY).write_text(json.dumps(summary))
    html = federated_block(ResultsView(tmp_path, {}, ["train", "site_C"]))
    assert "client drift" in html and "early stopping" not in html
    summary.update(objective_gap=0.004, converged=True, convergence="converged")
    (tmp_path / Results.FEDERATED_SUMMARY).write_text(json.dumps(summary))
    html = federated_block(ResultsView(tmp_path, {}, ["train", "site_C"]))
    assert "Within the 1.00 % tolerance" in html and "Above the" not in html
