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


def make_results(root, validation="external", repeats=True, comparators=(), survival=False, segmentation=None,
                 deep=False, float_counts=False):
    """Write a small results folder in the formats of the results contract; return the config.

    Options (each changes what the run shows, as the DAG would write it):
    comparators : comparator model names (e.g. ``("clinical", "combined_early")``): their predictions,
        metrics, calibration and decision curves under ``comparators/{model}/`` (copies of the primary
        model's) and a paired comparison table per cohort (``model_comparison.tsv``)
    survival : the model card's and config's outcome is time to event (the files stay binary: for
        tests of what the checklists say, not for rendering)
    segmentation : ``"model"`` or ``"otsu"``: the run started from images with that segmentation
        source; ``"model"`` adds the segmentation-quality summary and repeated-mask agreement
    deep : a deep-learning comparator (``deep``) with its model card
    float_counts : counts written as floats (``n: 90.0``) and a count column with a missing value, as
        pandas and some rules write them
    """
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
        "model": "imaging", "features": FEATURES, "learner": "l1_logistic", "hyperparameters": {"C": 0.1},
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
    models = list(comparators) + (["deep"] if deep else [])
    if models:
        _write_comparators(root, card, ["train", *external], models)
    if survival:
        outcome = {"type": "survival", "time": "time", "event": "event", "horizons": [365]}
        card["outcome"] = config["outcome"] = outcome
        _write_json(card, root / "clinical" / "model" / "model_card.json")
    if segmentation:
        config["input"]["images"] = "manifest.tsv"
        config["segmentation"] = {"source": segmentation}
        if segmentation == "model":
            pd.DataFrame({"cohort": "site_A", "modality": "CT", "evaluation": "out-of-fold",
                          "metric": ["dice", "hd95_mm"], "n": 20, "mean": [0.86, 2.6], "ci_low": [0.82, 2.1],
                          "ci_high": [0.9, 3.1], "median": [0.87, 2.5], "q1": [0.8, 2.0], "q3": [0.9, 3.0]}).to_csv(
                root / "analytical" / "segmentation_quality_summary.tsv", sep="\t", index=False)
            pd.DataFrame({"case_id": ["a", "b", "c"], "image": "CT", "repeat_a": "1", "repeat_b": "2",
                          "dice": [0.8, 0.9, 0.85], "jaccard": [0.67, 0.82, 0.74], "hd95_mm": [2.0, 1.0, 1.5],
                          "msd_mm": [0.5, 0.3, 0.4], "volume_a_ml": [10.0, 12.0, 8.0],
                          "volume_b_ml": [10.5, 11.8, 8.3]}).to_csv(root / "analytical" / "segmentation_agreement.tsv",
                                                                  sep="\t", index=False)
    if float_counts:
        for cohort in ["train", *external]:
            path = root / "utility" / cohort / "calibration.json"
            cal = json.loads(path.read_text())
            cal.update(n=float(cal["n"]), n_events=float(cal["n_events"]))
            path.write_text(json.dumps(cal))
        icc = pd.read_csv(root / "analytical" / "icc.tsv", sep="\t")
        if len(icc):
            icc.loc[0, "n_subjects"] = np.nan
            icc.to_csv(root / "analytical" / "icc.tsv", sep="\t", index=False)
    return config


def _write_comparators(root, card, cohorts, models):
    """Comparator models: the primary model's files copied under comparators/{model}/, a paired comparison."""
    import shutil

    for cohort in cohorts:
        for model in models:
            for part, names in (("clinical", ("predictions.tsv", "metrics.json", "discrimination_curve.tsv")),
                                ("utility", ("calibration.json", "decision_curve.tsv"))):
                dest = root / part / cohort / "comparators" / model
                dest.mkdir(parents=True, exist_ok=True)
                for name in names:
                    shutil.copy(root / part / cohort / name, dest / name)
        m = json.loads((root / "clinical" / cohort / "metrics.json").read_text())
        reference = "clinical" if "clinical" in models else models[0]
        rows = [{"model": name, "n": m["n"], "n_events": m["n_events"], "auc": m["auc"], "auc_ci_low": m["auc_ci_low"],
                 "auc_ci_high": m["auc_ci_high"], "reference": reference,
                 "auc_difference": None if name == reference else 0.0, "difference_se": None if name == reference else 0.05,
                 "z": None if name == reference else 0.0, "p_value": None if name == reference else 1.0}
                for name in [card.get("model", "imaging"), *models]]
        pd.DataFrame(rows).to_csv(root / "clinical" / cohort / "model_comparison.tsv", sep="\t", index=False)
    for model in models:
        _write_json({**card, "model": model, "role": "comparator"},
                    root / "clinical" / "model" / "comparators" / model / "model_card.json")


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
