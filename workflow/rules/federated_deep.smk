# The federated network (model.comparators lists `deep_federated`; acceflow.deep.federated with Flower):
# the `deep` section's network trained at each training cohort (a site) on its own crops and averaged
# by the Flower strategy of `federated.strategy`. As for the logistic learner (federated.smk): the
# split writes one file per site; a site's jobs read only that file, the site's own private state
# of its previous round and the server's files; the server's jobs read only what the sites wrote
# (counts, sums, state dicts). Rounds are unrolled (one job per site per round, one aggregation job
# per round), so a killed run resumes at the last finished round and on SLURM each site's step is
# its own job. The frozen network writes the comparator contract (clinical/model/comparators/
# deep_federated/model.pt, weights only) and is validated on the external cohorts by the deep
# prediction rule. The sites' updates and private states are temporary; every round's global network stays.

FEDDEEP = DEEP_FEDERATED_KIND in COMPARATORS
FEDDEEP_ROUNDS = int(config["federated"]["deep"]["rounds"])
FEDDEEP_CONFIG = {
    **config_subset("seed", "cohorts", "outcome"),
    "deep": DEEP_TRAIN_CONFIG["deep"],
    "federated": {k: config["federated"][k] for k in ("strategy", "proximal_mu", "deep")},
}


rule federated_deep_split:
    input:
        features=R(Results.FEATURES),
        scans=R(Results.SCANS),
        crops=deep_crops,
    output:
        sites=expand(R(Results.FEDERATED_DEEP_SITE_CROPS), site=FED_SITES),
    params:
        config=config_subset("cohorts", "outcome"),
        sites=FED_SITES,
    log:
        R("logs/federated_deep/split.log"),
    benchmark:
        R("benchmarks/federated_deep/split.tsv")
    conda:
        "../envs/deeplearning.yaml"
    script:
        "../scripts/federated_deep_split.py"


rule federated_deep_moments:
    input:
        site=R(Results.FEDERATED_DEEP_SITE_CROPS),
    output:
        moments=R(Results.FEDERATED_DEEP_MOMENTS),
    log:
        R("logs/federated_deep/{site}/moments.log"),
    benchmark:
        R("benchmarks/federated_deep/{site}/moments.tsv")
    conda:
        "../envs/deeplearning.yaml"
    script:
        "../scripts/federated_deep_moments.py"


rule federated_deep_standardise:
    input:
        moments=expand(R(Results.FEDERATED_DEEP_MOMENTS), site=FED_SITES),
    output:
        standardisation=R(Results.FEDERATED_DEEP_STANDARDISATION),
        start=R(Results.FEDERATED_DEEP_GLOBAL, round=0),
    params:
        config=FEDDEEP_CONFIG,
    log:
        R("logs/federated_deep/server/standardise.log"),
    benchmark:
        R("benchmarks/federated_deep/server/standardise.tsv")
    conda:
        "../envs/deeplearning.yaml"
    script:
        "../scripts/federated_deep_standardise.py"


rule federated_deep_site_round:
    input:
        site=R(Results.FEDERATED_DEEP_SITE_CROPS),
        standardisation=R(Results.FEDERATED_DEEP_STANDARDISATION),
        previous=lambda wc: R(Results.FEDERATED_DEEP_GLOBAL, round=int(wc.round) - 1),
        local=federated_deep_local,
    output:
        site_update=temp(R(Results.FEDERATED_DEEP_UPDATE)),
        local=temp(R(Results.FEDERATED_DEEP_LOCAL)),
    wildcard_constraints:
        round=r"[1-9]\d*",
    params:
        config=FEDDEEP_CONFIG,
    threads: DEEP_CFG["threads"]
    resources:
        gpu=DEEP_CFG["gpus"],
    log:
        R("logs/federated_deep/{site}/round_{round}.log"),
    benchmark:
        R("benchmarks/federated_deep/{site}/round_{round}.tsv")
    conda:
        "../envs/deeplearning.yaml"
    script:
        "../scripts/federated_deep_site_round.py"


rule federated_deep_aggregate:
    input:
        updates=expand(R(Results.FEDERATED_DEEP_UPDATE), site=FED_SITES, allow_missing=True),
        previous=lambda wc: R(Results.FEDERATED_DEEP_GLOBAL, round=int(wc.round) - 1),
    output:
        model=R(Results.FEDERATED_DEEP_GLOBAL),
    wildcard_constraints:
        round=r"[1-9]\d*",
    params:
        config=FEDDEEP_CONFIG,
    log:
        R("logs/federated_deep/server/round_{round}.log"),
    benchmark:
        R("benchmarks/federated_deep/server/round_{round}.tsv")
    conda:
        "../envs/deeplearning.yaml"
    script:
        "../scripts/federated_deep_aggregate.py"


rule federated_deep_train:
    input:
        standardisation=R(Results.FEDERATED_DEEP_STANDARDISATION),
        rounds=expand(R(Results.FEDERATED_DEEP_GLOBAL), round=range(1, FEDDEEP_ROUNDS + 1)),
    output:
        model=R(Results.NETWORK, model=DEEP_FEDERATED_KIND),
        card=R(Results.MODEL_CARD, model=DEEP_FEDERATED_KIND),
        rounds=R(Results.FEDERATED_DEEP_ROUNDS),
    params:
        config=FEDDEEP_CONFIG,
    log:
        R("logs/train/deep_federated.log"),
    benchmark:
        R("benchmarks/train/deep_federated.tsv")
    conda:
        "../envs/deeplearning.yaml"
    script:
        "../scripts/federated_deep_train.py"


# evaluation (reads the pooled table and crops, as an evaluation of simulated sites can; the training never did)
rule federated_deep_apparent:
    input:
        features=R(Results.FEATURES),
        scans=R(Results.SCANS),
        crops=deep_crops,
        model=R(Results.NETWORK, model=DEEP_FEDERATED_KIND),
        card=R(Results.MODEL_CARD, model=DEEP_FEDERATED_KIND),
    output:
        predictions=R(Results.PREDICTIONS, model=DEEP_FEDERATED_KIND, cohort="train"),
    params:
        config=config_subset("cohorts"),
    threads: DEEP_CFG["threads"]
    log:
        R("logs/federated_deep/apparent.log"),
    benchmark:
        R("benchmarks/federated_deep/apparent.tsv")
    conda:
        "../envs/deeplearning.yaml"
    script:
        "../scripts/federated_deep_apparent.py"


use rule deep_predict as deep_federated_predict with:
    input:
        features=R(Results.FEATURES),
        scans=R(Results.SCANS),
        crops=deep_crops,
        model=R(Results.NETWORK, model=DEEP_FEDERATED_KIND),
        card=R(Results.MODEL_CARD, model=DEEP_FEDERATED_KIND),
    output:
        predictions=R(Results.PREDICTIONS, model=DEEP_FEDERATED_KIND),
    log:
        R("logs/predict/{cohort}/deep_federated.log"),
    benchmark:
        R("benchmarks/predict/{cohort}/deep_federated.tsv")
