# nnU-Net v2 segmentation (segmentation.source: nnunet; acceflow.imaging.nnunet): per modality, the
# training cohorts' preprocessed scans and reference masks as an nnU-Net raw dataset (the study's case
# ids mapped in cases.tsv), nnU-Net's planning and preprocessing with the study's folds written as
# splits_final.json, one training job per fold (resources gpu), then every scan segmented by the fold
# that did not see it (training cohorts) or by the ensemble of the folds (external cohorts). The masks,
# cards and quality rows go to the MONAI backend's paths, so quality, ICC and the dossier are shared.
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

    rule nnunet_segment:
        input:
            image=R(Results.PREPROCESSED_IMAGE),
            cards=nnunet_cards,
            original=lambda wc: scan_row(wc)["image"],
            reference=lambda wc: scan_row(wc)["mask"] or [],
        output:
            mask=R(Results.MODEL_MASK),
            preprocessed=R(Results.MODEL_MASK_PREPROCESSED),
            quality=R(Results.MODEL_MASK_QUALITY),
        params:
            root=lambda wc: R(Results.NNUNET_ROOT, modality=scans.scan_modality(scan_row(wc))),
            nnunet=SEG["nnunet"],
            device=SEG["device"],
            tolerance_mm=SEG["surface_tolerance_mm"],
            mask=mask_settings,
            on_error=config["on_case_error"],
        threads: 1
        resources:
            gpu=SEG["gpus"],
        log:
            R("logs/nnunet_segment/{scan}.log"),
        benchmark:
            R("benchmarks/nnunet_segment/{scan}.tsv")
        conda:
            "../envs/deeplearning.yaml"
        script:
            "../scripts/nnunet_segment.py"
