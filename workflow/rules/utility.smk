# Clinical utility: calibration and decision curves per cohort.


rule calibration:
    input:
        predictions=R("clinical/{cohort}/predictions.tsv"),
    output:
        calibration=report(
            R("utility/{cohort}/calibration.json"),
            caption="../report/calibration.rst",
            category="4. Clinical utility",
            labels={"cohort": "{cohort}", "file": "calibration"},
        ),
        bins=R("utility/{cohort}/calibration_bins.tsv"),
    params:
        bins=config["utility"]["calibration_bins"],
    log:
        R("logs/calibration/{cohort}.log"),
    benchmark:
        R("benchmarks/calibration/{cohort}.tsv")
    conda:
        "../../envs/statistics.yaml"
    script:
        "../scripts/calibration.py"


rule decision_curve:
    input:
        predictions=R("clinical/{cohort}/predictions.tsv"),
    output:
        curve=report(
            R("utility/{cohort}/decision_curve.tsv"),
            caption="../report/decision_curve.rst",
            category="4. Clinical utility",
            labels={"cohort": "{cohort}", "file": "decision curve"},
        ),
    params:
        thresholds=config["utility"]["thresholds"],
    log:
        R("logs/decision_curve/{cohort}.log"),
    benchmark:
        R("benchmarks/decision_curve/{cohort}.tsv")
    conda:
        "../../envs/statistics.yaml"
    script:
        "../scripts/decision_curve.py"
