# nnU-Net v2 segmentation (segmentation.source: nnunet; acceflow.imaging.nnunet): per modality, the
# training cohorts' preprocessed scans and reference masks as an nnU-Net raw dataset (the study's case
# ids mapped in cases.tsv), nnU-Net's planning and preprocessing with the study's folds written as
# splits_final.json, one training job per fold (resources gpu), then every scan segmented by the fold
# that did not see it (training cohorts) or by the ensemble of the folds (external cohorts), one
# inference job per batch (modality and fold, or modality and ensemble). The masks, cards and quality
# rows go to the MONAI backend's paths, so quality, ICC and the dossier are shared.
# nnUNet_raw / _preprocessed / _results are set by the scripts under the results folder.

if SEG_NNUNET:

    rule nnunet_dataset:
        input:
            folds=R(Results.SEGMENTATION_FOLDS),
            images=lambda wc: expand(R(Results.PREPROCESSED_IMAGE), scan=sorted(nnunet_cases(wc))),
            masks=lambda wc: expand(R(Results.PREPROCESSED_MASK), scan=sorted(nnunet_cases(wc))),
        output:
            raw=directory(R(Results.NNUNET_RAW)),
            cases=R(Results.NNUNET_CASES),
        params:
            cases=nnunet_cases,
            root=lambda wc: R(Results.NNUNET_ROOT, modality=wc.modality),
            label=config["extraction"]["label"],
            folds=SEG_FOLDS,
        log:
            R("logs/nnunet_dataset/{modality}.log"),
        benchmark:
            R("benchmarks/nnunet_dataset/{modality}.tsv")
        conda:
            "../envs/deeplearning.yaml"
        script:
            "../scripts/nnunet_dataset.py"

    rule nnunet_plan:
        input:
            raw=R(Results.NNUNET_RAW),
            cases=R(Results.NNUNET_CASES),
        output:
            preprocessed=directory(R(Results.NNUNET_PREPROCESSED)),
            summary=R(Results.NNUNET_PLANS),
        params:
            root=lambda wc: R(Results.NNUNET_ROOT, modality=wc.modality),
            nnunet=SEG["nnunet"],
        threads: SEG["nnunet"]["threads"]
        log:
            R("logs/nnunet_plan/{modality}.log"),
        benchmark:
            R("benchmarks/nnunet_plan/{modality}.tsv")
        conda:
            "../envs/deeplearning.yaml"
        script:
            "../scripts/nnunet_plan.py"

    rule nnunet_train:
        input:
            preprocessed=R(Results.NNUNET_PREPROCESSED),
            summary=R(Results.NNUNET_PLANS),
        output:
            card=R(Results.SEGMENTER_CARD),
        wildcard_constraints:
            fold=r"fold\d+",
        params:
            root=lambda wc: R(Results.NNUNET_ROOT, modality=wc.modality),
            nnunet=SEG["nnunet"],
            device=SEG["device"],
            seed=config["seed"],
        threads: SEG["nnunet"]["threads"]
        resources:
            gpu=SEG["gpus"],
        log:
            R("logs/nnunet_train/{modality}_{fold}.log"),
        benchmark:
            R("benchmarks/nnunet_train/{modality}_{fold}.tsv")
        conda:
            "../envs/deeplearning.yaml"
        script:
            "../scripts/nnunet_train.py"

    # Inference in batches: one job per modality and fold for the training cohorts' out-of-fold scans,
    # one per modality for the fold ensemble (external cohorts, training scans outside the folds); each
    # loads its network once (acceflow.imaging.nnunet.segment_scans). A scan whose prediction fails gets
    # the empty-mask fallback, flagged in its quality row; the batch job still succeeds.
    rule nnunet_segment:
        input:
            images=lambda wc: expand(R(Results.PREPROCESSED_IMAGE), scan=nnunet_batch_scans(wc)),
            cards=nnunet_cards,
            originals=lambda wc: [scans_table().loc[s, "image"] for s in nnunet_batch_scans(wc)],
            references=lambda wc: [m for m in scans_table().loc[nnunet_batch_scans(wc), "mask"] if m],
        output:
            predictions=directory(R(Results.NNUNET_PREDICTIONS)),
        wildcard_constraints:
            batch=r"fold\d+|ensemble",
        params:
            root=lambda wc: R(Results.NNUNET_ROOT, modality=wc.modality),
            scans=nnunet_batch_settings,
            nnunet=SEG["nnunet"],
            device=SEG["device"],
            tolerance_mm=SEG["surface_tolerance_mm"],
            on_error=config["on_case_error"],
        threads: SEG["nnunet"]["threads"]
        resources:
            gpu=SEG["gpus"],
        log:
            R("logs/nnunet_segment/{modality}_{batch}.log"),
        benchmark:
            R("benchmarks/nnunet_segment/{modality}_{batch}.tsv")
        conda:
            "../envs/deeplearning.yaml"
        script:
            "../scripts/nnunet_segment.py"

    # Each scan's files at the model-segmentation paths (quality, ICC, extraction and the dossier read
    # them there), copied from its batch. The batch folder is ancient(): a batch re-run because a scan
    # joined it re-copies only the new scan, so the other cases are not re-extracted; whatever decides a
    # scan's mask is an input or param here too (its image, original, reference, the fold cards, the
    # settings), so a retrained model or a changed scan still re-copies it.
    rule nnunet_scan:
        input:
            predictions=lambda wc: ancient(R(Results.NNUNET_PREDICTIONS, **nnunet_batch_of(wc))),
            image=R(Results.PREPROCESSED_IMAGE),
            cards=nnunet_cards,
            original=lambda wc: scan_row(wc)["image"],
            reference=lambda wc: scan_row(wc)["mask"] or [],
        output:
            mask=R(Results.MODEL_MASK),
            preprocessed=R(Results.MODEL_MASK_PREPROCESSED),
            quality=R(Results.MODEL_MASK_QUALITY),
        params:
            folder=lambda wc, input: os.path.join(input.predictions, wc.scan),
            missing=lambda wc, input: (f"scan {wc.scan}: rule nnunet_segment wrote no mask for it (status failed in "
                                       f"{os.path.join(input.predictions, 'batch.tsv')}; the reason is in that "
                                       f"batch's log under logs/nnunet_segment/)"),
            nnunet=SEG["nnunet"],
            device=SEG["device"],
            tolerance_mm=SEG["surface_tolerance_mm"],
            mask=mask_settings,
            on_error=config["on_case_error"],
        localrule: True
        log:
            R("logs/nnunet_scan/{scan}.log"),
        benchmark:
            R("benchmarks/nnunet_scan/{scan}.tsv")
        shell:
            "(cp {params.folder:q}/preprocessed_mask.nii.gz {output.preprocessed:q}"
            " && cp {params.folder:q}/mask.nii.gz {output.mask:q}"
            " && cp {params.folder:q}/quality.tsv {output.quality:q}) 2> {log:q}"
            " || (echo {params.missing:q} | tee -a {log:q} >&2; exit 1)"
