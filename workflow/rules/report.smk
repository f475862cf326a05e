# The evidence dossier, its machine-readable summary and the provenance record.


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
        card=R("clinical/model/model_card.json"),
        metrics=expand(R("clinical/{cohort}/metrics.json"), cohort=COHORTS),
        predictions=expand(R("clinical/{cohort}/predictions.tsv"), cohort=COHORTS),
        calibration=expand(R("utility/{cohort}/calibration.json"), cohort=COHORTS),
        curves=expand(R("utility/{cohort}/decision_curve.tsv"), cohort=COHORTS),
    output:
        html=R("report/dossier.html"),
        summary=R("report/summary.json"),
        provenance=R("report/provenance.json"),
    params:
        config=config,
        cohorts=COHORTS,
        results=lambda wildcards, output: os.path.dirname(os.path.dirname(output.html)),
    log:
        R("logs/dossier.log"),
    benchmark:
        R("benchmarks/dossier.tsv")
    conda:
        "../../envs/statistics.yaml"
    script:
        "../scripts/dossier.py"
