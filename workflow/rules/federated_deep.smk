# The federated network (model.primary is `deep_federated`, or model.comparators lists it;
# acceflow.deep.federated with Flower):
# the `deep` section's network trained at each training cohort (a site) on its own crops and averaged
# by the Flower strategy of `federated.strategy`. As for the logistic learner (federated.smk): the
# split writes one file per site; a site's jobs read only that file, the site's own private state
# of its previous round and the server's files; the server's jobs read only what the sites wrote
# (counts, sums, state dicts). Rounds are unrolled (one job per site per round, one aggregation job
# per round), so a killed run resumes at the last finished round and on SLURM each site's step is
# its own job. The frozen network writes the comparator contract (clinical/model/comparators/
# deep_federated/model.pt, weights only) and is validated on the external cohorts by the deep
# prediction rule; with model.primary: deep_federated the same rules write the primary paths
# (clinical/model/model.pt, its card, the training and external predictions), as model.primary: deep
# and federated do. The sites' updates and private states are temporary; every round's global network stays.

FEDDEEP = DEEP_FEDERATED_KIND in COMPARATORS or PRIMARY == DEEP_FEDERATED_KIND
# the comparator the federated network writes as (None: the primary model's paths, model.primary: deep_federated)
FEDDEEP_AS = None if PRIMARY == DEEP_FEDERATED_KIND else DEEP_FEDERATED_KIND
FEDDEEP_ROUNDS = int(config["federated"]["deep"]["rounds"])
FEDDEEP_CONFIG = {
    **config_subset("seed", "cohorts", "outcome"),
    "deep": DEEP_TRAIN_CONFIG["deep"],
    "federated": {k: config["federated"][k] for k in ("strategy", "proximal_mu", "deep")},
}


# model.primary: deep_federated: the federated network's rules write the primary paths that rules train / predict
# also name
ruleorder: federated_deep_train > train
ruleorder: federated_deep_apparent > train
ruleorder: deep_federated_predict > predict


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
        model=R(Results.NETWORK, model=FEDDEEP_AS),
        card=R(Results.MODEL_CARD, model=FEDDEEP_AS),
        rounds=R(Results.FEDERATED_DEEP_ROUNDS),
    params:
        # the card's role (primary with model.primary: deep_federated; a comparator's params stay as they were)
        config=FEDDEEP_CONFIG | ({"model": {"primary": PRIMARY}} if FEDDEEP_AS is None else {}),
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
        model=R(Results.NETWORK, model=FEDDEEP_AS),
        card=R(Results.MODEL_CARD, model=FEDDEEP_AS),
    output:
        predictions=R(Results.PREDICTIONS, model=FEDDEEP_AS, cohort="train"),
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
        model=R(Results.NETWORK, model=FEDDEEP_AS),
        card=R(Results.MODEL_CARD, model=FEDDEEP_AS),
    output:
        predictions=R(Results.PREDICTIONS, model=FEDDEEP_AS),
    log:
        R("logs/predict/{cohort}/deep_federated.log"),
    benchmark:
        R("benchmarks/predict/{cohort}/deep_federated.tsv")
