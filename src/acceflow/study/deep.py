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
from sklearn.model_selection import StratifiedKFold

from acceflow.deep.cox import risk_at
from acceflow.deep.crops import load_crop
from acceflow.deep.dann import DannSetup
from acceflow.deep.slices import SliceError, lesion_slices
from acceflow.deep.stacking import apply_linear, apply_meta, fit_linear, meta_inputs, stack
from acceflow.deep.train import DeepTrainingError, cross_validate, fit, predict
from acceflow.device import describe, select_device
from acceflow.io.manifest import binary_outcome
from acceflow.metrics.survival import check_survival, harrell_c
from acceflow.metrics.validation import decision_threshold
from acceflow.study.card import ModelCard
from acceflow.study.settings import DANN_KIND, DEEP_KIND, model_settings, outcome_columns, section_settings
from acceflow.study.survival_training import default_horizons
from acceflow.study.task import task_for
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


def frozen_model_inputs(card_path, model_path, scans_path, crop_paths, predictions_path):
    """What the Grad-CAM and integrated-gradients rules read about one cohort: the model card, the
    frozen network (SHA-256 checked against the card), case id -> crop file, and the cohort's
    predictions. Returns ``(card, fitted, crops, predictions)``."""
    import json

    from acceflow.deep.train import load_model

    with open(card_path) as fh:
        card = json.load(fh)
    fitted = load_model(model_path, card["model_sha256"])
    scans = pd.read_csv(scans_path, sep="\t", dtype=str, keep_default_na=False).set_index("scan_id")
    predictions = pd.read_csv(predictions_path, sep="\t", dtype={"case_id": str})
    return card, fitted, case_crops(scans, list(crop_paths)), predictions


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


def needs_masks(settings: dict) -> bool:
    """Whether the deep model reads the crops' lesion masks: 2D / 2.5D (which slices) or multi-task (the decoder's target)."""
    return settings.get("dimensions", "3d") != "3d" or bool(settings.get("multitask"))


def load_stack(paths: list[str], masks: list | None = None, slices: bool = False,
               names=None) -> tuple[np.ndarray, list[int], dict[int, str]]:
    """Read crops; returns (X (n_ok, C, D, H, W), indices of readable crops, {index: error}).

    With a list ``masks``, the readable crops' lesion masks (D, H, W) are appended to it; with
    ``slices`` (2D / 2.5D), a crop whose mask has no lesion voxel is an error of its case (a 2D
    input would be an empty slice: :class:`acceflow.deep.slices.SliceError`'s message).
    """
    arrays, ok, errors = [], [], {}
    for i, p in enumerate(paths):
        crop = load_crop(p)
        if "error" in crop:
            errors[i] = str(crop["error"])
            continue
        if slices:
            try:
                lesion_slices(crop["mask"], 1, names[i] if names is not None else os.path.basename(str(p))[:-len(".npz")])
            except SliceError as exc:
                errors[i] = str(exc)
                continue
        arrays.append(crop["image"])
        if masks is not None:
            masks.append(crop["mask"])
        ok.append(i)
    return (np.stack(arrays) if arrays else np.zeros((0,))), ok, errors


def _outcome(rows: pd.DataFrame, config: dict) -> np.ndarray:
    o = config["outcome"]
    return binary_outcome(rows[o["column"]], o["positive"]).astype(int).to_numpy()


def _survival(rows: pd.DataFrame, outcome: dict) -> tuple[np.ndarray, np.ndarray]:
    """(time in days, event 0/1) of the rows, checked (:func:`acceflow.metrics.survival.check_survival`)."""
    time, event = check_survival(rows[outcome["time"]], rows[outcome["event"]])
    return np.asarray(time, dtype=float), np.asarray(event, dtype=int)


