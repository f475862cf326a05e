# The evidence dossier, its machine-readable summary, the provenance record and the rule graph.
# Outputs are flagged with report() so that `snakemake --report report.html` also works
# (captions in workflow/report/).


rule dossier:
    input:
        inputs=input_files,
        qc=R("ingest/qc.tsv"),
        extraction_qc=R("features/extraction_qc.tsv") if IMAGES else [],
        scans=R("ingest/scans.tsv") if IMAGES else [],
        features=R("features/features.tsv"),
        icc=R("analytical/icc.tsv"),
        agreement=R("analytical/agreement.tsv"),
        dropped=R("analytical/dropped_features.tsv"),
        segmentation=R("analytical/segmentation_agreement.tsv"),
        site_effect=R("analytical/site_effect.tsv"),
        ibsi=ibsi_outputs(),
        segmentation_model=segmentation_outputs(),
        card=R("clinical/model/model_card.json"),
        metrics=expand(R("clinical/{cohort}/metrics.json"), cohort=COHORTS),
        predictions=expand(R("clinical/{cohort}/predictions.tsv"), cohort=COHORTS),
        calibration=expand(R("utility/{cohort}/calibration.json"), cohort=COHORTS),
        curves=expand(R("utility/{cohort}/decision_curve.tsv"), cohort=COHORTS),
        comparators=comparator_outputs(),
        explanations=explanation_outputs(),
        utility=utility_outputs(),
        deep=deep_outputs(),
    output:
        html=report(R("report/dossier.html"), caption="../report/dossier.rst", category="1. Dossier"),
        summary=report(R("report/summary.json"), caption="../report/summary.rst", category="1. Dossier"),
        provenance=report(
            R("report/provenance.json"), caption="../report/provenance.rst", category="5. Provenance"
        ),
        rulegraph=report(
            R("report/rulegraph.svg"), caption="../report/rulegraph.rst", category="5. Provenance"
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
