# Settings and input functions of the deep-learning rules (deep.smk).

DEEP = DEEP_KIND in COMPARATORS or PRIMARY == DEEP_KIND
# the comparator the deep model writes as (None: the primary model's paths, model.primary: deep)
DEEP_AS = None if PRIMARY == DEEP_KIND else DEEP_KIND
DEEP_CFG = config["deep"]
# what training depends on (a change of the Grad-CAM, integrated-gradients, embedding or GPU-count keys does not retrain)
DEEP_TRAIN_CONFIG = {
    **config_subset("seed", "cohorts", "outcome"),
    "model": {k: config["model"].get(k) for k in ("threshold", "threshold_target", "primary")},
    "utility": {"horizon": config["utility"]["horizon"]},  # survival: risk at this horizon
    # the unadapted network: the domain-adaptation keys are left out (schema default none), so that
    # switching DANN on or off never retrains it
    "deep": {k: v for k, v in DEEP_CFG.items()
             if k not in ("gradcam", "integrated_gradients", "embedding", "gpus", "domain_adaptation", "target_cohorts")},
}
# deep.domain_adaptation: dann adds the comparator deep_dann: the same network and settings, trained
# domain-adversarially against the unlabelled images of deep.target_cohorts (rules deep_dann_*)
DANN = DANN_KIND in COMPARATORS
DANN_TRAIN_CONFIG = {**DEEP_TRAIN_CONFIG, "deep": {**DEEP_TRAIN_CONFIG["deep"], "domain_adaptation": "dann",
                                                   "target_cohorts": list(DEEP_CFG["target_cohorts"])}}


def deep_crop_scans():
    """Reference-modality scans that get a crop (acceflow.study.deep.crop_scans)."""
    from acceflow.study.deep import crop_scans

    return crop_scans(scans_table(), DEEP_CFG)


def deep_crop_inputs(wildcards):
    """The preprocessed image of every modality of a crop, and the reference modality's mask."""
    from acceflow.study.deep import study_modalities

    row = deep_crop_scans().loc[wildcards.scan]
    files = {f"image_{m}": R(Results.PREPROCESSED_IMAGE, scan=row[f"scan_{m}"])
             for m in study_modalities(scans_table(), DEEP_CFG) if row[f"scan_{m}"]}
    files["mask"] = segmentation_mask(wildcards)
    return files


def deep_crops(wildcards=None):
    return expand(R(Results.DEEP_CROP), scan=deep_crop_scans().index)


def deep_outputs():
    """The deep model's extra outputs for the dossier (embeddings, their ICC, Grad-CAM, integrated gradients)."""
    if not DEEP:
        return []
    files = [R(Results.TRAINING_HISTORY, model=DEEP_AS)]
    if DANN:
        files += [R(Results.TRAINING_HISTORY, model=DANN_KIND)]
    one_network = DEEP_CFG["fusion"] != "late"  # late fusion: a network per modality, no one embedding / map
    if DEEP_CFG["embedding"]["enabled"] and one_network:
        files += [R(Results.DEEP_FEATURES), R(Results.DEEP_REPEATS), R(Results.DEEP_ICC)]
    # voxel maps are drawn for 3D networks only (a 2D / 2.5D network's maps are per slice: not drawn)
    maps = DEEP_CFG["gradcam"]["cases"] and DEEP_CFG["dimensions"] == "3d"
    # Grad-CAM picks correctly / wrongly classified cases: binary outcomes, image-only networks
    if maps and one_network and TASK.name == "binary" and not DEEP_CFG["clinical_covariates"]:
        files += [R(Results.GRADCAM, cohort=c) for c in (EXTERNAL or ["train"])]
    if maps and DEEP_CFG["integrated_gradients"]["enabled"]:
        files += [R(Results.INTEGRATED_GRADIENTS, cohort=c) for c in (EXTERNAL or ["train"])]
    return files