def clinical_matrix(rows: pd.DataFrame, columns, log=print) -> np.ndarray | None:
    """The clinical covariates of the deep model as an (N, K) float array (NaN = missing), or None.

    A missing value is kept as NaN and imputed inside each fit by the training part's median
    (:func:`acceflow.deep.train.clinical_stats`); the cases with missing values are logged.

    Raises
    ------
    ValueError
        A column absent from the feature table (it must be listed under ``clinical`` too), or a
        non-numeric value (named with its case; encode categories as numbers, e.g. 0/1).
    """
    columns = list(columns or [])
    if not columns:
        return None
    absent = [c for c in columns if c not in rows]
    if absent:
        raise ValueError(f"deep.clinical_covariates names {absent}, which features/features.tsv lacks: list them "
                         f"under `clinical` too (the feature table carries the clinical columns listed there)")
    raw = rows[columns]
    C = raw.apply(pd.to_numeric, errors="coerce")
    for c in columns:
        bad = C[c].isna() & raw[c].notna() & (raw[c].astype(str).str.strip() != "")
        if bad.any():
            i = bad.to_numpy().nonzero()[0][0]
            raise ValueError(f"deep.clinical_covariates: column {c!r} has the non-numeric value {raw[c].iloc[i]!r} "
                             f"for case {rows['case_id'].iloc[i]} ({int(bad.sum())} such cases): the clinical "
                             f"encoder takes numbers; encode the column as numbers (e.g. 0/1) in the clinical table")
        missing = rows["case_id"][C[c].isna()].tolist()
        if missing:
            log(f"clinical covariate {c}: missing for {len(missing)} case(s) {missing}: imputed by the training "
                f"median inside each fit")
    return C.to_numpy(dtype=float)


def _cohort_rows(table, crops, cohorts, settings=None):
    """(rows, crops X, {case: why left out}, masks (N, D, H, W) or None when the settings need none)."""
    settings = settings or {}
    rows = table[table["cohort"].astype(str).isin([str(c) for c in cohorts])].reset_index(drop=True)
    missing = sorted(set(rows["case_id"]) - set(crops))
    rows = rows[rows["case_id"].isin(crops)].reset_index(drop=True)
    masks = [] if needs_masks(settings) else None
    X, ok, errors = load_stack([crops[c] for c in rows["case_id"]], masks,
                               slices=settings.get("dimensions", "3d") != "3d", names=list(rows["case_id"]))
    excluded = {rows["case_id"][i]: e for i, e in errors.items()}
    excluded.update({c: "no crop (no reference-modality scan)" for c in missing})
    return rows.iloc[ok].reset_index(drop=True), X, excluded, (np.stack(masks) if masks else None)


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
    rows, X, excluded, _ = _cohort_rows(ids, crops, targets)
    for case, why in sorted(excluded.items()):
        log(f"target case {case}: left out of the domain adaptation: {why}")
    empty = [t for t in targets if not (rows["cohort"].astype(str) == str(t)).any()]
    if empty:
        raise CohortError(f"deep.target_cohorts: cohort(s) {empty} have no case with a usable crop; check the cohort "
                          "names against the manifest's cohort column (and the deep_crop logs)")
    log("DANN target images: " + ", ".join(f"{t} {int((rows['cohort'].astype(str) == str(t)).sum())} cases"
                                            for t in targets) + " (images only, no outcome)")
    return DannSetup(X, rows["cohort"].astype(str).to_numpy(), source_sites)


def _folds(strata: np.ndarray, k: int, seed: int):
    if k < 2 or min(np.bincount(strata, minlength=2)) < k:
        raise DeepTrainingError(f"deep.cv_folds = {k} needs at least {k} cases of each class / with and without an "
                                f"event (have {np.bincount(strata, minlength=2).tolist()}); lower deep.cv_folds")
    return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(strata)), strata))


