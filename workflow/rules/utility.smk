# Clinical utility: calibration and decision curves per cohort (and per comparator model).


rule calibration:
    input:
        predictions=R("clinical/{cohort}/predictions.tsv"),
        card=R("clinical/model/model_card.json"),
    output:
        calibration=R("utility/{cohort}/calibration.json"),
        bins=R("utility/{cohort}/calibration_bins.tsv"),
    params:
        bins=config["utility"]["calibration_bins"],
    log:
        R("logs/calibration/{cohort}.log"),
    conda:
        "../../envs/statistics.yaml"
    script:
        "../scripts/calibration.py"


use rule calibration as calibration_comparator with:
    input:
        predictions=R("clinical/{cohort}/comparators/{model}/predictions.tsv"),
        card=R("clinical/model/comparators/{model}/model_card.json"),
    output:
        calibration=R("utility/{cohort}/comparators/{model}/calibration.json"),
        bins=R("utility/{cohort}/comparators/{model}/calibration_bins.tsv"),
    log:
        R("logs/calibration/{cohort}/{model}.log"),


rule decision_curve:
    input:
        predictions=R("clinical/{cohort}/predictions.tsv"),
        card=R("clinical/model/model_card.json"),
    output:
        curve=R("utility/{cohort}/decision_curve.tsv"),
    params:
        thresholds=config["utility"]["thresholds"],
    log:
        R("logs/decision_curve/{cohort}.log"),
    conda:
        "../../envs/statistics.yaml"
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
