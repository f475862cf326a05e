# Clinical utility: calibration and decision curves per cohort.


rule calibration:
    input:
        predictions=R("clinical/{cohort}/predictions.tsv"),
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


rule decision_curve:
    input:
        predictions=R("clinical/{cohort}/predictions.tsv"),
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
