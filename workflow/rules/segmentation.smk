# Deep-learning segmentation (segmentation.source: model; acceflow.imaging.segment_model):
# one MONAI network per modality trained on the preprocessed images and reference masks of the
# training cohorts' primary scans (with segmentation.cv_folds: k, k fold models give every
# training scan an out-of-fold mask; a final model on all training cases segments the external
# cohorts), sliding-window inference per scan, quality against the reference masks, and
# segmentation uncertainty (MC-dropout / TTA masks as readers) -> ICC flags.
# segmentation.source: nnunet trains nnU-Net v2 instead (nnunet.smk); the fold table, quality, ICC
# and reference-feature rules below serve both backends.
# Training and inference declare a GPU (Snakemake standard resource `gpu`; see profiles/slurm).

include: "segmentation_common.smk"
include: "nnunet.smk"


if SEG_MASKS:

    rule segmentation_folds:
        input:
            scans=lambda wc: checkpoints.ingest.get().output.scans,
        output:
            folds=R(Results.SEGMENTATION_FOLDS),
        params:
            table=lambda wc: segmentation_cases()[["case_id", "cohort", "seg_modality", "fold"]].to_dict("index"),
        log:
            R("logs/segmentation_folds.log"),
        benchmark:
            R("benchmarks/segmentation_folds.tsv")
        conda:
            "../envs/deeplearning.yaml"
        script:
            "../scripts/segmentation_folds.py"

    rule segmentation_quality:
        input:
            scans=R(Results.SCANS),
            quality=lambda wc: expand(R(Results.MODEL_MASK_QUALITY), scan=referenced_scans()),
            images=lambda wc: expand(R(Results.PREPROCESSED_IMAGE), scan=referenced_scans()),
            references=lambda wc: expand(R(Results.PREPROCESSED_MASK), scan=referenced_scans()),
            models=lambda wc: expand(R(Results.MODEL_MASK_PREPROCESSED), scan=referenced_scans()),
            cards=segmentation_models,
        output:
            table=R(Results.SEGMENTATION_QUALITY),
            summary=R(Results.SEGMENTATION_QUALITY_SUMMARY),
            overlays=directory(R(Results.SEGMENTATION_OVERLAYS)),
        params:
            seed=config["seed"],
            train=config["cohorts"]["train"],
            cv_folds=SEG_FOLDS,
        log:
            R("logs/segmentation_quality.log"),
        benchmark:
            R("benchmarks/segmentation_quality.tsv")
        conda:
            "../envs/deeplearning.yaml"
        script:
            "../scripts/segmentation_quality.py"

    rule extract_reference:
        input:
            image=R(Results.PREPROCESSED_IMAGE),
            mask=R(Results.PREPROCESSED_MASK),
            params=extraction_params,
        output:
            features=R(Results.REFERENCE_FEATURES),
            diagnostics=R(Results.REFERENCE_DIAGNOSTICS),
        params:
            label=config["extraction"]["label"],
            overrides=extraction_overrides,
            on_error=config["on_case_error"],
        log:
            R("logs/extract_reference/{scan}.log"),
        benchmark:
            R("benchmarks/extract_reference/{scan}.tsv")
        conda:
            "../envs/imaging.yaml"
        script:
            "../scripts/extract.py"

    rule reference_vs_model_icc:
        input:
            scans=R(Results.SCANS),
            reference=lambda wc: expand(R(Results.REFERENCE_FEATURES), scan=referenced_scans(primary=True)),
            model=lambda wc: expand(R(Results.CASE_FEATURES),
                                    case=sorted(set(scans_table().loc[referenced_scans(primary=True), "case_id"]))),
        output:
            icc=R(Results.REFERENCE_VS_MODEL_ICC),
        params:
            threshold=config["reproducibility"]["threshold"],
            scans=lambda wc: referenced_scans(primary=True),
        log:
            R("logs/reference_vs_model_icc.log"),
        benchmark:
            R("benchmarks/reference_vs_model_icc.tsv")
        conda:
            "../envs/statistics.yaml"
        script:
            "../scripts/segmentation_icc.py"


