# Synthetic cases with an audit (synthetic.enabled; acceflow.study.synthetic, issue 17): a generator fitted
# on the training cohorts minus a held-out fraction (never on external cohorts) makes labelled synthetic
# cases; the audit compares them with the real ones feature by feature (analytical/); the comparators
# synthetic_tstr, synthetic_augmented and smote_augmented (synthetic.comparators) are trained by the
# imaging model's procedure with synthetic cases in training folds only, frozen, validated on every
# external cohort by the generic predict / discrimination / utility rules, and compared with the
# real-only imaging model (TRTR) by paired DeLong tests.
#
# synthetic.generator wgan_gp / cgan (the image path): synthetic_gan_train fits the generator on the deep
# model's lesion-centred crops (deep_crop) of the split's generator_train cases (a GPU rule; the CPU
# without CUDA), synthetic_gan_sample makes n_synthetic labelled image + mask crops in the crops' units,
# synthetic_gan_features extracts their features with the reference modality's pyradiomics settings by
# the extract_case rule's library call (acceflow.imaging.extract.extract_scan) to the same
# synthetic/features.tsv SMOTE writes, and synthetic_slices draws real and synthetic lesions per class.

if SYNTHETIC_GENERATOR == "smote":

    rule synthetic_generate:
        input:
            features=R(Results.FEATURES),
        output:
            split=R(Results.SYNTHETIC_SPLIT),
            synthetic=R(Results.SYNTHETIC_FEATURES),
        params:
            config=SYNTHETIC_CONFIG,
        log:
            R("logs/synthetic/generate.log"),
        benchmark:
            R("benchmarks/synthetic/generate.tsv")
        conda:
            "../envs/statistics.yaml"
        script:
            "../scripts/synthetic_generate.py"

else:

    rule synthetic_gan_train:
        input:
            features=R(Results.FEATURES),
            scans=R(Results.SCANS),
            crops=deep_crops,
        output:
            split=R(Results.SYNTHETIC_SPLIT),
            generator=R(Results.SYNTHETIC_GENERATOR),
            card=R(Results.SYNTHETIC_GENERATOR_CARD),
            history=R(Results.SYNTHETIC_GENERATOR_HISTORY),
        params:
            config=SYNTHETIC_GAN_CONFIG,
        threads: config["synthetic"]["gan"]["threads"]
        resources:
            gpu=config["synthetic"]["gan"]["gpus"],
        log:
            R("logs/synthetic/gan_train.log"),
        benchmark:
            R("benchmarks/synthetic/gan_train.tsv")
        conda:
            "../envs/deeplearning.yaml"
        script:
            "../scripts/synthetic_gan_train.py"

    rule synthetic_gan_sample:
        input:
            split=R(Results.SYNTHETIC_SPLIT),
            generator=R(Results.SYNTHETIC_GENERATOR),
            card=R(Results.SYNTHETIC_GENERATOR_CARD),
        output:
            crops=R(Results.SYNTHETIC_CROPS),
        params:
            config=SYNTHETIC_GAN_CONFIG,
        log:
            R("logs/synthetic/gan_sample.log"),
        benchmark:
            R("benchmarks/synthetic/gan_sample.tsv")
        conda:
            "../envs/deeplearning.yaml"
        script:
            "../scripts/synthetic_gan_sample.py"

    rule synthetic_gan_features:
        input:
            features=R(Results.FEATURES),
            crops=R(Results.SYNTHETIC_CROPS),
            params=lambda wildcards: synthetic_extraction()["params"],
        output:
            synthetic=R(Results.SYNTHETIC_FEATURES),
            qc=R(Results.SYNTHETIC_EXTRACTION_QC),
        params:
            config=SYNTHETIC_CONFIG,
            extraction=lambda wildcards: synthetic_extraction(),
            preprocessing=config["preprocessing"],
        log:
            R("logs/synthetic/gan_features.log"),
        benchmark:
            R("benchmarks/synthetic/gan_features.tsv")
        conda:
            "../envs/imaging.yaml"
        script:
            "../scripts/synthetic_gan_features.py"

    rule synthetic_slices:
        input:
            split=R(Results.SYNTHETIC_SPLIT),
            scans=R(Results.SCANS),
            crops=deep_crops,
            synthetic=R(Results.SYNTHETIC_CROPS),
        output:
            png=R(Results.SYNTHETIC_SLICES),
        params:
            units=lambda wildcards: synthetic_extraction()["modality"],
        log:
            R("logs/synthetic/slices.log"),
        benchmark:
            R("benchmarks/synthetic/slices.tsv")
        conda:
            "../envs/deeplearning.yaml"
        script:
            "../scripts/synthetic_slices.py"


rule synthetic_audit:
    input:
        features=R(Results.FEATURES),
        split=R(Results.SYNTHETIC_SPLIT),
        synthetic=R(Results.SYNTHETIC_FEATURES),
    output:
        fidelity=R(Results.SYNTHETIC_FIDELITY),
        summary=R(Results.SYNTHETIC_SUMMARY),
        correlations=R(Results.SYNTHETIC_CORRELATIONS),
        distances=R(Results.SYNTHETIC_DISTANCES),
    params:
        config=SYNTHETIC_CONFIG,
    log:
        R("logs/synthetic/audit.log"),
    benchmark:
        R("benchmarks/synthetic/audit.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/synthetic_audit.py"


rule train_synthetic:
    input:
        features=R(Results.FEATURES),
        stable=R(Results.STABLE_FEATURES),
        synthetic=lambda wildcards: [] if wildcards.model == "smote_augmented" else R(Results.SYNTHETIC_FEATURES),
    output:
        model=R(Results.MODEL, model="{model}"),
        card=R(Results.MODEL_CARD, model="{model}"),
        predictions=R(Results.PREDICTIONS, model="{model}", cohort="train"),
        folds=R(Results.CV_FOLDS, model="{model}", cohort="train"),
    params:
        config={**MODEL_CONFIG, "synthetic": config["synthetic"]},
    wildcard_constraints:
        model=SYNTHETIC_PATTERN,
    threads: 1
    log:
        R("logs/train/{model}.log"),
    benchmark:
        R("benchmarks/train/{model}.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/train_synthetic.py"


rule synthetic_comparison:
    input:
        predictions=lambda wildcards: [
            R(Results.PREDICTIONS, model=None if PRIMARY == "imaging" else "imaging", cohort=wildcards.cohort)
        ] + [R(Results.PREDICTIONS, model=m, cohort=wildcards.cohort) for m in SYNTHETIC_ARMS],
    output:
        comparison=R(Results.SYNTHETIC_COMPARISON),
    params:
        models=["imaging", *SYNTHETIC_ARMS],
        alpha=config["validation"]["alpha"],
    log:
        R("logs/synthetic/comparison_{cohort}.log"),
    benchmark:
        R("benchmarks/synthetic/comparison_{cohort}.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/synthetic_comparison.py"
