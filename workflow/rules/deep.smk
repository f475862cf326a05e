# Deep-learning biomarker (model.primary is `deep`, or model.comparators lists it): lesion-centred
# crops per scan, a MONAI network (binary: cross-entropy; survival: Cox partial likelihood) or a
# late-fusion stack, trained on the training cohorts (out-of-fold internal validation), frozen and
# applied to each external cohort. It writes the primary or the comparator contract paths (the
# same prediction files as the radiomics model of the outcome type), so discrimination,
# calibration, decision curves, compare_models and the dossier take it like any other model.
# Deep features (penultimate-layer embeddings) with their ICC, and Grad-CAM maps.
# GPU rules declare resources gpu (sbatch --gpus on SLURM); on CPU the same rules run.

include: "deep_common.smk"

# model.primary: deep: the deep rules write the primary paths that rules train / predict also name
ruleorder: deep_train > train
ruleorder: deep_predict > predict


rule deep_crop:
    input:
        unpack(deep_crop_inputs),
    output:
        crop=R(Results.DEEP_CROP),
    params:
        size=DEEP_CFG["crop_size"],
        spacing=DEEP_CFG["crop_spacing"],
        label=config["extraction"]["label"],
    log:
        R("logs/deep_crop/{scan}.log"),
    benchmark:
        R("benchmarks/deep_crop/{scan}.tsv")
    conda:
        "../envs/deeplearning.yaml"
    script:
        "../scripts/deep_crop.py"


rule deep_train:
    input:
        features=R(Results.FEATURES),
        scans=R(Results.SCANS),
        crops=deep_crops,
    output:
        model=R(Results.NETWORK, model=DEEP_AS),
        card=R(Results.MODEL_CARD, model=DEEP_AS),
        history=R(Results.TRAINING_HISTORY, model=DEEP_AS),
        predictions=R(Results.PREDICTIONS, model=DEEP_AS, cohort="train"),
        folds=R(Results.CV_FOLDS, model=DEEP_AS, cohort="train"),
    params:
        config=DEEP_TRAIN_CONFIG,
    threads: DEEP_CFG["threads"]
    resources:
        gpu=DEEP_CFG["gpus"],
    log:
        R("logs/train/deep.log"),
    benchmark:
        R("benchmarks/train/deep.tsv")  # beside the other models' training benchmarks
    conda:
        "../envs/deeplearning.yaml"
    script:
        "../scripts/deep_train.py"


rule deep_predict:
    input:
        features=R(Results.FEATURES),
        scans=R(Results.SCANS),
        crops=deep_crops,
        model=R(Results.NETWORK, model=DEEP_AS),
        card=R(Results.MODEL_CARD, model=DEEP_AS),
    output:
        predictions=R(Results.PREDICTIONS, model=DEEP_AS),
    wildcard_constraints:
        cohort=EXTERNAL_PATTERN,
    resources:
        gpu=DEEP_CFG["gpus"],
    log:
        R("logs/predict/{cohort}/deep.log"),
    benchmark:
        R("benchmarks/predict/{cohort}/deep.tsv")
    conda:
        "../envs/deeplearning.yaml"
    script:
        "../scripts/deep_predict.py"


rule deep_features:
    input:
        features=R(Results.FEATURES),
        scans=R(Results.SCANS),
        crops=deep_crops,
        model=R(Results.NETWORK, model=DEEP_AS),
        card=R(Results.MODEL_CARD, model=DEEP_AS),
    output:
        features=R(Results.DEEP_FEATURES),
        repeats=R(Results.DEEP_REPEATS),
    params:
        config=config_subset("outcome", "deep"),
    resources:
        gpu=DEEP_CFG["gpus"],
    log:
        R("logs/deep_features.log"),
    benchmark:
        R("benchmarks/deep_features.tsv")
    conda:
        "../envs/deeplearning.yaml"
    script:
        "../scripts/deep_features.py"


