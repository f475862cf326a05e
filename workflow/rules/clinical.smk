# Clinical validity: models trained on the training cohorts only, frozen, and applied to each
# external cohort; discrimination per cohort. The primary model (model.primary) writes the
# results contract's paths; comparators the same files under comparators/{model}/.


rule train:
    input:
        features=R("features/features.tsv"),
        stable=R("analytical/stable_features.txt"),
    output:
        model=R("clinical/model/model.joblib"),
        card=R("clinical/model/model_card.json"),
        predictions=R("clinical/train/predictions.tsv"),
        folds=R("clinical/train/cv_folds.tsv"),
    params:
        config=MODEL_CONFIG,
        kind=PRIMARY,
    threads: 1
    log:
        R("logs/train/primary.log"),
    benchmark:
        R("benchmarks/train/primary.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/train.py"


use rule train as train_comparator with:
    output:
        model=R("clinical/model/comparators/{model}/model.joblib"),
        card=R("clinical/model/comparators/{model}/model_card.json"),
        predictions=R("clinical/train/comparators/{model}/predictions.tsv"),
        folds=R("clinical/train/comparators/{model}/cv_folds.tsv"),
    params:
        config=MODEL_CONFIG,
        kind=lambda wildcards: wildcards.model,
    wildcard_constraints:
        model=GENERIC_COMPARATORS,
    log:
        R("logs/train/{model}.log"),
    benchmark:
        R("benchmarks/train/{model}.tsv")


rule predict:
    input:
        features=R("features/features.tsv"),
        model=R("clinical/model/model.joblib"),
        card=R("clinical/model/model_card.json"),
    output:
        predictions=R("clinical/{cohort}/predictions.tsv"),
    wildcard_constraints:
        cohort=EXTERNAL_PATTERN,
    log:
        R("logs/predict/{cohort}.log"),
    benchmark:
        R("benchmarks/predict/{cohort}.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/predict.py"


use rule predict as predict_comparator with:
    input:
        features=R("features/features.tsv"),
        model=R("clinical/model/comparators/{model}/model.joblib"),
        card=R("clinical/model/comparators/{model}/model_card.json"),
    output:
        predictions=R("clinical/{cohort}/comparators/{model}/predictions.tsv"),
    wildcard_constraints:
        cohort=EXTERNAL_PATTERN,
        model=GENERIC_COMPARATORS,
    log:
        R("logs/predict/{cohort}/{model}.log"),
    benchmark:
        R("benchmarks/predict/{cohort}/{model}.tsv")


rule discrimination:
    input:
        predictions=R("clinical/{cohort}/predictions.tsv"),
        card=R("clinical/model/model_card.json"),
    output:
        metrics=report(
            R("clinical/{cohort}/metrics.json"),
            caption="../report/metrics.rst",
            category="3. Clinical validity",
            labels={"cohort": "{cohort}", "file": "metrics"},
        ),
    params:
        alpha=config["validation"]["alpha"],
        n_bootstrap=config["validation"]["n_bootstrap"],
        seed=config["seed"],
    log:
        R("logs/discrimination/{cohort}.log"),
    benchmark:
        R("benchmarks/discrimination/{cohort}.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/discrimination.py"


use rule discrimination as discrimination_comparator with:
    input:
        predictions=R("clinical/{cohort}/comparators/{model}/predictions.tsv"),
        card=R("clinical/model/comparators/{model}/model_card.json"),
    output:
        metrics=R("clinical/{cohort}/comparators/{model}/metrics.json"),
    log:
        R("logs/discrimination/{cohort}/{model}.log"),
    benchmark:
        R("benchmarks/discrimination/{cohort}/{model}.tsv")


rule compare_models:
    input:
        predictions=lambda wildcards: model_predictions(wildcards.cohort),
    output:
        comparison=R("clinical/{cohort}/model_comparison.tsv"),
    params:
        models=[PRIMARY, *COMPARATORS],
        alpha=config["validation"]["alpha"],
    log:
        R("logs/compare_models/{cohort}.log"),
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/compare_models.py"


rule optimism:
    input:
        features=R("features/features.tsv"),
        stable=R("analytical/stable_features.txt"),
    output:
        optimism=R("clinical/train/optimism.tsv"),
    params:
        config=MODEL_CONFIG,
    log:
        R("logs/optimism.log"),
    benchmark:
        R("benchmarks/optimism.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/optimism.py"


rule coefficients:
    input:
        features=R("features/features.tsv"),
        stable=R("analytical/stable_features.txt"),
    output:
        coefficients=R("clinical/model/coefficients.tsv"),
    params:
        config=MODEL_CONFIG,
    log:
        R("logs/coefficients.log"),
    benchmark:
        R("benchmarks/coefficients.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/coefficients.py"


rule importance:
    input:
        features=R("features/features.tsv"),
        model=R("clinical/model/model.joblib"),
        card=R("clinical/model/model_card.json"),
    output:
        importance=R("clinical/{cohort}/permutation_importance.tsv"),
    wildcard_constraints:
        cohort=EXTERNAL_PATTERN,
    params:
        repeats=config["validation"]["permutation_repeats"],
        seed=config["seed"],
    log:
        R("logs/importance/{cohort}.log"),
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/importance.py"
