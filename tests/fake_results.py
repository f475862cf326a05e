"""A results folder as the DAG writes it, made by hand for the report's unit tests: two cohorts of
predictions with known metrics, calibration, decision curves and the files the rules write for the
dossier (shared by test_report.py and test_dossier_extras.py)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score, roc_curve

from acceflow.metrics.decision_curve import useful_threshold_range
from acceflow.report import figures
from acceflow.runtime import write_json
from acceflow.study.cohorts import cohort_table, feature_summary
from acceflow.study.stability import stability_summary

FEATURES = [f"CT_original_{cls}_{name}" for cls in ("firstorder", "glcm", "shape")
            for name in ("Mean", "Energy", "Entropy", "Contrast")]
EXCLUSION_REASON = "mask is empty <script>alert(1)</script>"


# ------------------------------------------------------------------------------- synthetic results


def _net_benefit(y, p, thresholds):
    n, prev = len(y), y.mean()
    rows = []
    for t in thresholds:
        w = t / (1 - t)
        pos = p >= t
        tp, fp = np.sum(pos & (y == 1)), np.sum(pos & (y == 0))
        nb = tp / n - fp / n * w
        nb_all = prev - (1 - prev) * w
        rows.append({"threshold": t, "net_benefit_model": nb, "net_benefit_all": nb_all,
                     "net_benefit_none": 0.0, "standardized_net_benefit_model": nb / prev,
                     "net_interventions_avoided_per_100": 100 * (nb - nb_all) / w})
    return pd.DataFrame(rows)


def _write_json(obj, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2))


def make_results(root, validation="external", repeats=True):
    """Write a small results folder in the formats of the results contract; return the config."""
    rng = np.random.default_rng(7)
    external = ["site_B"] if validation == "external" else []
    sizes = {"site_A": 120, "site_B": 90} if external else {"site_A": 120}
    frames = []
    for site, n in sizes.items():
        x = rng.normal(size=(n, len(FEATURES)))
        lin = -0.7 + 1.1 * x[:, 0] - 0.8 * x[:, 4]
        y = (rng.uniform(size=n) < 1 / (1 + np.exp(-lin))).astype(int)
        df = pd.DataFrame(x, columns=FEATURES)
        df.insert(0, "case_id", [f"{site}_{i:03d}" for i in range(n)])
        df.insert(1, "cohort", site)
        df.insert(2, "outcome", y)
        df.insert(3, "age", rng.normal(60, 10, n).round(1))
        frames.append(df)
    feats = pd.concat(frames, ignore_index=True)
    (root / "features").mkdir(parents=True)
    feats.to_csv(root / "features" / "features.tsv", sep="\t", index=False)

    qc = pd.DataFrame({"case_id": feats["case_id"], "repeat": "", "modality": "CT",
                       "cohort": feats["cohort"], "status": "ok", "reason": ""})
    qc = pd.concat([qc, pd.DataFrame([
        {"case_id": "site_A_900", "repeat": "", "modality": "CT", "cohort": "site_A", "status": "excluded",
         "reason": EXCLUSION_REASON},
        {"case_id": "site_A_901", "repeat": "1", "modality": "CT", "cohort": "site_A", "status": "excluded",
         "reason": "image unreadable"},
    ])], ignore_index=True)
    (root / "ingest").mkdir()
    qc.to_csv(root / "ingest" / "qc.tsv", sep="\t", index=False)

    icc_cols = ["feature", "icc_form", "icc", "ci_low", "ci_high", "wcv", "n_subjects", "n_repeats",
                "stable", "koo_li_band"]
    rows = []
    if repeats:
        for f, v in zip(FEATURES, np.linspace(0.35, 0.97, len(FEATURES))):
            band = "poor" if v < 0.5 else "moderate" if v < 0.75 else "good" if v <= 0.9 else "excellent"
            rows.append([f, "ICC(2,1)", v, v - 0.12, min(v + 0.05, 1.0), 0.1, 20, 2, v - 0.12 >= 0.75, band])
    (root / "analytical").mkdir()
    pd.DataFrame(rows, columns=icc_cols).to_csv(root / "analytical" / "icc.tsv", sep="\t", index=False)

    train = feats[feats["cohort"] == "site_A"]
    coefs = {f: 0.0 for f in FEATURES}
    coefs.update({FEATURES[0]: 0.912, FEATURES[4]: -0.633})
    card = {
        "features": FEATURES, "learner": "l1_logistic", "hyperparameters": {"C": 0.1},
        "training_cohorts": ["site_A"], "external_cohorts": external, "seed": 42,
        "outcome": {"type": "binary", "column": "outcome", "positive": 1}, "validation": validation,
        "internal_validation": "repeated stratified 5-fold cross-validation, 5 repeats",
        "n_train": len(train), "n_events_train": int(train["outcome"].sum()),
        "coefficients": coefs, "intercept": -0.71, "model_file": "model.skops", "model_sha256": "ab" * 32,
    }
    _write_json(card, root / "clinical" / "model" / "model_card.json")

    thresholds = np.round(np.arange(0.01, 1.0, 0.01), 2)
    for cohort in ["train", *external]:
        df = feats[feats["cohort"] == ("site_A" if cohort == "train" else cohort)]
        y = df["outcome"].to_numpy()
        lin = -0.7 + 0.9 * df[FEATURES[0]] - 0.6 * df[FEATURES[4]] + rng.normal(0, 0.3, len(df))
        p = (1 / (1 + np.exp(-lin))).to_numpy()
        (root / "clinical" / cohort).mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"case_id": df["case_id"], "outcome": y, "probability": p}).to_csv(
            root / "clinical" / cohort / "predictions.tsv", sep="\t", index=False)
        fpr, tpr, thr = roc_curve(y, p)
        pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": thr}).to_csv(
            root / "clinical" / cohort / "discrimination_curve.tsv", sep="\t", index=False)
        auc = roc_auc_score(y, p)
        _write_json({"cohort": cohort, "validation": "internal (out-of-fold)" if cohort == "train" else "external",
                     "n": len(y), "n_events": int(y.sum()), "prevalence": float(y.mean()), "auc": auc,
                     "auc_ci_low": auc - 0.071, "auc_ci_high": min(auc + 0.069, 1.0), "auc_ci_method": "delong",
                     "brier": brier_score_loss(y, p), "log_loss": log_loss(y, p)},
                    root / "clinical" / cohort / "metrics.json")
        _write_json({"n": len(y), "n_events": int(y.sum()), "calibration_intercept": 0.05,
                     "calibration_intercept_ci_low": -0.3, "calibration_intercept_ci_high": 0.4,
                     "calibration_slope": 0.62, "calibration_slope_ci_low": 0.41, "calibration_slope_ci_high": 0.85,
                     "ici": 0.041, "e50": 0.03, "e90": 0.08, "emax": 0.15, "brier": brier_score_loss(y, p),
                     "brier_scaled": 0.2, "spiegelhalter_z": 0.5, "spiegelhalter_p": 0.62},
                    root / "utility" / cohort / "calibration.json")
        _net_benefit(y, p, thresholds).to_csv(root / "utility" / cohort / "decision_curve.tsv", sep="\t",
                                              index=False)

    config = {
        "results": str(root), "seed": 42,
        "input": {"images": None, "features": "features.tsv", "repeats": "repeats.tsv" if repeats else None},
        "cohorts": {"column": "cohort", "train": ["site_A"], "external": external},
        "outcome": {"type": "binary", "column": "outcome", "positive": 1},
        "clinical": ["age"], "features": None, "reproducibility": {"threshold": 0.75},
    }
    _write_rule_outputs(root, feats, config, ["train", *external])
    return config


def _write_rule_outputs(root, feats, config, cohorts):
    """What the cohort_summary, icc_summary, useful_thresholds and utility_figures rules write (the dossier reads
    them)."""
    cohort_table(feats, config).to_csv(root / "features" / "cohorts.tsv", sep="\t", index=False)
    icc = pd.read_csv(root / "analytical" / "icc.tsv", sep="\t")
    write_json(stability_summary(icc, config["reproducibility"]["threshold"]), root / "analytical" / "icc_summary.json")
    write_json(feature_summary(feats, config), root / "features" / "feature_summary.json")
    for cohort in cohorts:
        curve = pd.read_csv(root / "utility" / cohort / "decision_curve.tsv", sep="\t")
        low, high = useful_threshold_range(curve)
        write_json({"useful_threshold_low": low, "useful_threshold_high": high},
                   root / "utility" / cohort / "useful_thresholds.json")
        for name in ("calibration", "decision_curve"):
            fig, ax = figures.plt.subplots(figsize=(1, 1))
            ax.plot(curve["threshold"], curve["net_benefit_model"])
            figures.save_figure(fig, root / "utility" / cohort / name)
            figures.plt.close(fig)