rule deep_icc:
    input:
        repeats=R(Results.DEEP_REPEATS),
    output:
        icc=R(Results.DEEP_ICC),
    params:
        settings=config["reproducibility"],
    log:
        R("logs/deep_icc.log"),
    benchmark:
        R("benchmarks/deep_icc.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/deep_icc.py"


rule deep_gradcam:
    input:
        predictions=R(Results.PREDICTIONS, model=DEEP_AS),
        scans=R(Results.SCANS),
        crops=deep_crops,
        model=R(Results.NETWORK, model=DEEP_AS),
        card=R(Results.MODEL_CARD, model=DEEP_AS),
    output:
        table=R(Results.GRADCAM),
    params:
        layer=DEEP_CFG["gradcam"]["layer"],
        cases=DEEP_CFG["gradcam"]["cases"],
    resources:
        gpu=DEEP_CFG["gpus"],
    log:
        R("logs/deep_gradcam/{cohort}.log"),
    benchmark:
        R("benchmarks/deep_gradcam/{cohort}.tsv")
    conda:
        "../envs/deeplearning.yaml"
    script:
        "../scripts/deep_gradcam.py"


if DANN:

    use rule deep_train as deep_dann_train with:
        output:
            model=R(Results.NETWORK, model=DANN_KIND),
            card=R(Results.MODEL_CARD, model=DANN_KIND),
            history=R(Results.TRAINING_HISTORY, model=DANN_KIND),
            predictions=R(Results.PREDICTIONS, model=DANN_KIND, cohort="train"),
            folds=R(Results.CV_FOLDS, model=DANN_KIND, cohort="train"),
        params:
            config=DANN_TRAIN_CONFIG,
        log:
            R("logs/train/deep_dann.log"),
        benchmark:
            R("benchmarks/train/deep_dann.tsv")

    use rule deep_predict as deep_dann_predict with:
        input:
            features=R(Results.FEATURES),
            scans=R(Results.SCANS),
            crops=deep_crops,
            model=R(Results.NETWORK, model=DANN_KIND),
            card=R(Results.MODEL_CARD, model=DANN_KIND),
        output:
            predictions=R(Results.PREDICTIONS, model=DANN_KIND),
        log:
            R("logs/predict/{cohort}/deep_dann.log"),
        benchmark:
            R("benchmarks/predict/{cohort}/deep_dann.tsv")

    use rule deep_features as deep_dann_features with:
        input:
            features=R(Results.FEATURES),
            scans=R(Results.SCANS),
            crops=deep_crops,
            model=R(Results.NETWORK, model=DANN_KIND),
            card=R(Results.MODEL_CARD, model=DANN_KIND),
        output:
            features=R(Results.DANN_FEATURES),
            repeats=R(Results.DANN_REPEATS),
        log:
            R("logs/deep_dann_features.log"),
        benchmark:
            R("benchmarks/deep_dann_features.tsv")


# Integrated gradients (captum) of the cases Grad-CAM shows, per voxel (deep.integrated_gradients).
rule deep_integrated_gradients:
    input:
        predictions=R(Results.PREDICTIONS, model=DEEP_KIND),
        scans=R(Results.SCANS),
        crops=deep_crops,
        model=R(Results.NETWORK, model=DEEP_KIND),
        card=R(Results.MODEL_CARD, model=DEEP_KIND),
    output:
        table=R(Results.INTEGRATED_GRADIENTS),
    params:
        cases=DEEP_CFG["gradcam"]["cases"],
        steps=DEEP_CFG["integrated_gradients"]["steps"],
        batch=DEEP_CFG["integrated_gradients"]["batch"],
    resources:
        gpu=DEEP_CFG["gpus"],
    log:
        R("logs/deep_integrated_gradients/{cohort}.log"),
    benchmark:
        R("benchmarks/deep_integrated_gradients/{cohort}.tsv")
    conda:
        "../envs/deeplearning.yaml"
    script:
        "../scripts/deep_integrated_gradients.py"
