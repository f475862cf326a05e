"""Synthetic cases with an audit: generate from the training cohorts, audit against real cases, and
train the TSTR / augmented comparators (issue 17; workflow/rules/synthetic.smk).

The steps, each a rule:

1. :func:`generate` — the training cohorts' cases (never an external cohort) are split, stratified
   by outcome, into the generator's training cases and a held-out fraction
   (``synthetic.holdout_fraction``) it never sees; the generator (``synthetic.generator``;
   ``smote``: :func:`acceflow.models.synthetic.smote_samples`) makes ``n_synthetic`` labelled cases
   from the training part only. Output: the split and ``synthetic/features.tsv`` (``case_id``,
   ``label`` 0/1 with 1 = ``outcome.positive``, the feature columns of ``features/features.tsv``).
2. :func:`audit` — the statistics of :mod:`acceflow.metrics.synthetic` per feature and stratum
   (``all``, ``0``, ``1``), the dependence, detectability, memorisation (synthetic → training
   against holdout → training), precision / recall, Fréchet distance, label invariance, the range
   check, and the verdicts with the rule that decided each.
3. :func:`train_arm` — the comparators ``synthetic_tstr`` (each fit on the synthetic cases only),
   ``synthetic_augmented`` (each fit on its real training cases + the synthetic cases) and
   ``smote_augmented`` (each fit on its real training cases + SMOTE cases made from them), by the
   imaging model's own procedure (:func:`acceflow.study.training.train` with ``augment``): synthetic
   cases enter training folds only, never a test fold, and the frozen model meets external cohorts
   as every model does. :func:`comparison` tests each against the real-only imaging model (TRTR)
   with the paired DeLong test.

Caveat written into the cards: the generator of ``synthetic_augmented`` / ``synthetic_tstr`` saw
the training cohorts' cases outside the holdout, including those that later fall in a CV test fold;
their out-of-fold AUC is therefore optimistic, and their external AUC is the figure to read
(``smote_augmented`` regenerates inside each fold and has no such leak).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from acceflow.io.manifest import binary_outcome
from acceflow.metrics import synthetic as audit_stats
from acceflow.metrics.compare import compare_models
from acceflow.models.synthetic import MIN_CASES_PER_CLASS, smote_balance, smote_samples
from acceflow.study.settings import ConfigError, SYNTHETIC_KINDS, outcome_columns, section_settings
from acceflow.study.training import feature_columns, train

log = logging.getLogger(__name__)

__all__ = ["synthetic_settings", "real_cases", "holdout_split", "generate", "audit", "train_arm", "comparison",
           "MIN_GENERATOR_CASES", "GAN_KINDS", "gan_settings", "gan_training_crops", "train_gan", "sample_gan",
           "crop_features", "slice_grid_crops"]

#: The image generators (acceflow.deep.synthetic; rules synthetic_gan_*): trained on the deep model's
#: lesion-centred crops of the generator-training cases.
GAN_KINDS = ("wgan_gp", "cgan")

#: Fewest generator-training cases per outcome class: SMOTE interpolates between two, and the audit's
#: k-NN precision / recall (k = 5) needs k + 1 cases of either set.
MIN_GENERATOR_CASES = 6


def synthetic_settings(config: dict) -> dict:
    """The ``synthetic`` section, complete, with ``seed`` resolved to the study's seed when null."""
    s = section_settings("synthetic", config.get("synthetic") or {})
    if s["seed"] is None:
        s["seed"] = int(config.get("seed", 42))
    return s


def real_cases(table: pd.DataFrame, config: dict) -> tuple[pd.DataFrame, list[str], np.ndarray]:
    """The training cohorts' cases with a known outcome, their feature columns and 0/1 outcome.

    Features: the numeric columns of the feature table other than ids, outcome and clinical covariates
    (or the config's explicit ``features``). External cohorts are never returned.
    """
    rows = table[table["cohort"].isin(config["cohorts"]["train"])]
    y = binary_outcome(rows[config["outcome"]["column"]], config["outcome"]["positive"])
    rows = rows[y.notna().to_numpy()].reset_index(drop=True)
    y = y.dropna().astype(int).to_numpy()
    feats = feature_columns(table, exclude=[*outcome_columns(config), *config["clinical"]],
                            explicit=config["features"])
    return rows, feats, y


