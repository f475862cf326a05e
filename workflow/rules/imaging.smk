# Imaging: per-scan preprocessing and segmentation, radiomics extraction per case, then the feature table.

if IMAGES:

    rule preprocess:
        input:
            unpack(scan_inputs),
        output:
            image=R(Results.PREPROCESSED_IMAGE),
            mask=R(Results.PREPROCESSED_MASK),
        params:
            modality=lambda wc: scan_row(wc)["modality"],
            settings=config["preprocessing"],
            mask=mask_settings,
        log:
            R("logs/preprocess/{scan}.log"),
        benchmark:
            R("benchmarks/preprocess/{scan}.tsv")
        conda:
            "../envs/imaging.yaml"
        script:
            "../scripts/preprocess.py"

    rule segment_otsu:
        input:
            image=R(Results.PREPROCESSED_IMAGE),
            mask=R(Results.PREPROCESSED_MASK),
        output:
            mask=R(Results.OTSU_MASK),
        params:
            settings=config["segmentation"],
            label=config["extraction"]["label"],
        log:
            R("logs/segment_otsu/{scan}.log"),
        benchmark:
            R("benchmarks/segment_otsu/{scan}.tsv")
        conda:
            "../envs/imaging.yaml"
        script:
            "../scripts/segment_otsu.py"

    rule extract_case:
        # one job per case (all its scans and modalities): one interpreter and one set of imports per
        # case, while a new case re-runs only its own job; each scan fails on its own (on_case_error).
        # A plain program (shell:), not script:, so that the job does not import Snakemake (issue 21)
        input:
            unpack(case_extraction_inputs),
            program=os.path.join(SCRIPTS, "extract_case.py"),
        output:
            features=R(Results.CASE_FEATURES),
            diagnostics=R(Results.CASE_DIAGNOSTICS),
        params:
            python=JOB_PYTHON,
            spec=case_extraction_spec,
        log:
            R("logs/extract/{case}.log"),
        benchmark:
            R("benchmarks/extract/{case}.tsv")
        conda:
            "../envs/imaging.yaml"
        shell:
            "{params.python:q} {input.program:q} {params.spec:q} {log:q}"

    rule feature_table:
        input:
            scans=R(Results.SCANS),
            features=case_features,
            diagnostics=case_diagnostics,
        output:
            features=R(Results.FEATURES),
            repeats=R(Results.REPEATS),
            qc=R(Results.EXTRACTION_QC),
            diagnostics=R(Results.DIAGNOSTICS),
        params:
            config=config_subset("outcome", "clinical"),
        log:
            R("logs/feature_table.log"),
        benchmark:
            R("benchmarks/feature_table.tsv")
        conda:
            "../envs/statistics.yaml"
        script:
            "../scripts/feature_table.py"
