"""The deep biomarker on a study: which crops belong to which case, training with out-of-fold
internal validation, the model card, per-cohort predictions and the embedding tables.

Crop files are named by the reference-modality scan (``deep/crops/{scan_id}.npz``); a crop that
could not be made is a file with an ``error`` entry, and its case is left out of the deep model
(listed in the model card) instead of stopping the other cases.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from acceflow.deep.crops import load_crop
from acceflow.deep.dann import DannSetup
from acceflow.deep.train import cross_validate, fit, predict
from acceflow.device import describe, select_device
from acceflow.io.manifest import binary_outcome
from acceflow.metrics.validation import decision_threshold
from acceflow.study.card import ModelCard
from acceflow.study.settings import DANN_KIND, DEEP_KIND, model_settings, outcome_columns, section_settings
from acceflow.study.training import CohortError


def study_modalities(scans: pd.DataFrame, settings: dict) -> list[str]:
    """The modalities (channels) of the deep model: ``deep.modalities`` or every modality of the
    study, sorted; the first is the reference (its mask centres the crop)."""
    present = sorted(scans["modality"].astype(str).unique())
    wanted = list(settings.get("modalities") or present)
    missing = [m for m in wanted if m not in present]
    if missing:
        raise ValueError(f"deep.modalities names {missing}, which no scan of the manifest has (modalities: "
                         f"{present}); fix deep.modalities")
    return wanted


def crop_scans(scans: pd.DataFrame, settings: dict) -> pd.DataFrame:
    """The scans a crop is made for: every scan of the reference modality (all repeats).

    Returns the rows of ``scans`` (index scan_id) with an extra column per modality
    ``image_<modality>``: the scan of that modality with the same repeat, else the case's primary
    scan of that modality, else empty.
    """
    modalities = study_modalities(scans, settings)
    ref = scans[scans["modality"].astype(str) == modalities[0]].copy()
    for m in modalities:
        other = scans[scans["modality"].astype(str) == m].reset_index()
        same = {(r.case_id, r.repeat): r.scan_id for r in other.itertuples()}
        first = {r.case_id: r.scan_id for r in other[other["primary"].astype(str) == "True"].itertuples()}
        ref[f"scan_{m}"] = [same.get((c, r), first.get(c, "")) for c, r in zip(ref["case_id"], ref["repeat"])]
    return ref


def case_crops(scans: pd.DataFrame, crop_paths: list[str]) -> dict[str, str]:
    """Case id -> crop file of the case's primary reference scan (files named ``{scan_id}.npz``)."""
    by_scan = {os.path.basename(p)[:-len(".npz")]: p for p in crop_paths}
    primary = scans[scans["primary"].astype(str) == "True"]
    return {row.case_id: by_scan[sid] for sid, row in primary.iterrows() if sid in by_scan}


def explained_cases(predictions: pd.DataFrame, threshold: float, n: int) -> pd.DataFrame:
    """The cases whose maps the dossier shows: the ``n`` most confidently correct and the ``n`` most
    confidently wrong at the model's threshold (confidence = |probability − threshold|; ties by case id),
    as ``deep_gradcam`` chooses them; adds ``predicted``, ``correct`` and ``confidence`` columns."""
    preds = predictions.copy()
    preds["predicted"] = (preds["probability"] >= threshold).astype(int)
    preds["correct"] = preds["predicted"] == preds["outcome"]
    preds["confidence"] = (preds["probability"] - threshold).abs()
    preds = preds.sort_values(["confidence", "case_id"], ascending=[False, True])
    return pd.concat([preds[preds["correct"]].head(n), preds[~preds["correct"]].head(n)])


def load_stack(paths: list[str]) -> tuple[np.ndarray, list[int], dict[int, str]]:
    """Read crops; returns (X (n_ok, C, D, H, W), indices of readable crops, {index: error})."""
    arrays, ok, errors = [], [], {}
    for i, p in enumerate(paths):
        crop = load_crop(p)
        if "error" in crop:
            errors[i] = str(crop["error"])
            continue
        arrays.append(crop["image"])
        ok.append(i)
    return (np.stack(arrays) if arrays else np.zeros((0,))), ok, errors


def _outcome(rows: pd.DataFrame, config: dict) -> np.ndarray:
    o = config["outcome"]
    return binary_outcome(rows[o["column"]], o["positive"]).astype(int).to_numpy()


def _cohort_rows(table, crops, cohorts):
    rows = table[table["cohort"].astype(str).isin([str(c) for c in cohorts])].reset_index(drop=True)
    missing = sorted(set(rows["case_id"]) - set(crops))
    rows = rows[rows["case_id"].isin(crops)].reset_index(drop=True)
    X, ok, errors = load_stack([crops[c] for c in rows["case_id"]])
    excluded = {rows["case_id"][i]: e for i, e in errors.items()}
    excluded.update({c: "no crop (no reference-modality scan)" for c in missing})
    return rows.iloc[ok].reset_index(drop=True), X, excluded


