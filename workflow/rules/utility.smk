# Clinical utility: calibration and decision curves per cohort (and per comparator model).


rule calibration:
    input:
        predictions=R("clinical/{cohort}/predictions.tsv"),
        card=R("clinical/model/model_card.json"),
    output:
        calibration=report(
            R("utility/{cohort}/calibration.json"),
            caption="../report/calibration.rst",
            category="4. Clinical utility",
            labels={"cohort": "{cohort}", "file": "calibration"},
        ),
        bins=R("utility/{cohort}/calibration_bins.tsv"),
        curve=R("utility/{cohort}/calibration_curve.tsv"),
    params:
        bins=config["utility"]["calibration_bins"],
        n_boot=config["utility"]["curve_bootstrap"],
        seed=config["seed"],
    log:
        R("logs/calibration/{cohort}.log"),
    benchmark:
        R("benchmarks/calibration/{cohort}.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/calibration.py"


use rule calibration as calibration_comparator with:
    input:
        predictions=R("clinical/{cohort}/comparators/{model}/predictions.tsv"),
        card=R("clinical/model/comparators/{model}/model_card.json"),
    output:
        calibration=R("utility/{cohort}/comparators/{model}/calibration.json"),
        bins=R("utility/{cohort}/comparators/{model}/calibration_bins.tsv"),
        curve=R("utility/{cohort}/comparators/{model}/calibration_curve.tsv"),
    log:
        R("logs/calibration/{cohort}/{model}.log"),
    benchmark:
        R("benchmarks/calibration/{cohort}/{model}.tsv")


rule decision_curve:
    input:
        predictions=R("clinical/{cohort}/predictions.tsv"),
        card=R("clinical/model/model_card.json"),
    output:
        curve=report(
            R("utility/{cohort}/decision_curve.tsv"),
            caption="../report/decision_curve.rst",
            category="4. Clinical utility",
            labels={"cohort": "{cohort}", "file": "decision curve"},
        ),
    params:
        thresholds=config["utility"]["thresholds"],
        n_boot=config["utility"]["curve_bootstrap"],
        seed=config["seed"],
    log:
        R("logs/decision_curve/{cohort}.log"),
    benchmark:
        R("benchmarks/decision_curve/{cohort}.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/decision_curve.py"


use rule decision_curve as decision_curve_comparator with:
    input:
        predictions=R("clinical/{cohort}/comparators/{model}/predictions.tsv"),
        card=R("clinical/model/comparators/{model}/model_card.json"),
    output:
        curve=R("utility/{cohort}/comparators/{model}/decision_curve.tsv"),
    log:
        R("logs/decision_curve/{cohort}/{model}.log"),
    benchmark:
        R("benchmarks/decision_curve/{cohort}/{model}.tsv")


rule recalibration:
    input:
        predictions=R("clinical/{cohort}/predictions.tsv"),
    output:
        recalibration=R("utility/{cohort}/recalibration.tsv"),
    wildcard_constraints:
        cohort=EXTERNAL_PATTERN,
    params:
        methods=config["utility"]["recalibration"],
        folds=config["validation"]["cv_folds"],
        seed=config["seed"],
    log:
        R("logs/recalibration/{cohort}.log"),
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/recalibration.py"


rule utility_figures:
    input:
        predictions=R("clinical/{cohort}/predictions.tsv"),
        curve=R("utility/{cohort}/calibration_curve.tsv"),
        bins=R("utility/{cohort}/calibration_bins.tsv"),
        curves=lambda wildcards: model_curves(wildcards.cohort),
    output:
        cal_png=R("utility/{cohort}/calibration.png"),
        cal_svg=R("utility/{cohort}/calibration.svg"),
        dc_png=R("utility/{cohort}/decision_curve.png"),
        dc_svg=R("utility/{cohort}/decision_curve.svg"),
    params:
        models=[PRIMARY, *COMPARATORS],
        outcome=config["outcome"],
    log:
        R("logs/utility_figures/{cohort}.log"),
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/utility_figures.py"
