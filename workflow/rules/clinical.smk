# Clinical validity: the model trained on the training cohorts only, frozen, and applied to each
# external cohort; discrimination per cohort.


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
        config=config,
    threads: 1
    log:
        R("logs/train.log"),
    benchmark:
        R("benchmarks/train.tsv")
    conda:
        "../../envs/statistics.yaml"
    script:
        "../scripts/train.py"


rule predict:
    input:
        features=R("features/features.tsv"),
        model=R("clinical/model/model.joblib"),
        card=R("clinical/model/model_card.json"),
    output:
        predictions=R("clinical/{cohort}/predictions.tsv"),
    wildcard_constraints:
        cohort="|".join(EXTERNAL) if EXTERNAL else "(?!)",
    log:
        R("logs/predict/{cohort}.log"),
    benchmark:
        R("benchmarks/predict/{cohort}.tsv")
    conda:
        "../../envs/statistics.yaml"
    script:
        "../scripts/predict.py"


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
        seed=config["seed"],
    log:
        R("logs/discrimination/{cohort}.log"),
    benchmark:
        R("benchmarks/discrimination/{cohort}.tsv")
    conda:
        "../../envs/statistics.yaml"
    script:
        "../scripts/discrimination.py"
