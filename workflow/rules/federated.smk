# Federated training (model.primary is `federated`, or model.comparators lists it; acceflow.models.federated
# with Flower):
# each training cohort is a site. The split writes one table per site; a site's jobs read only
# that table and the server's files; the server's jobs read only what the sites wrote (counts,
# sums, parameters). Rounds are unrolled: one job per site per round, one aggregation job per
# round, so a killed run resumes at the last finished round and on SLURM each site's step is its
# own job. The frozen model writes the comparator contract (clinical/model/comparators/federated/), or
# the primary paths with model.primary: federated, and is validated on the external cohorts like any
# model (rules predict_comparator / predict).

FED = config["federated"]
FED_SITES = list(config["cohorts"]["train"])
FED_ROUNDS = int(FED["rounds"])
# survival: the site-stratified Cox learner; each site shares its event-time table and sorted risk scores
# once after the last round (rule federated_site_baseline), read by federated_train
FED_BASELINES = expand(R(Results.FEDERATED_BASELINE), site=FED_SITES) if TASK.time_to_event else []


# model.primary: federated: the federated rules write the primary paths that rule train also names
ruleorder: federated_train > train
ruleorder: federated_apparent > train


wildcard_constraints:
    site="|".join(FED_SITES),
    round=r"\d+",


rule federated_split:
    input:
        features=R(Results.FEATURES),
        stable=R(Results.STABLE_FEATURES),
    output:
        tables=expand(R(Results.FEDERATED_SITE_TABLE), site=FED_SITES),
    params:
        config=MODEL_CONFIG | {"federated": FED},
        sites=FED_SITES,
    log:
        R("logs/federated/split.log"),
    benchmark:
        R("benchmarks/federated/split.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/federated_split.py"


rule federated_moments:
    input:
        table=R(Results.FEDERATED_SITE_TABLE),
    output:
        moments=R(Results.FEDERATED_MOMENTS),
    log:
        R("logs/federated/{site}/moments.log"),
    benchmark:
        R("benchmarks/federated/{site}/moments.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/federated_moments.py"


rule federated_standardise:
    input:
        moments=expand(R(Results.FEDERATED_MOMENTS), site=FED_SITES),
    output:
        standardisation=R(Results.FEDERATED_STANDARDISATION),
        start=R(Results.FEDERATED_GLOBAL, round=0),
    log:
        R("logs/federated/server/standardise.log"),
    benchmark:
        R("benchmarks/federated/server/standardise.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/federated_standardise.py"


rule federated_site_round:
    input:
        table=R(Results.FEDERATED_SITE_TABLE),
        standardisation=R(Results.FEDERATED_STANDARDISATION),
        previous=lambda wc: R(Results.FEDERATED_GLOBAL, round=int(wc.round) - 1),
    output:
        site_update=R(Results.FEDERATED_UPDATE),
    params:
        config={"federated": FED},
    log:
        R("logs/federated/{site}/round_{round}.log"),
    benchmark:
        R("benchmarks/federated/{site}/round_{round}.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/federated_site_round.py"


rule federated_aggregate:
    input:
        updates=expand(R(Results.FEDERATED_UPDATE), site=FED_SITES, allow_missing=True),
        previous=lambda wc: R(Results.FEDERATED_GLOBAL, round=int(wc.round) - 1),
    output:
        model=R(Results.FEDERATED_GLOBAL),
    wildcard_constraints:
        round=r"[1-9]\d*",
    params:
        config={"federated": FED},
    log:
        R("logs/federated/server/round_{round}.log"),
    benchmark:
        R("benchmarks/federated/server/round_{round}.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/federated_aggregate.py"


rule federated_site_baseline:
    input:
        table=R(Results.FEDERATED_SITE_TABLE),
        standardisation=R(Results.FEDERATED_STANDARDISATION),
        last=R(Results.FEDERATED_GLOBAL, round=FED_ROUNDS),
    output:
        baseline=R(Results.FEDERATED_BASELINE),
    log:
        R("logs/federated/{site}/baseline.log"),
    benchmark:
        R("benchmarks/federated/{site}/baseline.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/federated_site_baseline.py"


rule federated_train:
    input:
        standardisation=R(Results.FEDERATED_STANDARDISATION),
        rounds=expand(R(Results.FEDERATED_GLOBAL), round=range(1, FED_ROUNDS + 1)),
        baselines=FED_BASELINES,
    output:
        model=R(Results.MODEL, model=FEDERATED_AS),
        card=R(Results.MODEL_CARD, model=FEDERATED_AS),
        rounds=R(Results.FEDERATED_ROUNDS),
    params:
        config=MODEL_CONFIG | {"federated": FED},
    log:
        R("logs/train/federated.log"),
    benchmark:
        R("benchmarks/train/federated.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/federated_train.py"


# evaluation (reads the pooled table, as an evaluation of simulated sites can; the model never did)
rule federated_apparent:
    input:
        features=R(Results.FEATURES),
        model=R(Results.MODEL, model=FEDERATED_AS),
        card=R(Results.MODEL_CARD, model=FEDERATED_AS),
    output:
        predictions=R(Results.PREDICTIONS, model=FEDERATED_AS, cohort="train"),
    params:
        config=MODEL_CONFIG,
    log:
        R("logs/federated/apparent.log"),
    benchmark:
        R("benchmarks/federated/apparent.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/federated_apparent.py"


rule federated_comparison:
    input:
        features=R(Results.FEATURES),
        model=R(Results.MODEL, model=FEDERATED_AS),
        card=R(Results.MODEL_CARD, model=FEDERATED_AS),
    output:
        comparison=R(Results.FEDERATED_COMPARISON),
        coefficients=R(Results.FEDERATED_COEFFICIENTS),
        summary=R(Results.FEDERATED_SUMMARY),
    params:
        config=MODEL_CONFIG | {"federated": FED},
        alpha=config["validation"]["alpha"],
    log:
        R("logs/federated/comparison.log"),
    benchmark:
        R("benchmarks/federated/comparison.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/federated_comparison.py"
