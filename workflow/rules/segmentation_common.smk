# Settings and input functions of the model-segmentation rules (workflow/rules/segmentation.smk).

SEG = config["segmentation"]
SEG_MODEL = IMAGES and SOURCE == "model"
SEG_UNCERTAINTY = SEG_MODEL and SEG["uncertainty"]["method"] != "none"
SEG_SETTINGS = {k: v for k, v in SEG.items() if k not in ("source", "margin_mm", "box_mm", "gpus")}


def _modality(row):
    return row["modality"] or "all"


def segmentation_cases():
    """Training-cohort primary scans with a reference mask, and their case-level fold (-1: none)."""
    from acceflow.imaging.segment_model import assign_folds

    scans = scans_table()
    train = scans[(scans["primary"] == "True") & scans["cohort"].isin(config["cohorts"]["train"])
                  & (scans["mask"] != "")]
    k = int(SEG["cv_folds"])
    folds = assign_folds(train["case_id"], k, config["seed"]) if k else {}
    return train.assign(fold=[folds.get(c, -1) for c in train["case_id"]], seg_modality=[_modality(r) for _, r in train.iterrows()])


def segmentation_model_names(modality=None):
    names = [f"fold{i}" for i in range(int(SEG["cv_folds"]))] + ["final"]
    return names


def training_scans(wildcards):
    cases = segmentation_cases()
    cases = cases[cases["seg_modality"] == wildcards.modality]
    if wildcards.fold != "final":
        cases = cases[cases["fold"] != int(wildcards.fold[4:])]
    return list(cases.index)


def segmenter_for(wildcards):
    """The model that segments a scan: out-of-fold for training cases (cv_folds), else final."""
    row = scan_row(wildcards)
    fold = "final"
    if int(SEG["cv_folds"]) and row["cohort"] in config["cohorts"]["train"]:
        folds = dict(zip(segmentation_cases()["case_id"], segmentation_cases()["fold"]))
        if row["case_id"] in folds:
            fold = f"fold{folds[row['case_id']]}"
    return R(Results.SEGMENTER, modality=_modality(row), fold=fold)


def segmentation_modalities():
    return sorted(set(segmentation_cases()["seg_modality"]))


def segmentation_models(wildcards):
    return [R(Results.SEGMENTER_CARD, modality=m, fold=f) for m in segmentation_modalities()
            for f in segmentation_model_names()]


def sampled_scans():
    """Primary scans of the training cohorts (first uncertainty.max_cases cases) for the sample readers."""
    scans = scans_table()
    keep = scans[(scans["primary"] == "True") & scans["cohort"].isin(config["cohorts"]["train"])]
    limit = int(SEG["uncertainty"].get("max_cases", 0) or 0)
    if limit:
        keep = keep[keep["case_id"].isin(sorted(keep["case_id"].unique())[:limit])]
    return list(keep.index)


def referenced_scans(primary=False):
    """Scans with a reference mask (primary scans only: one per case and modality, for the ICC)."""
    scans = scans_table()
    keep = scans["mask"] != ""
    if primary:
        keep &= scans["primary"] == "True"
    return list(scans[keep].index)


def segmentation_outputs():
    """What the dossier reads from the model segmentation (empty unless segmentation.source: model)."""
    if not SEG_MODEL:
        return []
    files = [R(Results.SEGMENTATION_QUALITY), R(Results.SEGMENTATION_QUALITY_SUMMARY),
             R(Results.REFERENCE_VS_MODEL_ICC), R(Results.SEGMENTATION_FOLDS)]
    return files + ([R(Results.SEGMENTATION_ICC)] if SEG_UNCERTAINTY else [])
