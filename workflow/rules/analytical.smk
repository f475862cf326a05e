# Analytical validity: ICC per feature from the repeats, and the stable-feature list.


rule icc:
    input:
        repeats=repeats_input,
        features=R("features/features.tsv"),
    output:
        icc=report(R("analytical/icc.tsv"), caption="../report/icc.rst", category="2. Analytical validity"),
        stable=R("analytical/stable_features.txt"),
    params:
        settings=config["reproducibility"],
        features=config["features"],
    log:
        R("logs/icc.log"),
    benchmark:
        R("benchmarks/icc.tsv")
    conda:
        "../../envs/statistics.yaml"
    script:
        "../scripts/icc.py"