def holdout_split(case_ids, y, fraction: float, seed: int) -> pd.DataFrame:
    """Stratified split of the training cases: ``case_id``, ``label``, ``role`` (generator_train / holdout).

    Raises
    ------
    ConfigError
        When a class has fewer than :data:`MIN_GENERATOR_CASES` generator-training cases or the
        holdout would hold fewer than 2 cases (the minimum named, with the fix).
    """
    y = np.asarray(y, dtype=int)
    for c in (0, 1):
        n = int(np.sum(y == c))
        if n == 0:
            raise ConfigError(f"synthetic: outcome class {c} has no case in the training cohorts; the generator and "
                              f"its per-class audit need both classes (check outcome.positive)")
        if round(n * (1 - fraction)) < MIN_GENERATOR_CASES:
            raise ConfigError(
                f"synthetic: outcome class {c} has {n} training cases, {round(n * (1 - fraction))} after holding out "
                f"{fraction:.0%}; the generator needs at least {MIN_GENERATOR_CASES} per class (SMOTE's neighbours, "
                f"the audit's k-NN precision/recall): add cases, lower synthetic.holdout_fraction, or set "
                f"synthetic.enabled: false")
    ids = np.asarray(case_ids).astype(str)
    train_ids, hold_ids = train_test_split(ids, test_size=fraction, stratify=y, random_state=seed)
    if len(hold_ids) < 2:
        raise ConfigError(f"synthetic.holdout_fraction {fraction} leaves {len(hold_ids)} held-out case(s); the "
                          f"memorisation audit needs at least 2: raise the fraction")
    role = pd.Series("generator_train", index=ids)
    role[hold_ids] = "holdout"
    return pd.DataFrame({"case_id": ids, "label": y, "role": role.to_numpy()})


