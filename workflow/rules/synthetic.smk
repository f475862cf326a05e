# Synthetic cases with an audit (synthetic.enabled; acceflow.study.synthetic, issue 17): a generator fitted
# on the training cohorts minus a held-out fraction (never on external cohorts) makes labelled synthetic
# cases; the audit compares them with the real ones feature by feature (analytical/); the comparators
# synthetic_tstr, synthetic_augmented and smote_augmented (synthetic.comparators) are trained by the
# imaging model's procedure with synthetic cases in training folds only, frozen, validated on every
# external cohort by the generic predict / discrimination / utility rules, and compared with the
# real-only imaging model (TRTR) by paired DeLong tests.


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
