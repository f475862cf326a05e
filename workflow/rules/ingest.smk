# Ingest: the demo cohort or a manifest built from a folder layout (optional), then per-scan
# quality control (images), or validation of a ready feature table.

if config["demo"]["enabled"]:

    rule demo:
        output:
            manifest=config["input"]["images"],
            truth=os.path.join(os.path.dirname(config["input"]["images"]), "truth.tsv"),
        params:
            settings=config["demo"],
            seed=config["seed"],
        log:
            R("logs/demo.log"),
        benchmark:
            R("benchmarks/demo.tsv")
        conda:
            "../envs/imaging.yaml"
        script:
            "../scripts/demo.py"


if config["input"]["layout"]:

    rule manifest_from_layout:
        output:
            config["input"]["images"],
        params:
            layout=config["input"]["layout"],
        log:
            R("logs/manifest_from_layout.log"),
        benchmark:
            R("benchmarks/manifest_from_layout.tsv")
        conda:
            "../envs/imaging.yaml"
        script:
            "../scripts/manifest_from_layout.py"


if IMAGES:

    checkpoint ingest:
        input:
            manifest=config["input"]["images"],
        output:
            qc=R(Results.QC),
            scans=R(Results.SCANS),
        params:
            data_root=config["input"]["data_root"],
            cohorts=config["cohorts"],
            outcome=config["outcome"],
            time_to_event=TASK.time_to_event,
            label=config["extraction"]["label"],
            min_voxels=config["extraction"]["min_voxels"],
            roi=config["input"]["roi"],
            tolerance=config["input"]["geometry_tolerance_mm"],
            need_mask=SOURCE == "reference" or not config["segmentation"]["box_mm"],
            default_modality=config["preprocessing"]["default_modality"],
            on_error=config["on_case_error"],
        log:
            R("logs/ingest.log"),
        benchmark:
            R("benchmarks/ingest.tsv")
        conda:
            "../envs/imaging.yaml"
        script:
            "../scripts/ingest.py"

else:

    rule ingest_table:
        input:
            table=config["input"]["features"],
        output:
            qc=R(Results.QC),
            features=R(Results.FEATURES),
        params:
            config=config_subset("input", "cohorts", "outcome", "clinical", "features"),
        log:
            R("logs/ingest_table.log"),
        benchmark:
            R("benchmarks/ingest_table.tsv")
        conda:
            "../envs/statistics.yaml"
        script:
            "../scripts/ingest_table.py"