def target_domain(table: pd.DataFrame, crops: dict[str, str], targets, source_sites, log=print) -> DannSetup:
    """The unlabelled target crops of the named cohorts for DANN (:class:`acceflow.deep.dann.DannSetup`).

    Only ``case_id`` and ``cohort`` of ``table`` are read for the target cohorts: their outcomes
    never enter training (they may be missing).

    Raises
    ------
    CohortError
        A target cohort with no usable crop (named, with the fix).
    """
    ids = table[["case_id", "cohort"]]
    rows, X, excluded = _cohort_rows(ids, crops, targets)
    for case, why in sorted(excluded.items()):
        log(f"target case {case}: left out of the domain adaptation: {why}")
    empty = [t for t in targets if not (rows["cohort"].astype(str) == str(t)).any()]
    if empty:
        raise CohortError(f"deep.target_cohorts: cohort(s) {empty} have no case with a usable crop; check the cohort "
                          "names against the manifest's cohort column (and the deep_crop logs)")
    log("DANN target images: " + ", ".join(f"{t} {int((rows['cohort'].astype(str) == str(t)).sum())} cases"
                                            for t in targets) + " (images only, no outcome)")
    return DannSetup(X, rows["cohort"].astype(str).to_numpy(), source_sites)


def train_study(table: pd.DataFrame, crops: dict[str, str], config: dict, device=None, log=print):
    """Train the deep biomarker on the training cohorts and validate it internally.

    With ``deep.domain_adaptation: dann`` the network (then named ``deep_dann``) is trained
    domain-adversarially against the unlabelled images of ``deep.target_cohorts``
    (:func:`target_domain`, :mod:`acceflow.deep.dann`) in the internal validation folds and in the
    final fit alike; the model card's ``domain_adaptation`` says which cohorts' images were used.

    Parameters
    ----------
    table : pandas.DataFrame
        ``features/features.tsv`` (case_id, cohort, outcome columns): the cases and outcomes
        every model of the study uses.
    crops : dict
        Case id -> crop file (:func:`case_crops`).
    config : dict
        ``seed``, ``cohorts``, ``outcome``, ``model`` (threshold) and ``deep`` sections; keys the
        ``deep`` section leaves out take the schema's defaults (:func:`section_settings`).

    Returns
    -------
    fitted : dict
        The final network, trained on all training cases (own validation split for early stopping).
    card : acceflow.study.card.ModelCard
        The model card (network, fusion, crop, hyper-parameters, seed, device, histories, ...).
    predictions : pandas.DataFrame
        ``case_id, outcome, probability`` of the training cases, out-of-fold.
    folds : pandas.DataFrame
        Per fold of the internal validation (``fold, n, n_events, auc, best_epoch, stopped_epoch``).
    history : pandas.DataFrame
        The final network's training history per epoch.

    Raises
    ------
    DeepTrainingError
        Too few training cases or events for ``deep.cv_folds``.
    """
    s = section_settings("deep", config.get("deep"))
    seed = int(config["seed"])
    device = device or select_device(s["device"])
    rows, X, excluded = _cohort_rows(table, crops, config["cohorts"]["train"])
    for case, why in sorted(excluded.items()):
        log(f"case {case}: left out of the deep model: {why}")
    y = _outcome(rows, config)
    log(f"{len(rows)} training cases ({int(y.sum())} events), crops {X.shape[1:]} on {device}")
    dann = s.get("domain_adaptation", "none") == "dann"
    kind = DANN_KIND if dann else DEEP_KIND
    domain = None
    if dann:
        targets = [str(t) for t in s.get("target_cohorts") or []]
        if not targets:
            raise CohortError("deep.domain_adaptation: dann needs deep.target_cohorts (the cohorts whose unlabelled "
                              "images the site discriminator sees)")
        domain = target_domain(table, crops, targets, rows["cohort"].astype(str).to_numpy(), log)
    oof, folds = cross_validate(X, y, s, seed, device, log=log, domain=domain)
    final = fit(X, y, s, seed, device, log=log, domain=domain)
    m = model_settings(config)
    crop = load_crop(crops[rows["case_id"][0]])

    card = {
        "model": kind,
        "role": "comparator",
        "learner": f"MONAI {s['network']} ({s['fusion']} fusion)" + (", domain-adversarial (DANN)" if dann else ""),
        "network": s["network"], "fusion": s["fusion"],
        "modalities": [str(v) for v in crop["modalities"]],
        "crop": {"size_voxels": int(s["crop_size"]), "spacing_mm": float(s["crop_spacing"]),
                 "field_of_view_mm": float(s["crop_size"]) * float(s["crop_spacing"]),
                 "centre": "lesion centre of mass (reference modality mask)",
                 "resampling": "SimpleITK linear interpolation onto one axis-aligned grid"},
        "hyperparameters": {k: s[k] for k in ("epochs", "batch_size", "learning_rate", "weight_decay", "dropout",
                                              "validation_fraction", "patience", "balance", "augmentation",
                                              "cv_folds", "mixed_precision")},
        "loss": ("binary cross-entropy, positive class weight n_neg/n_pos" if s["balance"] == "class_weight"
                 else "binary cross-entropy with a class-balanced sampler"),
        "pos_weight": final["pos_weight"],
        "features": [f"crop of {', '.join(str(v) for v in crop['modalities'])}"],
        "training_cohorts": list(config["cohorts"]["train"]),
        "external_cohorts": list(config["cohorts"]["external"]),
        "outcome": dict(config["outcome"]),
        "n_train": int(len(y)), "n_events_train": int(y.sum()),
        "excluded_cases": excluded,
        "seed": seed,
        "device": describe(device),
        "validation": "external" if config["cohorts"]["external"] else "internal",
        "internal_validation": (f"stratified {s['cv_folds']}-fold cross-validation by case; each fold's network "
                                f"trained with its own validation split and early stopping; out-of-fold probabilities"),
        "cv_auc_mean": float(folds["auc"].mean()),
        "cv_auc_sd": float(folds["auc"].std(ddof=1)) if len(folds) > 1 else float("nan"),
        "final_model": {"n_train": final["n_train"], "n_validation": final["n_validation"],
                        "best_epoch": final["best_epoch"], "stopped_epoch": final["stopped_epoch"],
                        "early_stopping": f"validation loss, patience {s['patience']} epochs; best epoch's weights kept"},
        "training_history": final["history"],
        "apparent_auc": float(roc_auc_score(y, predict(final, X)[0])),
        "threshold": {"method": m["threshold"], "target": m["threshold_target"],
                      "value": float(decision_threshold(y, oof, m["threshold"], m["threshold_target"])),
                      "fixed_on": "out-of-fold predictions of the training cohorts"},
        "method": "Deep biomarker: MONAI 3D network on a lesion-centred crop (Huang et al. 2017 DenseNet; "
                  "He et al. 2016 ResNet); early stopping (Prechelt 1998)"
                  + ("; domain-adversarial training (Ganin et al. 2016)" if dann else ""),
        "domain_adaptation": ({**domain.describe(), "target_cohorts": targets,
                               "transductive": True, "target_outcomes_used": False} if dann else None),
    }
    predictions = pd.DataFrame({"case_id": rows["case_id"], "outcome": y, "probability": oof})

    return final, ModelCard.from_dict(card), predictions, folds, pd.DataFrame(final["history"])