if SEG_MODEL:

    rule train_segmenter:
        input:
            folds=R(Results.SEGMENTATION_FOLDS),
            images=lambda wc: expand(R(Results.PREPROCESSED_IMAGE), scan=training_scans(wc)),
            masks=lambda wc: expand(R(Results.PREPROCESSED_MASK), scan=training_scans(wc)),
        output:
            model=R(Results.SEGMENTER),
            card=R(Results.SEGMENTER_CARD),
        wildcard_constraints:
            fold=r"fold\d+|final",
        params:
            scans=training_scans,
            settings=SEG_SETTINGS,
            seed=config["seed"],
            label=config["extraction"]["label"],
        resources:
            gpu=SEG["gpus"],
        log:
            R("logs/train_segmenter/{modality}_{fold}.log"),
        benchmark:
            R("benchmarks/train_segmenter/{modality}_{fold}.tsv")
        conda:
            "../envs/deeplearning.yaml"
        script:
            "../scripts/train_segmenter.py"

    rule segment_model:
        input:
            image=R(Results.PREPROCESSED_IMAGE),
            model=segmenter_for,
            original=lambda wc: scan_row(wc)["image"],
            reference=lambda wc: scan_row(wc)["mask"] or [],
        output:
            mask=R(Results.MODEL_MASK),
            preprocessed=R(Results.MODEL_MASK_PREPROCESSED),
            quality=R(Results.MODEL_MASK_QUALITY),
        params:
            settings=SEG_SETTINGS,
            mask=mask_settings,
            on_error=config["on_case_error"],
        resources:
            gpu=SEG["gpus"],
        log:
            R("logs/segment_model/{scan}.log"),
        benchmark:
            R("benchmarks/segment_model/{scan}.tsv")
        conda:
            "../envs/deeplearning.yaml"
        script:
            "../scripts/segment_model.py"


if SEG_UNCERTAINTY:

    rule segmentation_samples:
        input:
            image=R(Results.PREPROCESSED_IMAGE),
            model=segmenter_for,
        output:
            samples=expand(R(Results.SEGMENTATION_SAMPLE), i=range(1, SEG["uncertainty"]["samples"] + 1),
                           allow_missing=True),
        params:
            settings=SEG_SETTINGS,
            seed=config["seed"],
            label=config["extraction"]["label"],
        resources:
            gpu=SEG["gpus"],
        log:
            R("logs/segmentation_samples/{scan}.log"),
        benchmark:
            R("benchmarks/segmentation_samples/{scan}.tsv")
        conda:
            "../envs/deeplearning.yaml"
        script:
            "../scripts/segmentation_samples.py"

    rule sample_features:
        input:
            image=R(Results.PREPROCESSED_IMAGE),
            samples=rules.segmentation_samples.output.samples,
            params=extraction_params,
        output:
            features=R(Results.SAMPLE_FEATURES),
        params:
            label=config["extraction"]["label"],
            overrides=extraction_overrides,
            on_error=config["on_case_error"],
        log:
            R("logs/sample_features/{scan}.log"),
        benchmark:
            R("benchmarks/sample_features/{scan}.tsv")
        conda:
            "../envs/imaging.yaml"
        script:
            "../scripts/sample_features.py"

    rule segmentation_icc:
        input:
            scans=R(Results.SCANS),
            samples=lambda wc: expand(R(Results.SAMPLE_FEATURES), scan=sampled_scans()),
        output:
            icc=R(Results.SEGMENTATION_ICC),
        params:
            threshold=config["reproducibility"]["threshold"],
        log:
            R("logs/segmentation_icc.log"),
        benchmark:
            R("benchmarks/segmentation_icc.tsv")
        conda:
            "../envs/statistics.yaml"
        script:
            "../scripts/segmentation_icc.py"