def _late_fusion(X, C, s, seed, device, y=None, time=None, event=None, horizon=None, modalities=(), log=print,
                 masks=None):
    """Late fusion (:mod:`acceflow.deep.stacking`): per-modality networks and a clinical model, stacked."""
    survival = y is None
    net = {**s, "fusion": "early"}
    strata = np.asarray(event if survival else y).astype(int)
    folds = _folds(strata, int(s["cv_folds"]), seed)
    outcome = (lambda idx: {"time": time[idx], "event": event[idx]}) if survival else (lambda idx: {"y": y[idx]})
    sources = {}
    for j, m in enumerate(modalities):
        def network_source(tr, te, j=j):
            f = fit(X[tr, j:j + 1], settings=net, seed=seed + 1 + j, device=device, log=log, **outcome(tr),
                    masks=None if masks is None else masks[tr])
            return predict(f, X[te, j:j + 1], masks=None if masks is None else masks[te])[0]
        sources[f"network_{m}"] = network_source
    if C is not None:
        def clinical_source(tr, te):
            return apply_linear(fit_linear(C[tr], survival, **outcome(tr)), C[te], survival)
        sources["clinical"] = clinical_source
    stacked = stack(sources, folds, survival, horizon=horizon, log=log, **outcome(np.arange(len(X))))
    final = {"late": True, "names": stacked["names"], "meta": stacked["meta"], "survival": survival, "settings": s,
             "networks": {}, "clinical_model": None}
    for j, m in enumerate(modalities):
        final["networks"][f"network_{m}"] = fit(X[:, j:j + 1], settings=net, seed=seed + 1 + j, device=device,
                                               log=log, **outcome(np.arange(len(X))), masks=masks)
    if C is not None:
        final["clinical_model"] = fit_linear(C, survival, **outcome(np.arange(len(X))))
    rows = []
    for k, (_, te) in enumerate(folds, 1):
        tgt = stacked["oof"][te]
        rows.append({"fold": k, "n": len(te), "n_events": int(strata[te].sum()),
                     **({"c_index": float(harrell_c(time[te], event[te], tgt))} if survival else
                        {"auc": float(roc_auc_score(y[te], tgt)) if 0 < y[te].sum() < len(te) else float("nan")})})
    oof = (stacked["oof"], stacked.get("oof_at_horizon")) if survival else stacked["oof"]
    return final, oof, pd.DataFrame(rows)


def predict_late(fitted: dict, X: np.ndarray, clinical=None, masks=None) -> np.ndarray:
    """The frozen late-fusion stack on crops (N, C, ...) [and covariates (N, K)]: probability or centred log-risk."""
    survival = fitted["survival"]
    modalities = [n for n in fitted["names"] if n.startswith("network_")]
    cols = []
    for name in fitted["names"]:
        if name == "clinical":
            cols.append(apply_linear(fitted["clinical_model"], clinical, survival))
        else:
            j = modalities.index(name)
            cols.append(predict(fitted["networks"][name], X[:, j:j + 1], masks=masks)[0])
    return apply_meta(fitted["meta"], meta_inputs(np.column_stack(cols), survival), survival)


def _scores(fitted, X, C, masks=None, cases=None):
    """Predictions of a frozen deep model (one network or a late-fusion stack)."""
    if fitted.get("late"):
        return predict_late(fitted, X, C, masks)
    return predict(fitted, X, clinical=C, masks=masks, cases=cases)[0]


def _network_settings(fitted) -> dict:
    """The deep settings a frozen model was trained with (late fusion: its stack's)."""
    return dict(fitted.get("settings") or {})


def _baseline(fitted):
    return fitted["meta"]["baseline"] if fitted.get("late") else fitted["baseline"]


def dimensions_description(s: dict) -> str:
    """What the network sees (``deep.dimensions``), in the words of the model card and the dossier."""
    if s["dimensions"] == "3d":
        return "3D: the whole crop through a 3D network"
    k = int(s["slices_2d"])
    what = ("each slice with its modalities as channels" if s["dimensions"] == "2d" else
            f"each slice with its neighbours as channels ({int(s['slices_2_5d'])} slices per modality, "
            f"edge slices repeated at the crop's border)")
    return (f"{s['dimensions'].upper()}: the {k} axial slices of the crop with the largest lesion area (all lesion "
            f"slices when the lesion spans fewer), {what}, through a 2D network (MONAI, spatial_dims 2); the case's "
            f"prediction is the mean of its slices' logits (then the sigmoid, or the log-risk); a case whose crop "
            f"holds no lesion voxel is left out")


def multitask_summary(s: dict, folds: pd.DataFrame, history: list) -> dict:
    """The multi-task block of the model card: both tasks' held-out metrics and the gradient cosine over training."""
    cos = [r.get("grad_cosine") for r in history]
    finite = [c for c in cos if c is not None and np.isfinite(c)]
    task = "c_index" if "c_index" in folds else "auc"
    return {
        "decoder": "segmentation decoder on the shared encoder's deepest feature map (x2 up-sampling stages to the "
                   "crop), two classes (background, lesion)",
        "segmentation_target": "the crop's lesion mask" + ("" if s["dimensions"] == "3d" else
                                                           " on the chosen axial slices"),
        "loss": f"task loss + {float(s['multitask_weight']):g} x (Dice + cross-entropy) of the decoder (MONAI DiceCELoss)",
        "pcgrad": bool(s["pcgrad"]),
        "pcgrad_description": ("PCGrad (Yu et al. 2020) on the shared encoder: a task gradient conflicting with the "
                               "other (negative dot product) is projected onto the other's normal plane"
                               if s["pcgrad"] else "none: the encoder's gradient is the sum of the tasks' gradients"),
        f"cv_{task}_mean": float(folds[task].mean()),
        "cv_dice_mean": float(folds["dice"].mean()),
        "cv_dice_sd": float(folds["dice"].std(ddof=1)) if len(folds) > 1 else float("nan"),
        "dice_note": "Dice of the decoder's mask (argmax) against the crop's lesion mask, held-out cases of the "
                     "internal cross-validation, mean over folds",
        "grad_cosine_by_epoch": cos,
        "grad_cosine_mean": float(np.mean(finite)) if finite else float("nan"),
        "grad_cosine_note": "cosine between the task's and the segmentation's gradients on the shared encoder, mean "
                            "over an epoch's batches, before projection (final network)",
    }