def predict_study(fitted: dict, card: dict, table: pd.DataFrame, crops: dict[str, str], cohort: str, log=print):
    """Apply the frozen deep model to one cohort: ``case_id, outcome, probability``.

    Raises
    ------
    CohortError
        When the cohort has no usable case or fewer than 2 cases of an outcome class.
    """
    rows, X, excluded = _cohort_rows(table, crops, [cohort])
    for case, why in sorted(excluded.items()):
        log(f"case {case}: no deep prediction: {why}")
    if rows.empty:
        raise CohortError(f"cohort {cohort}: no case with a usable crop (see deep/crops and the deep_crop logs)")
    y = _outcome(rows, {"outcome": card["outcome"]})
    if min(y.sum(), len(y) - y.sum()) < 2:
        raise CohortError(f"cohort {cohort}: {int(y.sum())} positive and {int(len(y) - y.sum())} negative cases with "
                          f"a crop; external validation needs at least 2 of each")
    prob, _ = predict(fitted, X)
    return pd.DataFrame({"case_id": rows["case_id"], "outcome": y, "probability": prob})


def embedding_tables(fitted: dict, table: pd.DataFrame, scans: pd.DataFrame, crop_paths: list[str], config: dict):
    """Penultimate-layer embeddings of every crop by the frozen network.

    Returns
    -------
    features : pandas.DataFrame
        Primary scans: ``case_id, cohort``, outcome columns, ``deep_0 .. deep_{k-1}`` (k = the
        embedding size; DenseNet121: 1024 per branch).
    repeats : pandas.DataFrame
        Cases with two or more reference-modality scans: ``case_id, repeat, deep_*`` (long repeat
        table for :func:`acceflow.metrics.icc.icc_table`).
    """
    by_scan = {os.path.basename(p)[:-len(".npz")]: p for p in crop_paths}
    ids = [s for s in scans.index if s in by_scan]
    X, ok, _ = load_stack([by_scan[s] for s in ids])
    ids = [ids[i] for i in ok]
    _, emb = predict(fitted, X, embed=True) if len(ids) else (None, np.zeros((0, 0)))
    cols = [f"deep_{i}" for i in range(emb.shape[1])]
    wide = pd.DataFrame(emb, columns=cols)
    wide.insert(0, "scan_id", ids)
    wide = wide.merge(scans[["case_id", "repeat", "primary"]].reset_index(), on="scan_id")
    keep = ["case_id", "cohort", *[c for c in outcome_columns(config) if c in table]]
    primary = wide[wide["primary"].astype(str) == "True"]
    features = table[keep].merge(primary[["case_id", *cols]], on="case_id", how="inner")
    counts = wide.groupby("case_id")["scan_id"].transform("count")
    repeats = wide[counts >= 2][["case_id", "repeat", *cols]].reset_index(drop=True)
    return features, repeats
