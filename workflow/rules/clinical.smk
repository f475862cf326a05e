# Clinical validity: models trained on the training cohorts only, frozen, and applied to each
# external cohort; discrimination per cohort. The primary model (model.primary) writes the
# results contract's paths; comparators the same files under comparators/{model}/.


rule train:
    input:
        features=R(Results.FEATURES),
        stable=R(Results.STABLE_FEATURES),
    output:
        model=R(Results.MODEL),
        card=R(Results.MODEL_CARD),
        predictions=R(Results.PREDICTIONS, cohort="train"),
        folds=R(Results.CV_FOLDS, cohort="train"),
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
        model=R(Results.MODEL, model="{model}"),
        card=R(Results.MODEL_CARD, model="{model}"),
        predictions=R(Results.PREDICTIONS, model="{model}", cohort="train"),
        folds=R(Results.CV_FOLDS, model="{model}", cohort="train"),
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
        features=R(Results.FEATURES),
        model=R(Results.MODEL),
        card=R(Results.MODEL_CARD),
    output:
        predictions=R(Results.PREDICTIONS),
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
        features=R(Results.FEATURES),
        model=R(Results.MODEL, model="{model}"),
        card=R(Results.MODEL_CARD, model="{model}"),
    output:
        predictions=R(Results.PREDICTIONS, model="{model}"),
    wildcard_constraints:
        cohort=EXTERNAL_PATTERN,
        model=PREDICTED_COMPARATORS,
    log:
        R("logs/predict/{cohort}/{model}.log"),
    benchmark:
        R("benchmarks/predict/{cohort}/{model}.tsv")


rule discrimination:
    input:
        predictions=R(Results.PREDICTIONS),
        card=R(Results.MODEL_CARD),
    output:
        metrics=report(
            R(Results.METRICS),
            caption="../report/metrics.rst",
            category="3. Clinical validity",
            labels={"cohort": "{cohort}", "file": "metrics"},
        ),
        curve=R(Results.DISCRIMINATION_CURVE),
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
        predictions=R(Results.PREDICTIONS, model="{model}"),
        card=R(Results.MODEL_CARD, model="{model}"),
    output:
        metrics=R(Results.METRICS, model="{model}"),
        curve=R(Results.DISCRIMINATION_CURVE, model="{model}"),
    log:
        R("logs/discrimination/{cohort}/{model}.log"),
    benchmark:
        R("benchmarks/discrimination/{cohort}/{model}.tsv")


rule compare_models:
    input:
        predictions=lambda wildcards: model_predictions(wildcards.cohort),
    output:
        comparison=R(Results.MODEL_COMPARISON),
    params:
        models=[PRIMARY, *COMPARATORS],
        alpha=config["validation"]["alpha"],
    log:
        R("logs/compare_models/{cohort}.log"),
    benchmark:
        R("benchmarks/compare_models/{cohort}.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/compare_models.py"


rule optimism:
    input:
        features=R(Results.FEATURES),
        stable=R(Results.STABLE_FEATURES),
    output:
        optimism=R(Results.OPTIMISM),
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
        features=R(Results.FEATURES),
        stable=R(Results.STABLE_FEATURES),
    output:
        coefficients=R(Results.COEFFICIENTS),
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
        features=R(Results.FEATURES),
        model=R(Results.MODEL),
        card=R(Results.MODEL_CARD),
    output:
        importance=R(Results.PERMUTATION_IMPORTANCE),
    wildcard_constraints:
        cohort=EXTERNAL_PATTERN,
    params:
        repeats=config["validation"]["permutation_repeats"],
        seed=config["seed"],
    log:
        R("logs/importance/{cohort}.log"),
    benchmark:
        R("benchmarks/importance/{cohort}.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/importance.py"


# Explanations that respect correlated features (config explain): correlation clusters, grouped SHAP, grouped
# permutation importance on every cohort, odds / hazard ratios per SD from an unpenalised refit. For the primary
# model and the clinical comparator (grouped_explanation_outputs in common.smk).
rule explain:
    input:
        features=R(Results.FEATURES),
        model=R(Results.MODEL),
        card=R(Results.MODEL_CARD),
    output:
        feature_clusters=R(Results.FEATURE_CLUSTERS),
        shap_values=R(Results.SHAP_VALUES),
        shap_groups=R(Results.SHAP_GROUPS),
        shap_summary=R(Results.SHAP_SUMMARY),
        grouped_importance=R(Results.GROUPED_IMPORTANCE),
        refit_ratios=R(Results.REFIT_RATIOS),
    params:
        cohorts=COHORTS,
        settings={k: v for k, v in config["explain"].items() if k != "enabled"},
        seed=config["seed"],
        repeats=config["validation"]["permutation_repeats"],
        alpha=config["validation"]["alpha"],
    threads: 1
    log:
        R("logs/explain/primary.log"),
    benchmark:
        R("benchmarks/explain/primary.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/explain.py"


use rule explain as explain_comparator with:
    input:
        features=R(Results.FEATURES),
        model=R(Results.MODEL, model="{model}"),
        card=R(Results.MODEL_CARD, model="{model}"),
    output:
        feature_clusters=R(Results.FEATURE_CLUSTERS, model="{model}"),
        shap_values=R(Results.SHAP_VALUES, model="{model}"),
        shap_groups=R(Results.SHAP_GROUPS, model="{model}"),
        shap_summary=R(Results.SHAP_SUMMARY, model="{model}"),
        grouped_importance=R(Results.GROUPED_IMPORTANCE, model="{model}"),
        refit_ratios=R(Results.REFIT_RATIOS, model="{model}"),
    wildcard_constraints:
        model=GENERIC_COMPARATORS,
    log:
        R("logs/explain/{model}.log"),
    benchmark:
        R("benchmarks/explain/{model}.tsv")
