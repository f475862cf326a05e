# Analytical validity: perturbed copies per scan (perturbation design), ICC and agreement per
# feature from the repeats, the stable-feature list with the reason for every dropped feature,
# segmentation agreement of two masks of one image, the site effect before / after ComBat, and
# the IBSI 1 conformance of the extraction (image studies; ibsi.enabled).

if PERTURB:

    rule perturb:
        input:
            image=R(Results.PREPROCESSED_IMAGE),
            mask=segmentation_mask,
            params=extraction_params,
        output:
            features=R(Results.PERTURBATION_FEATURES),
        params:
            settings=config["reproducibility"]["perturbation"],
            seed=config["seed"],
            label=config["extraction"]["label"],
            overrides=extraction_overrides,
            on_error=config["on_case_error"],
        log:
            R("logs/perturb/{scan}.log"),
        benchmark:
            R("benchmarks/perturb/{scan}.tsv")
        conda:
            "../envs/imaging.yaml"
        script:
            "../scripts/perturb.py"

    rule perturbation_table:
        input:
            scans=R(Results.SCANS),
            features=perturbation_features,
        output:
            repeats=R(Results.REPEATS_PERTURBATION),
        log:
            R("logs/perturbation_table.log"),
        benchmark:
            R("benchmarks/perturbation_table.tsv")
        conda:
            "../envs/statistics.yaml"
        script:
            "../scripts/perturbation_table.py"


rule icc:
    input:
        repeats=repeats_input,
        features=R(Results.FEATURES),
    output:
        icc=report(R(Results.ICC), caption="../report/icc.rst", category="2. Analytical validity"),
        stable=R(Results.STABLE_FEATURES),
        agreement=R(Results.AGREEMENT),
        dropped=R(Results.DROPPED_FEATURES),
    params:
        settings=config["reproducibility"],
        features=config["features"],
        alpha=config["validation"]["alpha"],
    log:
        R("logs/icc.log"),
    benchmark:
        R("benchmarks/icc.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/icc.py"


rule icc_summary:
    input:
        icc=R(Results.ICC),
    output:
        summary=R(Results.ICC_SUMMARY),
    params:
        threshold=config["reproducibility"]["threshold"],
    log:
        R("logs/icc_summary.log"),
    benchmark:
        R("benchmarks/icc_summary.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/icc_summary.py"


rule segmentation_agreement:
    input:
        scans=R(Results.SCANS) if IMAGES else [],
        masks=reader_masks if IMAGES else [],
    output:
        table=R(Results.SEGMENTATION_AGREEMENT),
    params:
        label=config["extraction"]["label"],
        roi=config["input"]["roi"],
        tolerance=config["input"]["geometry_tolerance_mm"],
    log:
        R("logs/segmentation_agreement.log"),
    benchmark:
        R("benchmarks/segmentation_agreement.tsv")
    conda:
        "../envs/imaging.yaml"
    script:
        "../scripts/segmentation_agreement.py"


rule site_effect:
    input:
        features=R(Results.FEATURES),
        stable=R(Results.STABLE_FEATURES),
    output:
        table=R(Results.SITE_EFFECT),
    params:
        config=config_subset("cohorts", "outcome", "clinical", "features", "model", "reproducibility"),
    log:
        R("logs/site_effect.log"),
    benchmark:
        R("benchmarks/site_effect.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/site_effect.py"


rule domain_shift:
    input:
        unpack(domain_shift_inputs),
    output:
        table=R(Results.DOMAIN_SHIFT),
        summary=R(Results.DOMAIN_SHIFT_SUMMARY),
    params:
        config=config_subset(
            "seed", "cohorts", "outcome", "clinical", "features", "model", "reproducibility", "domain_shift"
        ),
        cohorts=COHORTS,
    log:
        R("logs/domain_shift.log"),
    benchmark:
        R("benchmarks/domain_shift.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/domain_shift.py"


if IBSI:

    rule ibsi_check:
        input:
            params=ibsi_study_params,
            scans=R(Results.SCANS) if config["ibsi"]["study"] else [],
        output:
            table=report(R(Results.IBSI), caption="../report/ibsi.rst", category="2. Analytical validity"),
            summary=R(Results.IBSI_SUMMARY),
        params:
            settings=config["ibsi"],
            preprocessing=config["preprocessing"],
        log:
            R("logs/ibsi_check.log"),
        benchmark:
            R("benchmarks/ibsi_check.tsv")
        conda:
            "../envs/imaging.yaml"
        script:
            "../scripts/ibsi_check.py"
