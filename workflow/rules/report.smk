# The evidence dossier, its machine-readable summary, the provenance record and the rule graph.
# Outputs are flagged with report() so that `snakemake --report report.html` also works
# (captions in workflow/report/).


rule cohort_summary:
    input:
        features=R(Results.FEATURES),
    output:
        cohorts=R(Results.COHORTS),
        summary=R(Results.FEATURE_SUMMARY),
    params:
        config=config_subset("cohorts", "outcome", "clinical", "features"),
    log:
        R("logs/cohort_summary.log"),
    benchmark:
        R("benchmarks/cohort_summary.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/cohort_summary.py"


rule quality_scores:
    input:
        features=R(Results.FEATURES),
        cohorts=R(Results.COHORTS),
        scans=R(Results.SCANS) if IMAGES else [],
        icc=R(Results.ICC),
        ibsi=ibsi_outputs(),
        segmentation_model=segmentation_outputs(),
        card=R(Results.MODEL_CARD),
        metrics=expand(R(Results.METRICS), cohort=COHORTS),
        calibration=expand(R(Results.CALIBRATION), cohort=COHORTS),
        curves=expand(R(Results.DECISION_CURVE), cohort=COHORTS),
        comparators=comparator_outputs(),
        deep=deep_outputs(),
    output:
        scores=report(
            R(Results.QUALITY_SCORES), caption="../report/quality_scores.rst", category="1. Dossier"
        ),
    params:
        config=config,
        results=lambda wildcards, output: os.path.dirname(os.path.dirname(output.scores)),
    log:
        R("logs/quality_scores.log"),
    benchmark:
        R("benchmarks/quality_scores.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/quality_scores.py"


rule dossier:
    input:
        inputs=input_files,
        qc=R(Results.QC),
        extraction_qc=R(Results.EXTRACTION_QC) if IMAGES else [],
        scans=R(Results.SCANS) if IMAGES else [],
        features=R(Results.FEATURES),
        cohorts=R(Results.COHORTS),
        feature_summary=R(Results.FEATURE_SUMMARY),
        icc=R(Results.ICC),
        icc_summary=R(Results.ICC_SUMMARY),
        agreement=R(Results.AGREEMENT),
        dropped=R(Results.DROPPED_FEATURES),
        segmentation=R(Results.SEGMENTATION_AGREEMENT),
        site_effect=R(Results.SITE_EFFECT),
        domain_shift=domain_shift_outputs(),
        ibsi=ibsi_outputs(),
        segmentation_model=segmentation_outputs(),
        card=R(Results.MODEL_CARD),
        metrics=expand(R(Results.METRICS), cohort=COHORTS),
        discrimination_curves=expand(R(Results.DISCRIMINATION_CURVE), cohort=COHORTS),
        predictions=expand(R(Results.PREDICTIONS), cohort=COHORTS),
        calibration=expand(R(Results.CALIBRATION), cohort=COHORTS),
        curves=expand(R(Results.DECISION_CURVE), cohort=COHORTS),
        useful_thresholds=expand(R(Results.USEFUL_THRESHOLDS), cohort=COHORTS),
        calibration_curves=expand(R(Results.CALIBRATION_CURVE), cohort=COHORTS),
        calibration_bins=expand(R(Results.CALIBRATION_BINS), cohort=COHORTS),
        comparators=comparator_outputs(),
        explanations=explanation_outputs(),
        internal_external=internal_external_outputs(),
        grouped_explanations=grouped_explanation_outputs(),
        utility=utility_outputs(),
        deep=deep_outputs(),
        synthetic=synthetic_outputs(),
        quality_scores=R(Results.QUALITY_SCORES),
    output:
        html=report(R(Results.DOSSIER), caption="../report/dossier.rst", category="1. Dossier"),
        summary=report(R(Results.SUMMARY), caption="../report/summary.rst", category="1. Dossier"),
        provenance=report(
            R(Results.PROVENANCE), caption="../report/provenance.rst", category="5. Provenance"
        ),
        rulegraph=report(
            R(Results.RULEGRAPH), caption="../report/rulegraph.rst", category="5. Provenance"
        ),
        # every figure the dossier draws, {name}.png (embedded in the dossier) and {name}.svg; a folder,
        # because which figures exist depends on the study (survival, repeats, deep models, ...)
        figures=report(
            directory(R(Results.REPORT_FIGURES)),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="1. Dossier",
            subcategory="Figures",
            labels={"figure": "{name}"},
        ),
    params:
        config=config,
        cohorts=COHORTS,
        results=lambda wildcards, output: os.path.dirname(os.path.dirname(output.html)),
        run=run_record,
    log:
        R("logs/dossier.log"),
    benchmark:
        R("benchmarks/dossier.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/dossier.py"


# The dossier printed to PDF by headless Chromium (config report.pdf; rule all asks for it when PDF is
# true, see common.smk): a separate rule, so that a machine without Chromium still finishes the run.
rule dossier_pdf:
    input:
        html=R(Results.DOSSIER),
    output:
        pdf=report(R(Results.DOSSIER_PDF), caption="../report/dossier_pdf.rst", category="1. Dossier"),
    log:
        R("logs/dossier_pdf.log"),
    benchmark:
        R("benchmarks/dossier_pdf.tsv")
    conda:
        "../envs/statistics.yaml"
    script:
        "../scripts/dossier_pdf.py"
