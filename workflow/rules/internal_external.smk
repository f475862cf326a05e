# Internal-external cross-validation (validation.internal_external): the primary model's whole training
# procedure refitted without each site in turn and validated on it, one job per held-out site (so the
# sites run in parallel, each its own SLURM job), then one job pooling the sites by random-effects
# meta-analysis (acceflow.study.internal_external).


rule internal_external_site:
    input:
        features=R(Results.FEATURES),
        stable=R(Results.STABLE_FEATURES),
    output:
        predictions=R(Results.IECV_PREDICTIONS),
        metrics=R(Results.IECV_SITE),
    params:
        config=IECV_CONFIG,
    wildcard_constraints:
        site=IECV_SITE_PATTERN,
    threads: 1
    log:
        R("logs/internal_external/{site}.log"),
    benchmark:
        R("benchmarks/internal_external/{site}.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/internal_external_site.py"


rule internal_external_pool:
    input:
        sites=expand(R(Results.IECV_SITE), site=IECV_SITES),
    output:
        sites=R(Results.IECV_SITE_METRICS),
        pooled=R(Results.IECV_POOLED),
    params:
        task=TASK.name,
        alpha=config["validation"]["alpha"],
    log:
        R("logs/internal_external/pool.log"),
    benchmark:
        R("benchmarks/internal_external/pool.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/internal_external_pool.py"