def _per_class(n_total: int, y: np.ndarray, class_ratio: str) -> dict:
    if class_ratio == "balanced":
        return {0: n_total // 2, 1: n_total - n_total // 2}
    n1 = int(round(n_total * float(np.mean(y))))
    return {0: n_total - n1, 1: n1}


def generate(table: pd.DataFrame, config: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split the training cases and make the synthetic cases (``synthetic.generator``).

    Returns
    -------
    split : pandas.DataFrame
        ``case_id``, ``label``, ``role`` of every training case with a known outcome.
    synthetic : pandas.DataFrame
        ``case_id`` (``syn_00001``, ...), ``label`` (0/1), the feature columns, in the features' units.
    """
    s = synthetic_settings(config)
    rows, feats, y = real_cases(table, config)
    split = holdout_split(rows["case_id"], y, s["holdout_fraction"], s["seed"])
    fit = (split["role"] == "generator_train").to_numpy()
    X = rows.loc[fit, feats].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    n_total = int(s["n_synthetic"] or fit.sum())
    per_class = _per_class(n_total, y[fit], s["class_ratio"])
    if s["generator"] != "smote":
        raise ConfigError(f"synthetic.generator {s['generator']!r} makes image crops (rules synthetic_gan_train, "
                          f"synthetic_gan_sample, synthetic_gan_features), not feature rows; generate() is SMOTE's")
    X_new, y_new = smote_samples(X, y[fit], per_class, s["smote_k_neighbors"], s["seed"])
    log.info("synthetic: %s made %d cases (%s) from %d generator-training cases (%d held out), %d features",
             s["generator"], len(y_new), per_class, int(fit.sum()), int((~fit).sum()), len(feats))
    synthetic = pd.DataFrame(X_new, columns=feats)
    synthetic.insert(0, "label", y_new.astype(int))
    synthetic.insert(0, "case_id", [f"syn_{i + 1:05d}" for i in range(len(synthetic))])
    return split, synthetic


def _complete(real: pd.DataFrame, *others: pd.DataFrame) -> tuple[list[str], list[np.ndarray], list[str]]:
    """Feature matrices with NaN filled by the real set's medians; features all-missing or constant in
    the real set are dropped (named)."""
    med = real.median()
    keep = [c for c in real.columns if np.isfinite(med[c]) and real[c].nunique(dropna=True) > 1]
    dropped = [c for c in real.columns if c not in keep]
    mats = [real[keep].fillna(med[keep]).to_numpy(float)] + [o[keep].fillna(med[keep]).to_numpy(float) for o in others]
    return keep, mats, dropped


def lesion_intensity_ranges(real: pd.DataFrame, y_real, synthetic: pd.DataFrame, y_synthetic) -> pd.DataFrame:
    """The lesions' intensity range, real against synthetic, per image and stratum.

    Reads each lesion's ``…original_firstorder_Minimum`` / ``…_Maximum`` (one pair per image or
    modality prefix, e.g. ``PET_original_firstorder_Minimum``), in the units the features were
    extracted in (HU, SUV, z-scores after the study's normalisation), and applies
    :func:`acceflow.metrics.synthetic.intensity_range`; lesions missing either value are left out.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`~acceflow.metrics.synthetic.intensity_range` with ``image`` (the
        prefix, ``original`` for a single image) first; empty when the table has no first-order
        minimum and maximum (then the range is not audited, and the summary says ``None``).
    """
    suffix = "original_firstorder_Minimum"
    tables = []
    for col in sorted(c for c in real.columns if c.endswith(suffix)):
        prefix = col[: -len(suffix)]
        high = f"{prefix}original_firstorder_Maximum"
        if high not in real.columns or col not in synthetic.columns or high not in synthetic.columns:
            continue
        r = real[[col, high]].apply(pd.to_numeric, errors="coerce").to_numpy(float)
        sy = synthetic[[col, high]].apply(pd.to_numeric, errors="coerce").to_numpy(float)
        r_ok, s_ok = np.isfinite(r).all(axis=1), np.isfinite(sy).all(axis=1)
        t = audit_stats.intensity_range(r[r_ok, 0], r[r_ok, 1], np.asarray(y_real)[r_ok], sy[s_ok, 0], sy[s_ok, 1],
                                        np.asarray(y_synthetic)[s_ok])
        t.insert(0, "image", prefix.rstrip("_") or "original")
        tables.append(t)
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def audit(table: pd.DataFrame, split: pd.DataFrame, synthetic: pd.DataFrame, config: dict) -> dict:
    """The audit of the synthetic cases against the generator's training cases and the holdout.

    Returns
    -------
    dict with
        ``fidelity`` (DataFrame: ``feature``, ``stratum`` (all, 0, 1), the columns of
        :func:`acceflow.metrics.synthetic.fidelity_table`, ``real_min``, ``real_max``,
        ``synthetic_min``, ``synthetic_max``; worst features first within a stratum),
        ``summary`` (flat dict, including the verdicts ``faithful``, ``memorised`` and their rules),
        ``correlations`` (long DataFrame), ``distances`` (DataFrame: ``set``, ``distance``).
    """
    s = synthetic_settings(config)
    rows, feats, y = real_cases(table, config)
    role = rows["case_id"].astype(str).map(split.set_index("case_id")["role"])
    if role.isna().any():
        raise ValueError(f"synthetic/split.tsv lacks training case(s) {list(rows['case_id'][role.isna()][:5])}: "
                         f"the feature table changed after generation; re-run the synthetic rules")
    real_df = rows[feats].apply(pd.to_numeric, errors="coerce")
    is_train = (role == "generator_train").to_numpy()
    missing = [c for c in feats if c not in synthetic]
    if missing:
        raise ValueError(f"synthetic/features.tsv lacks feature column(s) {missing[:5]} of features/features.tsv")
    syn_df = synthetic[feats].apply(pd.to_numeric, errors="coerce")
    keep, (train_X, hold_X, syn_X), dropped = _complete(real_df[is_train], real_df[~is_train], syn_df)
    y_train, y_syn = y[is_train], synthetic["label"].astype(int).to_numpy()

    tables = []
    for stratum, r_mask, s_mask in [("all", slice(None), slice(None))] + [
            (str(c), y_train == c, y_syn == c) for c in (0, 1)]:
        r, sx = train_X[r_mask], syn_X[s_mask]
        if min(len(r), len(sx)) < 2:
            log.warning("synthetic audit: stratum %s has %d real and %d synthetic cases; left out", stratum, len(r),
                        len(sx))
            continue
        t = audit_stats.fidelity_table(r, sx, keep, y_train[r_mask] if stratum == "all" else None,
                                       y_syn[s_mask] if stratum == "all" else None, seed=s["seed"])
        t.insert(1, "stratum", stratum)
        t["real_min"], t["real_max"] = r.min(axis=0), r.max(axis=0)
        t["synthetic_min"], t["synthetic_max"] = sx.min(axis=0), sx.max(axis=0)
        tables.append(t.sort_values(["ks_statistic", "feature"], ascending=[False, True]))
    fidelity = pd.concat(tables, ignore_index=True)

    corr = audit_stats.correlation_comparison(train_X, syn_X)
    iu = np.triu_indices(len(keep), k=1)
    correlations = pd.DataFrame({"feature_a": np.asarray(keep)[iu[0]], "feature_b": np.asarray(keep)[iu[1]],
                                 "rho_real": corr["real"][iu], "rho_synthetic": corr["synthetic"][iu]})
    folds = min(s["detection_folds"], len(train_X), len(syn_X))
    detection = audit_stats.detection_auc(train_X, syn_X, folds=folds, seed=s["seed"])
    mem = audit_stats.memorisation(train_X, hold_X, syn_X)
    z_train, z_syn = audit_stats.zscore_by(train_X, syn_X)
    pr = audit_stats.precision_recall(z_train, z_syn, k=s["precision_recall_k"])
    frechet = audit_stats.frechet_distance(z_train, z_syn)
    invariance = audit_stats.label_invariance(train_X, y_train, syn_X, y_syn)
    outside = (syn_X < train_X.min(axis=0)) | (syn_X > train_X.max(axis=0))
    ranges = lesion_intensity_ranges(real_df[is_train], y_train, syn_df, y_syn)

    all_rows = fidelity[fidelity["stratum"] == "all"]
    share_pass = float(np.mean(all_rows["ks_qvalue"] >= 0.05))
    v = s["verdict"]
    faithful = share_pass >= v["faithful_min_share_ks"] and detection <= v["faithful_max_detection_auc"]
    memorised = mem["share_too_close"] > v["memorised_min_share_too_close"] or mem["n_exact_copies"] > 0
    summary = {
        "generator": s["generator"], "seed": s["seed"], "holdout_fraction": s["holdout_fraction"],
        "n_generator_train": int(is_train.sum()), "n_holdout": int((~is_train).sum()),
        "n_synthetic": int(len(syn_X)), "n_synthetic_0": int(np.sum(y_syn == 0)), "n_synthetic_1": int(np.sum(y_syn == 1)),
        "n_features": len(keep), "n_features_dropped": len(dropped), "features_dropped": dropped,
        "share_features_ks_pass": share_pass,
        "correlation_mae": corr["correlation_mae"], "correlation_similarity": corr["correlation_similarity"],
        "detection_auc": detection, "detection_folds": int(folds),
        **{k: val for k, val in mem.items() if k not in ("dcr_synthetic", "dcr_holdout")},
        "precision": pr["precision"], "recall": pr["recall"], "precision_recall_k": pr["k"],
        "frechet_distance": frechet,
        **{f"label_invariance_share_rejected_{r.stratum}": r.share_rejected for r in invariance.itertuples()},
        "share_synthetic_values_outside_real_range": float(outside.mean()),
        "share_synthetic_cases_outside_real_range": float(outside.any(axis=1).mean()),
        "intensity_range": ranges.to_dict(orient="records"),
        "intensity_share_within_real_range": (float(ranges.loc[ranges["stratum"] == "all", "share_within"].min())
                                              if len(ranges) else None),
        "faithful": bool(faithful),
        "faithful_rule": (f"share of features with KS q >= 0.05 (stratum all) >= {v['faithful_min_share_ks']} and "
                          f"detection AUC <= {v['faithful_max_detection_auc']}"),
        "memorised": bool(memorised),
        "memorised_rule": (f"share of synthetic cases nearer a training case than the 5th percentile of holdout "
                           f"distances > {v['memorised_min_share_too_close']}, or any exact copy"),
    }
    distances = pd.DataFrame({"set": ["synthetic"] * len(mem["dcr_synthetic"]) + ["holdout"] * len(mem["dcr_holdout"]),
                              "distance": np.r_[mem["dcr_synthetic"], mem["dcr_holdout"]]})
    return {"fidelity": fidelity, "summary": summary, "correlations": correlations, "distances": distances}


def train_arm(table: pd.DataFrame, synthetic: pd.DataFrame | None, config: dict, stable: list[str] | None,
              arm: str):
    """Train one synthetic comparator (:data:`~acceflow.study.settings.SYNTHETIC_KINDS`) by the imaging
    model's procedure; returns what :func:`acceflow.study.training.train` returns, the card named ``arm``."""
    if arm not in SYNTHETIC_KINDS:
        raise ValueError(f"synthetic comparator {arm!r} unknown; one of {SYNTHETIC_KINDS}")
    s = synthetic_settings(config)
    if arm == "smote_augmented":
        def augment(X, y):
            return smote_balance(X, y, s["smote_k_neighbors"], s["seed"])
        note = (f"each fit (training folds of the outer and the inner CV, final refit) on its real cases + SMOTE cases of the minority "
                f"class up to the majority's count, made from those real cases only (k = {s['smote_k_neighbors']})")
    else:
        if synthetic is None:
            raise ValueError(f"comparator {arm} needs synthetic/features.tsv")
        y_syn = synthetic["label"].astype(int).to_numpy()

        def augment(X, y):
            X_syn = synthetic.reindex(columns=list(X.columns)).apply(pd.to_numeric, errors="coerce")
            if arm == "synthetic_tstr":
                return X_syn.reset_index(drop=True), y_syn
            return pd.concat([X, X_syn], ignore_index=True), np.r_[y, y_syn]
        what = "on the synthetic cases only" if arm == "synthetic_tstr" else "on its real cases + the synthetic cases"
        note = (f"each fit (training folds of the outer and the inner CV, final refit) {what} ({len(synthetic)} cases of generator "
                f"{s['generator']}, fitted on the training cohorts minus a {s['holdout_fraction']:.0%} holdout); "
                f"the generator saw cases of the CV test folds, so the out-of-fold AUC is optimistic: read the "
                f"external cohorts")
    model, card, predictions, folds = train(table, config, stable, kind="imaging", augment=augment, augment_note=note)
    data = card.to_dict()
    data.update(model=arm, role="comparator")
    return model, type(card).from_dict(data), predictions, folds


def comparison(predictions: dict[str, pd.DataFrame], alpha: float = 0.05) -> pd.DataFrame:
    """AUCs with DeLong CIs and the paired DeLong test of each synthetic comparator against ``imaging``
    (real only, TRTR), on one cohort's cases (:func:`acceflow.metrics.compare.compare_models`)."""
    if "imaging" not in predictions:
        raise ValueError("the synthetic comparison needs the real-only imaging model's predictions")
    table = compare_models(predictions, reference="imaging", alpha=alpha)
    table.insert(1, "arm", table["model"].map({"imaging": "TRTR (real only)", "synthetic_tstr": "TSTR (synthetic only)",
                                               "synthetic_augmented": "real + synthetic",
                                               "smote_augmented": "real + SMOTE (in fold)"}))
    return table


# ---------------------------------------------------------------------------------------------------
# The image path (synthetic.generator wgan_gp / cgan): crops -> generator -> synthetic crops -> features


def gan_settings(config: dict):
    """:class:`acceflow.deep.synthetic.GanSettings` from ``synthetic.generator`` and ``synthetic.gan``
    (seed: the synthetic stage's seed)."""
    from acceflow.deep.synthetic import GanSettings

    s = synthetic_settings(config)
    g = s["gan"]
    return GanSettings(kind=s["generator"], iterations=int(g["iterations"]), n_critic=int(g["n_critic"]),
                       batch_size=int(g["batch_size"]), latent_dim=int(g["latent_dim"]),
                       channels=tuple(int(c) for c in g["channels"]), learning_rate=float(g["learning_rate"]),
                       gp_weight=float(g["gp_weight"]), seed=int(s["seed"]), device=str(g["device"]),
                       amp=bool(g["amp"]))


def gan_training_crops(table: pd.DataFrame, crops: dict[str, str], config: dict):
    """The holdout split and the lesion crops of the generator-training cases (role ``generator_train``).

    Parameters
    ----------
    table : the feature table (``features/features.tsv``): cohorts, outcome, case ids.
    crops : case id -> crop file (:func:`acceflow.study.deep.case_crops`; ``deep_crop`` outputs).
    config : the study config.

    Returns
    -------
    split : DataFrame (``case_id``, ``label``, ``role``), as :func:`holdout_split`; held-out and external
        cases are never read.
    images, masks : arrays (n, D, H, W): the reference modality's intensities in its units after the
        study's preprocessing (HU, SUV, ...), and the 0/1 lesion mask.
    labels : array (n,) of 0/1.
    spacing_mm : the crops' isotropic voxel spacing.
    excluded : dict case id -> why its crop was not used (no crop, crop error, empty lesion mask).

    Raises
    ------
    ConfigError
        The crops hold several modalities (the generator makes the reference modality only).
    """
    from acceflow.deep.crops import load_crop

    s = synthetic_settings(config)
    rows, _, y = real_cases(table, config)
    split = holdout_split(rows["case_id"], y, s["holdout_fraction"], s["seed"])
    fit = split[split["role"] == "generator_train"]
    images, masks, labels, excluded, spacing = [], [], [], {}, None
    for case, label in zip(fit["case_id"], fit["label"]):
        if case not in crops:
            excluded[case] = "no crop (no reference-modality scan)"
            continue
        crop = load_crop(crops[case])
        if "error" in crop:
            excluded[case] = f"crop error: {crop['error']}"
            continue
        if crop["image"].shape[0] != 1:
            raise ConfigError(f"synthetic.generator {s['generator']}: the crops hold {crop['image'].shape[0]} "
                              f"modalities {list(crop['modalities'])}; the generator makes the reference modality "
                              f"only: set deep.modalities to one modality (or use synthetic.generator: smote)")
        if not crop["mask"].any():
            excluded[case] = "the crop holds no lesion voxel (raise deep.crop_size or crop_spacing)"
            continue
        images.append(crop["image"][0])
        masks.append(crop["mask"])
        labels.append(int(label))
        spacing = float(crop["spacing_mm"])
    if not images:
        raise ConfigError("synthetic: no generator-training case has a usable crop (see deep/crops and the deep_crop "
                          "logs)")
    return split, np.stack(images), np.stack(masks), np.asarray(labels, dtype=int), spacing, excluded


def train_gan(table: pd.DataFrame, crops: dict[str, str], config: dict, log=log.info):
    """Train the image generator on the generator-training cases' crops.

    ``wgan_gp``: one WGAN-GP per outcome class (so every synthetic lesion is labelled), seeds
    ``seed + class``; ``cgan``: one label-conditioned generator. Both on CUDA with mixed precision when
    present, else the CPU (:func:`acceflow.deep.synthetic.train_generator`).

    Returns
    -------
    split : DataFrame, as :func:`gan_training_crops`.
    generators : dict ``"0"``/``"1"`` (wgan_gp) or ``"all"`` (cgan) -> TrainedGenerator.
    history : DataFrame (``generator``, ``iteration``, ``critic_loss``, ``generator_loss``,
        ``gradient_penalty``, ``wasserstein``).
    card : dict (kind, settings, crops per class, excluded cases with reasons, seconds, it/s, device).

    Raises
    ------
    ValueError
        Too few training crops for a class (the minimum, :data:`acceflow.deep.synthetic.MIN_TRAINING_CROPS`,
        and the fix named).
    acceflow.deep.synthetic.GeneratorDiverged
        A NaN / infinite loss; the history so far is attached.
    """
    from dataclasses import asdict, replace

    from acceflow.deep.synthetic import MIN_TRAINING_CROPS, _device, train_generator

    g = gan_settings(config)
    split, X, M, y, spacing, excluded = gan_training_crops(table, crops, config)
    for case, why in excluded.items():
        log(f"case {case} left out of the generator's training: {why}")
    counts = {c: int(np.sum(y == c)) for c in (0, 1)}
    for c, n in counts.items():
        if n < MIN_TRAINING_CROPS:
            raise ValueError(f"synthetic.generator {g.kind}: outcome class {c} has {n} generator-training crops; the "
                             f"generator needs at least {MIN_TRAINING_CROPS} per class (add training cases, lower "
                             f"synthetic.holdout_fraction, or use synthetic.generator: smote)")
    log(f"training {g.kind} on {len(X)} crops {X.shape[1:]} ({counts}), {g.iterations} iterations")
    if g.kind == "cgan":
        generators = {"all": train_generator(X, M, y, g)}
    else:
        generators = {str(c): train_generator(X[y == c], M[y == c], None, replace(g, seed=g.seed + c)) for c in (0, 1)}
    history = pd.concat([pd.DataFrame(t.history).assign(generator=k) for k, t in generators.items()], ignore_index=True)
    history = history[["generator", *[c for c in history.columns if c != "generator"]]]
    seconds = float(sum(t.seconds for t in generators.values()))
    device = _device(g.device)
    card = {"generator": g.kind, "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(g).items()},
            "networks": list(generators), "crop_shape": list(X.shape[1:]), "crop_spacing_mm": spacing,
            "n_training_crops": int(len(X)), "n_training_crops_per_class": {str(c): n for c, n in counts.items()},
            "intensity_range": [float(X[M > 0].min()), float(X[M > 0].max())],
            "lesion_voxels_range": [int(v.min()), int(v.max())] if (v := (M > 0).reshape(len(M), -1).sum(axis=1)).size
            else None,
            "excluded": excluded, "seconds": seconds,
            "iterations_per_second": float(len(generators) * g.iterations / seconds) if seconds else None,
            "device": str(device), "mixed_precision": bool(g.amp and device.type == "cuda"),
            "method": ("3D WGAN-GP (Gulrajani et al. 2017), one per outcome class" if g.kind == "wgan_gp" else
                       "3D label-conditioned WGAN-GP (Mirza & Osindero 2014; Gulrajani et al. 2017)")
            + ", image and lesion mask as two channels, MONAI Generator / Discriminator"}
    return split, generators, history, card


#: a synthetic lesion mask with fewer than 1/f or more than f times the voxels of the smallest / largest
#: real generator-training lesion (same crop grid) is implausible: dropped before extraction (an
#: undertrained generator makes masks of scattered noise that pyradiomics takes minutes each to read)
IMPLAUSIBLE_VOLUME_FACTOR = 2.0


def plausible_lesions(masks: np.ndarray, lesion_voxels_range=None) -> tuple[np.ndarray, list[str]]:
    """Which synthetic lesion masks go on to extraction, and why the others do not.

    Parameters
    ----------
    masks : array (n, D, H, W), non-zero inside the lesion.
    lesion_voxels_range : [min, max] voxel counts of the real generator-training lesions on the same
        crop grid (the generator card's ``lesion_voxels_range``); None: only empty masks are dropped.

    Returns
    -------
    keep : bool array (n,); reasons : list of n strings ("" where kept).
    """
    voxels = (np.asarray(masks) > 0).reshape(len(masks), -1).sum(axis=1)
    lo, hi = (None, None) if lesion_voxels_range is None else (lesion_voxels_range[0] / IMPLAUSIBLE_VOLUME_FACTOR,
                                                               lesion_voxels_range[1] * IMPLAUSIBLE_VOLUME_FACTOR)
    reasons = []
    for n in voxels:
        if n == 0:
            reasons.append("empty lesion mask")
        elif lo is not None and not lo <= n <= hi:
            reasons.append(f"implausible lesion volume: {int(n)} voxels, real generator-training lesions "
                           f"{int(lesion_voxels_range[0])}-{int(lesion_voxels_range[1])} (kept: within a factor "
                           f"{IMPLAUSIBLE_VOLUME_FACTOR:g}); train the generator longer (synthetic.gan.iterations)")
        else:
            reasons.append("")
    return np.array([not r for r in reasons], dtype=bool), reasons


def sample_gan(generators: dict, split: pd.DataFrame, config: dict, log=log.info, lesion_voxels_range=None):
    """``n_synthetic`` labelled synthetic crops (``synthetic.class_ratio`` between the classes).

    Returns
    -------
    dict with ``case_id`` (n,), ``label`` (n,), ``image`` (n, D, H, W) float32 in the training crops'
    units (the generator's intensity scaling undone), ``mask`` (n, D, H, W) uint8, ``dropped`` (the
    ids of synthetic lesions whose mask came out empty, or, with ``lesion_voxels_range``, of an
    implausible volume: :func:`plausible_lesions`; dropped and counted, never passed on) and
    ``dropped_reason`` (one per dropped id).
    """
    from acceflow.deep.synthetic import sample

    s = synthetic_settings(config)
    fit = split[split["role"] == "generator_train"]
    y_fit = fit["label"].astype(int).to_numpy()
    per_class = _per_class(int(s["n_synthetic"] or len(fit)), y_fit, s["class_ratio"])
    if "all" in generators:
        images, masks, labels = sample(generators["all"], per_class, seed=s["seed"])
    else:
        parts = [sample(generators[str(c)], per_class[c], seed=s["seed"] + c) for c in (0, 1) if per_class[c]]
        images, masks = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        labels = np.concatenate([[c] * per_class[c] for c in (0, 1) if per_class[c]]).astype(int)
    ids = np.array([f"syn_{i + 1:05d}" for i in range(len(labels))])
    keep, reasons = plausible_lesions(masks, lesion_voxels_range)
    if not keep.all():
        log(f"{int((~keep).sum())} of {len(keep)} synthetic lesions dropped (empty or implausible mask): "
            f"{[f'{i}: {r}' for i, r in zip(ids[~keep][:5], np.array(reasons)[~keep][:5])]}")
    return {"case_id": ids[keep], "label": labels[keep].astype(int), "image": images[keep].astype(np.float32),
            "mask": masks[keep].astype(np.uint8), "dropped": ids[~keep],
            "dropped_reason": np.array([r for r, k in zip(reasons, keep) if not k], dtype=str)}


def crop_features(crops: dict, spacing_mm: float, params_path, overrides: dict | None, label: int,
                  columns: list[str], preprocessing: dict | None = None,
                  log=log.info) -> tuple[pd.DataFrame, pd.DataFrame]:
    """pyradiomics features of synthetic crops with the study's own settings and library call.

    Each crop (isotropic ``spacing_mm``, identity direction) is first resampled onto the voxel grid
    the real scans were extracted on (``preprocessing``'s ``spacing``, ``image_interpolator``,
    ``mask_interpolator``, ``mask_threshold``, by the preprocess rule's
    :func:`acceflow.imaging.preprocess.resample` / :func:`~acceflow.imaging.preprocess.resample_mask`;
    texture features depend on the voxel size), written as a NIfTI image and mask and passed to
    :func:`acceflow.imaging.extract.extract_scan`, the function the ``extract_case`` rule calls for
    every real scan, with the reference modality's parameter file and overrides.

    Parameters
    ----------
    crops : dict from :func:`sample_gan` (``case_id``, ``label``, ``image``, ``mask``, ``dropped``).
    spacing_mm : voxel spacing of the crops.
    params_path, overrides, label : the reference modality's pyradiomics parameter file, its
        ``discretisation`` / ``resegment`` / ``outlier_sd`` and the mask label (``extraction.label``).
    columns : the feature columns of ``features/features.tsv``.
    preprocessing : the config's ``preprocessing`` section; None (or ``spacing`` null): the crop grid.

    Returns
    -------
    features : DataFrame ``case_id``, ``label``, ``columns`` (the cases extracted).
    qc : DataFrame ``case_id``, ``label``, ``status`` (ok, dropped), ``reason``: empty or implausible
        masks (``crops["dropped_reason"]``) and failed extractions are dropped and counted here, the other
        cases go on.

    Raises
    ------
    ValueError
        The extraction yields none of ``columns`` (e.g. a multi-modality feature table whose columns
        carry a modality prefix), or no synthetic case could be extracted.
    """
    import tempfile

    import SimpleITK as sitk

    from acceflow.imaging.extract import extract_scan
    from acceflow.imaging.preprocess import resample, resample_mask

    pre = preprocessing or {}
    dropped = list(crops.get("dropped", []))
    why = list(crops.get("dropped_reason", ["empty lesion mask"] * len(dropped)))
    rows, qc = [], [{"case_id": c, "label": "", "status": "dropped", "reason": r} for c, r in zip(dropped, why)]
    with tempfile.TemporaryDirectory() as tmp:
        for case, y, image, mask in zip(crops["case_id"], crops["label"], crops["image"], crops["mask"]):
            img = sitk.GetImageFromArray(np.asarray(image, dtype=np.float32))
            msk = sitk.GetImageFromArray((np.asarray(mask) > 0).astype(np.uint8) * np.uint8(label))
            for x in (img, msk):
                x.SetSpacing([float(spacing_mm)] * 3)
            if pre.get("spacing"):
                img = resample(img, pre["spacing"], pre.get("image_interpolator", "bspline"))
                msk = resample_mask(msk, img, pre.get("mask_interpolator", "nearest"), pre.get("mask_threshold", 0.5))
            ip, mp = f"{tmp}/{case}_image.nii.gz", f"{tmp}/{case}_mask.nii.gz"
            sitk.WriteImage(img, ip)
            sitk.WriteImage(msk, mp)
            try:
                features, _ = extract_scan(ip, mp, params_path, label, overrides)
            except Exception as exc:  # noqa: BLE001 - one synthetic lesion failing is dropped and counted
                log(f"synthetic {case}: extraction failed, dropped: {exc}")
                qc.append({"case_id": case, "label": int(y), "status": "dropped", "reason": f"extraction failed: {exc}"})
                continue
            rows.append({"case_id": case, "label": int(y), **features})
            qc.append({"case_id": case, "label": int(y), "status": "ok", "reason": ""})
    if not rows:
        reasons = sorted({q["reason"].split(":")[0] for q in qc})
        message = (f"no synthetic lesion could be extracted ({len(qc)} dropped: {'; '.join(reasons)}; the first: "
                   f"{qc[0]['reason'] if qc else 'none generated'})")
        if "synthetic.gan.iterations" not in message:
            message += "; the generator needs more iterations (synthetic.gan.iterations) or training cases"
        raise ValueError(message)
    table = pd.DataFrame(rows)
    found = [c for c in columns if c in table]
    if not found:
        raise ValueError(f"pyradiomics gave none of the feature columns of features/features.tsv (e.g. "
                         f"{columns[:3]}); with several modalities the columns carry a modality prefix: set "
                         f"deep.modalities to one modality")
    missing = [c for c in columns if c not in table]
    if missing:
        log(f"{len(missing)} feature column(s) of features/features.tsv not extracted from the crops (left empty): "
            f"{missing[:5]}")
    return table.reindex(columns=["case_id", "label", *columns]), pd.DataFrame(qc)


def slice_grid_crops(split: pd.DataFrame, crops: dict[str, str], synthetic: dict, n: int = 4) -> tuple[dict, dict]:
    """The first ``n`` generator-training crops and synthetic crops of each class, for
    :func:`acceflow.deep.synthetic.slice_grid`: ``({class: [(image, mask), ...]}, {...})``."""
    from acceflow.deep.crops import load_crop

    real = {0: [], 1: []}
    fit = split[split["role"] == "generator_train"]
    for case, label in zip(fit["case_id"], fit["label"]):
        if len(real[int(label)]) >= n or case not in crops:
            continue
        crop = load_crop(crops[case])
        if "error" not in crop and crop["mask"].any():
            real[int(label)].append((crop["image"][0], crop["mask"]))
    fake = {c: [(im, m) for im, m, y in zip(synthetic["image"], synthetic["mask"], synthetic["label"]) if int(y) == c][:n]
            for c in (0, 1)}
    return real, fake