def train_study(table: pd.DataFrame, crops: dict[str, str], config: dict, device=None, log=print):
    """Train the deep biomarker on the training cohorts and validate it internally.

    With ``deep.domain_adaptation: dann`` the network (then named ``deep_dann``) is trained
    domain-adversarially against the unlabelled images of ``deep.target_cohorts``
    (:func:`target_domain`, :mod:`acceflow.deep.dann`) in the internal validation folds and in the
    final fit alike; the model card's ``domain_adaptation`` says which cohorts' images were used.

    Parameters
    ----------
    table : pandas.DataFrame
        ``features/features.tsv`` (case_id, cohort, outcome columns, clinical columns): the cases
        and outcomes every model of the study uses.
    crops : dict
        Case id -> crop file (:func:`case_crops`).
    config : dict
        ``seed``, ``cohorts``, ``outcome``, ``model`` (primary, threshold), ``utility`` (horizon,
        survival) and ``deep`` sections; keys the ``deep`` section leaves out take the schema's
        defaults (:func:`section_settings`).

    Returns
    -------
    fitted : dict
        The final model trained on all training cases: one network (early / intermediate fusion,
        own validation split for early stopping) or, for late fusion, the per-source models and
        the meta-learner.
    card : acceflow.study.card.ModelCard
        The model card (network, fusion, crop, hyper-parameters, seed, device, histories, ...).
    predictions : pandas.DataFrame
        Training cases, out-of-fold: binary ``case_id, outcome, probability``; survival
        ``case_id, time, event, risk, risk_at_horizon`` (as the radiomics Cox model writes them).
    folds : pandas.DataFrame
        Per fold of the internal validation (``fold, n, n_events, auc`` or ``c_index``, ...).
    history : pandas.DataFrame
        The final network's training history per epoch (late fusion: every network's, ``source``
        column first).

    Raises
    ------
    DeepTrainingError
        Too few training cases, events for ``deep.cv_folds`` or for the Cox loss's batches.
    ValueError
        Clinical covariates that are not numeric or not in the feature table.
    """
    s = section_settings("deep", config.get("deep"))
    seed = int(config["seed"])
    survival = task_for(config).time_to_event
    device = device or select_device(s["device"])
    rows, X, excluded, M = _cohort_rows(table, crops, config["cohorts"]["train"], s)
    cases = rows["case_id"].astype(str).to_numpy()
    for case, why in sorted(excluded.items()):
        log(f"case {case}: left out of the deep model: {why}")
    C = clinical_matrix(rows, s["clinical_covariates"], log)
    dann = s.get("domain_adaptation", "none") == "dann"
    kind = DANN_KIND if dann else DEEP_KIND
    domain = None
    if dann:  # settings refuse DANN with late fusion or clinical covariates
        targets = [str(t) for t in s.get("target_cohorts") or []]
        if not targets:
            raise CohortError("deep.domain_adaptation: dann needs deep.target_cohorts (the cohorts whose unlabelled "
                              "images the site discriminator sees)")
        domain = target_domain(table, crops, targets, rows["cohort"].astype(str).to_numpy(), log)
    crop = load_crop(crops[rows["case_id"][0]])
    modalities = [str(v) for v in crop["modalities"]]
    o = config["outcome"]
    y = time = event = horizon = horizons = None
    if survival:
        time, event = _survival(rows, o)
        horizons = list(o.get("horizons") or default_horizons(time, event))
        horizon = float((config.get("utility") or {}).get("horizon") or horizons[len(horizons) // 2])
        n_events = int(event.sum())
    else:
        y = _outcome(rows, config)
        n_events = int(y.sum())
    log(f"{len(rows)} training cases ({n_events} events), crops {X.shape[1:]} on {device}, {s['fusion']} fusion"
        + (f", {C.shape[1]} clinical covariates" if C is not None else ""))
    histories = None
    if s["fusion"] == "late":
        final, oof, folds = _late_fusion(X, C, s, seed, device, y, time, event, horizon, modalities, log, M)
        histories = pd.concat([pd.DataFrame(f["history"]).assign(source=name).loc[:, lambda d: ["source", *d.columns[:-1]]]
                               for name, f in final["networks"].items()], ignore_index=True)
        first = next(iter(final["networks"].values()))
        final_model = {name: {"n_train": f["n_train"], "n_validation": f["n_validation"], "best_epoch": f["best_epoch"],
                              "stopped_epoch": f["stopped_epoch"]} for name, f in final["networks"].items()}
        final_model.update(best_epoch=first["best_epoch"], stopped_epoch=first["stopped_epoch"])
        train_scores = predict_late(final, X, C, M)
        history_rows = first["history"]
    else:
        if s["fusion"] != "intermediate" and C is not None:
            raise ValueError("deep.clinical_covariates enter the network under deep.fusion: intermediate (or a "
                             "separate clinical model under late); early fusion stacks image channels only")
        oof, folds = cross_validate(X, y, s, seed, device, time=time, event=event, log=log, domain=domain, clinical=C,
                                    horizon=horizon, masks=M, cases=cases)
        final = fit(X, y, s, seed, device, time=time, event=event, log=log, domain=domain, clinical=C, masks=M,
                    cases=cases)
        final_model = {"n_train": final["n_train"], "n_validation": final["n_validation"],
                       "best_epoch": final["best_epoch"], "stopped_epoch": final["stopped_epoch"]}
        train_scores = predict(final, X, clinical=C, masks=M, cases=cases)[0]
        history_rows = final["history"]
    m = model_settings(config)
    cov = list(s["clinical_covariates"] or [])
    fusion_text = {"early": "early fusion: modalities as input channels of one network",
                   "intermediate": "intermediate fusion: an encoder per modality" + (" and an MLP encoder of the "
                                   "clinical covariates" if cov else "") + ", latent vectors concatenated into one "
                                   "head, trained end to end with one loss",
                   "late": "late fusion: a network per modality" + (" and a clinical model" if cov else "")
                           + ", their out-of-fold predictions combined by a meta-learner (stacking)"}[s["fusion"]]
    card = {
        "model": kind,
        "role": "primary" if m["primary"] == DEEP_KIND and not dann else "comparator",
        "learner": f"MONAI {s['network']} ({s['fusion']} fusion)" + (", domain-adversarial (DANN)" if dann else "")
                   + ("" if s["dimensions"] == "3d" else f", {s['dimensions'].upper()} on axial lesion slices")
                   + (", multi-task (segmentation decoder)" if s["multitask"] else ""),
        "dimensions": s["dimensions"],
        "dimensions_description": dimensions_description(s),
        "network": s["network"], "fusion": s["fusion"], "fusion_description": fusion_text,
        "modalities": modalities,
        "clinical_covariates": cov,
        "crop": {"size_voxels": int(s["crop_size"]), "spacing_mm": float(s["crop_spacing"]),
                 "field_of_view_mm": float(s["crop_size"]) * float(s["crop_spacing"]),
                 "centre": "lesion centre of mass (reference modality mask)",
                 "resampling": "SimpleITK linear interpolation onto one axis-aligned grid"},
        "hyperparameters": {k: s[k] for k in ("epochs", "batch_size", "learning_rate", "weight_decay", "dropout",
                                              "validation_fraction", "patience", "balance", "augmentation",
                                              "cv_folds", "mixed_precision")},
        "features": [f"crop of {', '.join(modalities)}"] + cov,
        "training_cohorts": list(config["cohorts"]["train"]),
        "external_cohorts": list(config["cohorts"]["external"]),
        "outcome": dict(o),
        "n_train": int(len(rows)), "n_events_train": n_events,
        "excluded_cases": excluded,
        "seed": seed,
        "device": describe(device),
        "validation": "external" if config["cohorts"]["external"] else "internal",
        "final_model": {**final_model,
                        "early_stopping": f"validation loss, patience {s['patience']} epochs; best epoch's weights kept"},
        "training_history": history_rows,
        "method": f"Deep biomarker: MONAI {s['dimensions'].upper()} network on a lesion-centred crop (Huang et al. 2017 "
                  "DenseNet; He et al. 2016 ResNet); early stopping (Prechelt 1998)"
                  + ("; multi-task learning with a segmentation decoder (Dice + cross-entropy)" if s["multitask"] else "")
                  + ("; PCGrad (Yu et al. 2020)" if s["multitask"] and s["pcgrad"] else "")
                  + ("; Cox partial-likelihood loss (DeepSurv, Katzman et al. 2018)" if survival else "")
                  + ("; stacked generalisation (Wolpert 1992)" if s["fusion"] == "late" else "")
                  + ("; domain-adversarial training (Ganin et al. 2016)" if dann else ""),
        "domain_adaptation": ({**domain.describe(), "target_cohorts": targets,
                               "transductive": True, "target_outcomes_used": False} if dann else None),
    }
    if s["multitask"]:
        card["multitask"] = multitask_summary(s, folds, history_rows)
    if cov:
        card["clinical_imputation"] = ("missing values imputed by the median of the training part of each fit, then "
                                       "standardised by its mean and SD (fitted on training cases only)")
    if s["fusion"] == "late":
        card["stacking"] = {"sources": final["names"],
                            "meta_learner": "unpenalised Cox regression on the sources' log-risks" if survival
                            else "unpenalised logistic regression on the sources' logits",
                            "clinical_model": (None if not cov else
                                               ("unpenalised Cox regression" if survival
                                                else "unpenalised logistic regression")
                                               + " on the covariates imputed by the training median and standardised"),
                            "fitted_on": f"out-of-fold predictions of {s['cv_folds']}-fold cross-validation only",
                            "internal_validation": "meta-learner cross-fitted: the one predicting fold k is fitted on "
                                                   "the out-of-fold predictions of the other folds",
                            "meta_coefficients_per_sd": dict(zip(final["names"], final["meta"]["coef"]))}
    if survival:
        risk, at_h = oof
        c_folds = folds["c_index"]
        card.update({
            "loss": "negative Cox log partial likelihood, Breslow ties, mean over the events of a batch (batches "
                    "without an event skipped)" if s["fusion"] != "late" else
                    "per network: negative Cox log partial likelihood, Breslow ties",
            "baseline_hazard": "Breslow (1972) on the training cases' log-risks centred on their mean",
            "internal_validation": (f"event-stratified {s['cv_folds']}-fold cross-validation by case; each fold's "
                                    f"network trained with its own validation split and early stopping; out-of-fold "
                                    f"log-risks centred on the fold's training cases, risk at the horizon from the "
                                    f"fold's Breslow baseline"),
            "cv_c_index_mean": float(c_folds.mean()),
            "cv_c_index_sd": float(c_folds.std(ddof=1)) if len(folds) > 1 else float("nan"),
            "apparent_c_index": float(harrell_c(time, event, train_scores)),
            "horizons_days": horizons, "horizon_days": horizon,
            "risk_sd_train": float(np.std(train_scores, ddof=1)),
            "risk_train": [float(v) for v in train_scores],
            "threshold": None,
        })
        predictions = pd.DataFrame({"case_id": rows["case_id"], "time": time, "event": event, "risk": risk,
                                    "risk_at_horizon": at_h})
    else:
        card.update({
            "loss": ("binary cross-entropy, positive class weight n_neg/n_pos" if s["balance"] == "class_weight"
                     else "binary cross-entropy with a class-balanced sampler"),
            "pos_weight": final.get("pos_weight"),
            "internal_validation": (f"stratified {s['cv_folds']}-fold cross-validation by case; each fold's network "
                                    f"trained with its own validation split and early stopping; out-of-fold "
                                    f"probabilities"),
            "cv_auc_mean": float(folds["auc"].mean()),
            "cv_auc_sd": float(folds["auc"].std(ddof=1)) if len(folds) > 1 else float("nan"),
            "apparent_auc": float(roc_auc_score(y, train_scores)),
            "threshold": {"method": m["threshold"], "target": m["threshold_target"],
                          "value": float(decision_threshold(y, oof, m["threshold"], m["threshold_target"])),
                          "fixed_on": "out-of-fold predictions of the training cohorts"},
        })
        predictions = pd.DataFrame({"case_id": rows["case_id"], "outcome": y, "probability": oof})
    history = histories if histories is not None else pd.DataFrame(final["history"])
    return final, ModelCard.from_dict(card), predictions, folds, history


def predict_study(fitted: dict, card: dict, table: pd.DataFrame, crops: dict[str, str], cohort: str, log=print):
    """Apply the frozen deep model to one cohort.

    Returns binary ``case_id, outcome, probability``; survival ``case_id, time, event, risk,
    risk_at_horizon`` (centred log-risk; risk of the event by the card's ``horizon_days`` from
    the training Breslow baseline).

    Raises
    ------
    CohortError
        When the cohort has no usable case, fewer than 2 cases of an outcome class (binary) or
        no event (survival).
    """
    rows, X, excluded, M = _cohort_rows(table, crops, [cohort], _network_settings(fitted))
    cases = rows["case_id"].astype(str).to_numpy()
    for case, why in sorted(excluded.items()):
        log(f"case {case}: no deep prediction: {why}")
    if rows.empty:
        raise CohortError(f"cohort {cohort}: no case with a usable crop (see deep/crops and the deep_crop logs)")
    C = clinical_matrix(rows, card.get("clinical_covariates"), log)
    if task_for(card).time_to_event:
        time, event = _survival(rows, card["outcome"])
        if event.sum() < 1:
            raise CohortError(f"cohort {cohort}: no event among the {len(rows)} cases with a crop; external "
                              f"validation of a survival model needs events")
        risk = _scores(fitted, X, C, M, cases)
        b = _baseline(fitted)
        return pd.DataFrame({"case_id": rows["case_id"], "time": time, "event": event, "risk": risk,
                             "risk_at_horizon": risk_at(b["time"], b["cumhaz"], risk, card["horizon_days"])})
    y = _outcome(rows, {"outcome": card["outcome"]})
    if min(y.sum(), len(y) - y.sum()) < 2:
        raise CohortError(f"cohort {cohort}: {int(y.sum())} positive and {int(len(y) - y.sum())} negative cases with "
                          f"a crop; external validation needs at least 2 of each")
    return pd.DataFrame({"case_id": rows["case_id"], "outcome": y, "probability": _scores(fitted, X, C, M, cases)})


def embedding_tables(fitted: dict, table: pd.DataFrame, scans: pd.DataFrame, crop_paths: list[str], config: dict):
    """Penultimate-layer embeddings of every crop by the frozen network.

    Returns
    -------
    features : pandas.DataFrame
        Primary scans: ``case_id, cohort``, outcome columns, ``deep_0 .. deep_{k-1}`` (k = the
        image embedding size; DenseNet121: 1024 per branch; a clinical encoder's latent vector is
        left out). Not defined for late fusion (several networks): raises ValueError.
    repeats : pandas.DataFrame
        Cases with two or more reference-modality scans: ``case_id, repeat, deep_*`` (long repeat
        table for :func:`acceflow.metrics.icc.icc_table`).
    """
    if fitted.get("late"):
        raise ValueError("deep features are the embedding of one network; late fusion has one per modality: set "
                         "deep.embedding.enabled: false")
    by_scan = {os.path.basename(p)[:-len(".npz")]: p for p in crop_paths}
    ids = [s for s in scans.index if s in by_scan]
    settings = fitted["settings"]
    masks = [] if needs_masks(settings) else None
    X, ok, _ = load_stack([by_scan[s] for s in ids], masks, slices=settings.get("dimensions", "3d") != "3d")
    ids = [ids[i] for i in ok]
    M = np.stack(masks) if masks else None
    C = None
    if fitted.get("clinical") is not None and len(ids):
        # the clinical encoder needs its covariates; only the image part of the latent vector is a deep feature
        case_of = scans.loc[ids, "case_id"]
        C = clinical_matrix(table.set_index("case_id").loc[case_of].reset_index(),
                            fitted["settings"]["clinical_covariates"], log=lambda line: None)
    _, emb = predict(fitted, X, embed=True, clinical=C, masks=M, cases=ids) if len(ids) else (None, np.zeros((0, 0)))
    if C is not None:
        emb = emb[:, :fitted["model"].embedding_dim - fitted["model"].clinical[-2].out_features]
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
