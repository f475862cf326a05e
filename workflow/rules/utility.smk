# Clinical utility: calibration and decision curves per cohort (and per comparator model).


rule calibration:
    input:
        predictions=R(Results.PREDICTIONS),
        card=R(Results.MODEL_CARD),
    output:
        calibration=report(
            R(Results.CALIBRATION),
            caption="../report/calibration.rst",
            category="4. Clinical utility",
            labels={"cohort": "{cohort}", "file": "calibration"},
        ),
        bins=R(Results.CALIBRATION_BINS),
        curve=R(Results.CALIBRATION_CURVE),
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
        predictions=R(Results.PREDICTIONS, model="{model}"),
        card=R(Results.MODEL_CARD, model="{model}"),
    output:
        calibration=R(Results.CALIBRATION, model="{model}"),
        bins=R(Results.CALIBRATION_BINS, model="{model}"),
        curve=R(Results.CALIBRATION_CURVE, model="{model}"),
    log:
        R("logs/calibration/{cohort}/{model}.log"),
    benchmark:
        R("benchmarks/calibration/{cohort}/{model}.tsv")


rule decision_curve:
    input:
        predictions=R(Results.PREDICTIONS),
        card=R(Results.MODEL_CARD),
    output:
        curve=report(
            R(Results.DECISION_CURVE),
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
        predictions=R(Results.PREDICTIONS, model="{model}"),
        card=R(Results.MODEL_CARD, model="{model}"),
    output:
        curve=R(Results.DECISION_CURVE, model="{model}"),
    log:
        R("logs/decision_curve/{cohort}/{model}.log"),
    benchmark:
        R("benchmarks/decision_curve/{cohort}/{model}.tsv")


rule useful_thresholds:
    input:
        curve=R(Results.DECISION_CURVE),
    output:
        range=R(Results.USEFUL_THRESHOLDS),
    log:
        R("logs/useful_thresholds/{cohort}.log"),
    benchmark:
        R("benchmarks/useful_thresholds/{cohort}.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/useful_thresholds.py"


rule recalibration:
    input:
        predictions=R(Results.PREDICTIONS),
    output:
        recalibration=R(Results.RECALIBRATION),
    wildcard_constraints:
        cohort=EXTERNAL_PATTERN,
    params:
        methods=config["utility"]["recalibration"],
        folds=config["validation"]["cv_folds"],
        seed=config["seed"],
    log:
        R("logs/recalibration/{cohort}.log"),
    benchmark:
        R("benchmarks/recalibration/{cohort}.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/recalibration.py"


rule utility_figures:
    input:
        predictions=R(Results.PREDICTIONS),
        curve=R(Results.CALIBRATION_CURVE),
        bins=R(Results.CALIBRATION_BINS),
        curves=lambda wildcards: model_curves(wildcards.cohort),
    output:
        cal_png=report(
            R(Results.CALIBRATION_FIGURE, ext="png"),
            caption="../report/calibration_figure.rst",
            category="4. Clinical utility",
            subcategory="Figures",
            labels={"cohort": "{cohort}", "file": "calibration figure"},
        ),
        cal_svg=R(Results.CALIBRATION_FIGURE, ext="svg"),
        dc_png=report(
            R(Results.DECISION_CURVE_FIGURE, ext="png"),
            caption="../report/decision_curve_figure.rst",
            category="4. Clinical utility",
            subcategory="Figures",
            labels={"cohort": "{cohort}", "file": "decision-curve figure"},
        ),
        dc_svg=R(Results.DECISION_CURVE_FIGURE, ext="svg"),
    params:
        models=[PRIMARY, *COMPARATORS],
        outcome=config["outcome"],
    log:
        R("logs/utility_figures/{cohort}.log"),
    benchmark:
        R("benchmarks/utility_figures/{cohort}.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/utility_figures.py"
