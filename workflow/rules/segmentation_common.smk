# Settings and input functions of the model-segmentation rules (workflow/rules/segmentation.smk).

SEG = config["segmentation"]
SEG_MODEL = IMAGES and SOURCE == "model"
SEG_NNUNET = IMAGES and SOURCE == "nnunet"
SEG_MASKS = SEG_MODEL or SEG_NNUNET  # a trained segmenter writes the masks (MONAI or nnU-Net)
SEG_UNCERTAINTY = SEG_MODEL and SEG["uncertainty"]["method"] != "none"
SEG_SETTINGS = {k: v for k, v in SEG.items() if k not in ("source", "margin_mm", "box_mm", "gpus", "nnunet")}
# folds of the segmentation cross-validation: segmentation.cv_folds (MONAI) or segmentation.nnunet.folds
SEG_FOLDS = SEG["nnunet"]["folds"] if SEG_NNUNET else SEG["cv_folds"]


def segmentation_cases():
    """Training-cohort primary scans with a reference mask, and their case-level fold (-1: none)."""
    return scans.segmentation_cases(scans_table(), config["cohorts"]["train"], SEG_FOLDS, config["seed"])


def segmentation_model_names():
    """MONAI: fold models and the final model; nnU-Net: the fold models (their ensemble is the final)."""
    names = scans.segmentation_model_names(SEG_FOLDS)
    return [n for n in names if n != "final"] if SEG_NNUNET else names


def training_scans(wildcards):
    return scans.training_scans(segmentation_cases(), wildcards.modality, wildcards.fold)


def segmenter_for(wildcards):
    """The model that segments a scan: out-of-fold for training cases (cv_folds), else final."""
    row = scan_row(wildcards)
    fold = scans.segmenter_of(row, segmentation_cases(), config["cohorts"]["train"], SEG_FOLDS)
    return R(Results.SEGMENTER, modality=scans.scan_modality(row), fold=fold)


def segmentation_modalities():
    return scans.segmentation_modalities(segmentation_cases())


def segmentation_models(wildcards):
    return [R(Results.SEGMENTER_CARD, modality=m, fold=f) for m in segmentation_modalities()
            for f in segmentation_model_names()]


def sampled_scans():
    """Primary scans of the training cohorts (first uncertainty.max_cases cases) for the sample readers."""
    return scans.training_primary_scans(scans_table(), config["cohorts"]["train"],
                                        int(SEG["uncertainty"].get("max_cases", 0) or 0))


def referenced_scans(primary=False):
    """Scans with a reference mask (primary scans only: one per case and modality, for the ICC)."""
    return scans.referenced_scans(scans_table(), primary)


def segmentation_outputs():
    """What the dossier reads from the model segmentation (empty unless segmentation.source: model or nnunet)."""
    if not SEG_MASKS:
        return []
    files = [R(Results.SEGMENTATION_QUALITY), R(Results.SEGMENTATION_QUALITY_SUMMARY),
             R(Results.REFERENCE_VS_MODEL_ICC), R(Results.SEGMENTATION_FOLDS)]
    return files + ([R(Results.SEGMENTATION_ICC)] if SEG_UNCERTAINTY else [])


def nnunet_cases(wildcards):
    """One modality's training scans for nnU-Net: {scan_id: {case_id, fold}} (segmentation_cases)."""
    cases = segmentation_cases()
    cases = cases[cases["seg_modality"] == wildcards.modality]
    return {s: {"case_id": r["case_id"], "fold": int(r["fold"])} for s, r in cases.iterrows()}


def nnunet_batch_of(wildcards):
    """The nnU-Net inference batch of a scan: {modality, batch} (batch: its out-of-fold model foldN, or ensemble)."""
    row = scan_row(wildcards)
    fold = scans.segmenter_of(row, segmentation_cases(), config["cohorts"]["train"], SEG_FOLDS)
    return {"modality": scans.scan_modality(row), "batch": scans.ENSEMBLE if fold == scans.FINAL else fold}


def nnunet_cards(wildcards):
    """The fold cards of a batch ({modality}, {batch}) or of a scan's batch: one fold, or every fold (ensemble)."""
    b = nnunet_batch_of(wildcards) if "scan" in wildcards.keys() else {"modality": wildcards.modality,
                                                                       "batch": wildcards.batch}
    folds = segmentation_model_names() if b["batch"] == scans.ENSEMBLE else [b["batch"]]
    return [R(Results.SEGMENTER_CARD, modality=b["modality"], fold=f) for f in folds]


@functools.lru_cache(maxsize=4)
def _nnunet_batches(path, mtime):
    return scans.nnunet_batches(scans_table(), segmentation_cases(), config["cohorts"]["train"], SEG_FOLDS)


def nnunet_batch_scans(wildcards):
    """The scan ids of one nnU-Net inference batch ({modality}, {batch}), sorted (acceflow.study.scans)."""
    path = checkpoints.ingest.get().output.scans
    return _nnunet_batches(path, os.path.getmtime(path)).get((wildcards.modality, wildcards.batch), [])


def nnunet_batch_settings(wildcards):
    """Per scan of a batch: its files and mask settings, and the model its quality row names."""
    cards = nnunet_cards(wildcards)
    model = cards[0] if wildcards.batch != scans.ENSEMBLE else os.path.join(
        os.path.dirname(os.path.dirname(cards[0])), scans.ENSEMBLE, "model_card.json")
    table = scans_table()
    return [{"scan_id": s, "image": R(Results.PREPROCESSED_IMAGE, scan=s), "original": table.loc[s, "image"],
             "reference": table.loc[s, "mask"] or None, "mask": mask_settings(SimpleNamespace(scan=s)),
             "model": model} for s in nnunet_batch_scans(wildcards)]
