"""Every path of the results contract, named once.

The rules (``workflow/rules/*.smk``, through ``R()`` in ``common.smk``) and the dossier
(:mod:`acceflow.report`) both spell a results file through this module, so renaming a file is one
edit here and cannot make a dossier section vanish silently.

Paths are templates relative to the results folder, with the wildcards Snakemake uses:
``{cohort}`` (``train`` or an external cohort), ``{model}`` (a comparator model), ``{scan}``, ``{case}``,
``{modality}``, ``{fold}``, ``{i}`` (a segmentation sample), ``{site}`` (a held-out site of the
internal-external cross-validation), ``{batch}`` (an nnU-Net inference batch). The primary model writes the paths
as named; each comparator writes the same files under ``comparators/{model}/`` inside the same
folder (:func:`comparator`)::

    >>> Results.PREDICTIONS
    'clinical/{cohort}/predictions.tsv'
    >>> comparator(Results.PREDICTIONS)
    'clinical/{cohort}/comparators/{model}/predictions.tsv'
    >>> fill(comparator(Results.CALIBRATION, "deep"), cohort="site_B")
    'utility/site_B/comparators/deep/calibration.json'
    >>> comparator(Results.MODEL_CARD, "deep")
    'clinical/model/comparators/deep/model_card.json'

Log and benchmark files are not part of the contract and are not named here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["Results", "RECORDED_SUFFIXES", "comparator", "contract_files", "fill", "path_in", "wildcards_of"]


class Results:
    """Templates of the results contract (relative to the results folder)."""

    # ingest
    QC = "ingest/qc.tsv"
    SCANS = "ingest/scans.tsv"
    # imaging
    PREPROCESSED_IMAGE = "preprocessed/{scan}/image.nii.gz"
    PREPROCESSED_MASK = "preprocessed/{scan}/mask.nii.gz"
    OTSU_MASK = "segmentation/otsu/{scan}/mask.nii.gz"
    # model segmentation (segmentation.source: model)
    SEGMENTATION_FOLDS = "segmentation/model/folds.tsv"
    SEGMENTER = "segmentation/model/{modality}/{fold}/model.pt"
    SEGMENTER_CARD = "segmentation/model/{modality}/{fold}/model_card.json"
    MODEL_MASK = "segmentation/model/{scan}/mask.nii.gz"
    MODEL_MASK_PREPROCESSED = "segmentation/model/{scan}/preprocessed_mask.nii.gz"
    MODEL_MASK_QUALITY = "segmentation/model/{scan}/quality.tsv"
    SEGMENTATION_SAMPLE = "segmentation/model/{scan}/samples/sample_{i}.nii.gz"
    # nnU-Net segmentation (segmentation.source: nnunet): one nnU-Net folder tree per modality; the fold
    # cards, masks and quality rows are the model paths above (SEGMENTER_CARD with fold = foldN)
    NNUNET_ROOT = "segmentation/nnunet/{modality}"
    NNUNET_RAW = "segmentation/nnunet/{modality}/nnUNet_raw"
    NNUNET_PREPROCESSED = "segmentation/nnunet/{modality}/nnUNet_preprocessed"
    NNUNET_CASES = "segmentation/nnunet/{modality}/cases.tsv"
    NNUNET_PLANS = "segmentation/nnunet/{modality}/plans_summary.json"
    # one inference batch (rule nnunet_segment; {batch}: foldN or ensemble): per scan {scan}/mask.nii.gz,
    # preprocessed_mask.nii.gz, quality.tsv (copied to the MODEL_MASK* paths), and batch.tsv
    NNUNET_PREDICTIONS = "segmentation/nnunet/{modality}/predictions/{batch}"
    # features
    FEATURES = "features/features.tsv"
    COHORTS = "features/cohorts.tsv"
    FEATURE_SUMMARY = "features/feature_summary.json"
    REPEATS = "features/repeats.tsv"
    REPEATS_PERTURBATION = "features/repeats_perturbation.tsv"
    EXTRACTION_QC = "features/extraction_qc.tsv"
    DIAGNOSTICS = "features/diagnostics.tsv"
    # one extraction job per case (issue 21): one row per scan of the case, in scan order
    CASE_FEATURES = "features/cases/{case}.tsv"
    CASE_DIAGNOSTICS = "features/case_diagnostics/{case}.tsv"
    PERTURBATION_FEATURES = "features/perturbations/{scan}.tsv"
    REFERENCE_FEATURES = "features/reference/{scan}.tsv"
    REFERENCE_DIAGNOSTICS = "features/reference_diagnostics/{scan}.tsv"
    SAMPLE_FEATURES = "features/segmentation_samples/{scan}.tsv"
    # analytical validity
    ICC = "analytical/icc.tsv"
    STABLE_FEATURES = "analytical/stable_features.txt"
    AGREEMENT = "analytical/agreement.tsv"
    DROPPED_FEATURES = "analytical/dropped_features.tsv"
    SEGMENTATION_AGREEMENT = "analytical/segmentation_agreement.tsv"
    SITE_EFFECT = "analytical/site_effect.tsv"
    #: feature-level domain shift per feature set and site (domain classifier, MMD, performance drop) and its summary
    DOMAIN_SHIFT = "analytical/domain_shift.tsv"
    DOMAIN_SHIFT_SUMMARY = "analytical/domain_shift.json"
    #: counts and share of stable features (the summary screen's analytical verdict reads it)
    ICC_SUMMARY = "analytical/icc_summary.json"
    IBSI = "analytical/ibsi.tsv"
    IBSI_SUMMARY = "analytical/ibsi_summary.tsv"
    SEGMENTATION_QUALITY = "analytical/segmentation_quality.tsv"
    SEGMENTATION_QUALITY_SUMMARY = "analytical/segmentation_quality_summary.tsv"
    SEGMENTATION_OVERLAYS = "analytical/segmentation_overlays"
    SEGMENTATION_OVERLAYS_INDEX = "analytical/segmentation_overlays/overlays.json"
    SEGMENTATION_ICC = "analytical/segmentation_icc.tsv"
    REFERENCE_VS_MODEL_ICC = "analytical/reference_vs_model_icc.tsv"
    DEEP_ICC = "analytical/deep_icc.tsv"
    # clinical validity: the frozen model (comparators: clinical/model/comparators/{model}/)
    MODEL = "clinical/model/model.skops"  # skops format, no pickle (acceflow.models.persistence)
    MODEL_CARD = "clinical/model/model_card.json"
    COEFFICIENTS = "clinical/model/coefficients.tsv"
    NETWORK = "clinical/model/model.pt"  # a network model (the deep comparator's: comparator(NETWORK, "deep"))
    TRAINING_HISTORY = "clinical/model/training_history.tsv"  # idem
    # clinical validity per cohort (comparators: clinical/{cohort}/comparators/{model}/)
    PREDICTIONS = "clinical/{cohort}/predictions.tsv"
    CV_FOLDS = "clinical/{cohort}/cv_folds.tsv"  # cohort train only
    METRICS = "clinical/{cohort}/metrics.json"
    #: ROC curve points (binary) or Kaplan–Meier curves of the risk groups (survival), for the dossier's figure
    DISCRIMINATION_CURVE = "clinical/{cohort}/discrimination_curve.tsv"
    MODEL_COMPARISON = "clinical/{cohort}/model_comparison.tsv"
    PERMUTATION_IMPORTANCE = "clinical/{cohort}/permutation_importance.tsv"
    OPTIMISM = "clinical/train/optimism.tsv"
    # internal-external cross-validation (validation.internal_external): the primary model's training
    # refitted without each site in turn ({site}: a cohort of cohorts.train + cohorts.external) and
    # validated on it, one job per site; then the random-effects pooling of the per-site figures
    IECV_PREDICTIONS = "clinical/internal_external/{site}/predictions.tsv"
    IECV_SITE = "clinical/internal_external/{site}/metrics.json"
    IECV_SITE_METRICS = "clinical/internal_external/site_metrics.tsv"
    IECV_POOLED = "clinical/internal_external/pooled.json"
    # explanations that respect correlated features (rule explain; the clinical comparator's under
    # clinical/explain/comparators/{model}/): clusters of the model's features on 1 - |Spearman rho|, grouped
    # SHAP (per case and feature, per case and cluster, summary per cluster), permutation importance of whole
    # clusters per cohort, odds / hazard ratios per SD from an unpenalised refit on the selected features
    FEATURE_CLUSTERS = "clinical/explain/feature_clusters.tsv"
    SHAP_VALUES = "clinical/explain/shap_values.tsv"
    SHAP_GROUPS = "clinical/explain/shap_groups.tsv"
    SHAP_SUMMARY = "clinical/explain/shap_summary.tsv"
    GROUPED_IMPORTANCE = "clinical/explain/grouped_importance.tsv"
    REFIT_RATIOS = "clinical/explain/refit_ratios.tsv"
    # clinical utility per cohort (comparators: utility/{cohort}/comparators/{model}/)
    CALIBRATION = "utility/{cohort}/calibration.json"
    CALIBRATION_BINS = "utility/{cohort}/calibration_bins.tsv"
    CALIBRATION_CURVE = "utility/{cohort}/calibration_curve.tsv"
    DECISION_CURVE = "utility/{cohort}/decision_curve.tsv"
    USEFUL_THRESHOLDS = "utility/{cohort}/useful_thresholds.json"
    RECALIBRATION = "utility/{cohort}/recalibration.tsv"
    CALIBRATION_FIGURE = "utility/{cohort}/calibration.{ext}"  # ext: png, svg
    DECISION_CURVE_FIGURE = "utility/{cohort}/decision_curve.{ext}"
    # federated training (model.comparators lists federated; the model itself: comparator(MODEL, "federated"))
    #: a training site's rows (the only table its jobs read), what it shares for the pooled
    #: standardisation, and its update of each round
    FEDERATED_SITE_TABLE = "clinical/federated/sites/{site}/table.tsv"
    FEDERATED_MOMENTS = "clinical/federated/sites/{site}/moments.json"
    FEDERATED_UPDATE = "clinical/federated/sites/{site}/round_{round}.json"
    #: survival only: what a site shares once after the last round (event-time table for the pooled
    #: Breslow baseline, its sorted risk scores for the card's training risk distribution)
    FEDERATED_BASELINE = "clinical/federated/sites/{site}/baseline.json"
    #: the server's pooled standardisation and global model after each round (round_0: the start)
    FEDERATED_STANDARDISATION = "clinical/federated/server/standardisation.json"
    FEDERATED_GLOBAL = "clinical/federated/server/round_{round}.json"
    #: one row per round and site: round, site, n, loss, update_norm, drift
    FEDERATED_ROUNDS = "clinical/federated/rounds.tsv"
    #: coefficients of the federated, central (pooled) and local-only fits; their AUCs per external
    #: cohort with paired DeLong tests against the federated model; the largest coefficient difference
    FEDERATED_COEFFICIENTS = "clinical/federated/coefficients.tsv"
    FEDERATED_COMPARISON = "clinical/federated/comparison.tsv"
    FEDERATED_SUMMARY = "clinical/federated/summary.json"
    # synthetic lesions with an audit (synthetic.enabled; acceflow.study.synthetic): which training cases
    # the generator saw (role generator_train) and which it did not (holdout); the synthetic cases
    # (case_id, label, the feature columns of FEATURES); the audit per feature and stratum, its summary,
    # both Spearman matrices (long: feature_a, feature_b, rho_real, rho_synthetic) and the
    # nearest-neighbour distances (set: synthetic or holdout, distance to the nearest generator-training case)
    SYNTHETIC_SPLIT = "synthetic/split.tsv"
    SYNTHETIC_FEATURES = "synthetic/features.tsv"
    SYNTHETIC_FIDELITY = "analytical/synthetic_fidelity.tsv"
    SYNTHETIC_SUMMARY = "analytical/synthetic_summary.json"
    SYNTHETIC_CORRELATIONS = "analytical/synthetic_correlations.tsv"
    SYNTHETIC_DISTANCES = "analytical/synthetic_distances.tsv"
    #: the image generators (synthetic.generator wgan_gp / cgan): the trained networks (weights and plain
    #: values, torch.load(weights_only=True)), their card (settings, crops per class, excluded cases,
    #: seconds, device) and per-iteration losses; the synthetic crops (npz: case_id, label, image, mask,
    #: dropped: ids of lesions with an empty mask); per synthetic case ok / dropped with the reason;
    #: the slice grid of real and synthetic lesions per class (a PNG the dossier embeds)
    SYNTHETIC_GENERATOR = "synthetic/generator.pt"
    SYNTHETIC_GENERATOR_CARD = "synthetic/generator.json"
    SYNTHETIC_GENERATOR_HISTORY = "synthetic/generator_history.tsv"
    SYNTHETIC_CROPS = "synthetic/crops.npz"
    SYNTHETIC_EXTRACTION_QC = "synthetic/extraction_qc.tsv"
    SYNTHETIC_SLICES = "analytical/synthetic_slices.png"
    #: real-only imaging model (TRTR) against the synthetic comparators on one cohort, paired DeLong
    SYNTHETIC_COMPARISON = "clinical/{cohort}/synthetic_comparison.tsv"
    # the federated network (model.comparators lists deep_federated; the network itself:
    # comparator(NETWORK, "deep_federated")): a site's crops and outcomes (the only data its jobs
    # read), what it shares for the pooled crop normalisation, its update of each round (state dict,
    # weights only) and its private state (AdamW moments, FedBN's layers; never read by the server)
    FEDERATED_DEEP_SITE_CROPS = "clinical/federated_deep/sites/{site}/crops.npz"
    FEDERATED_DEEP_MOMENTS = "clinical/federated_deep/sites/{site}/moments.json"
    FEDERATED_DEEP_UPDATE = "clinical/federated_deep/sites/{site}/round_{round}.pt"
    FEDERATED_DEEP_LOCAL = "clinical/federated_deep/sites/{site}/local_{round}.pt"
    #: the server's pooled channel statistics and global network after each round (round_0: the start)
    FEDERATED_DEEP_STANDARDISATION = "clinical/federated_deep/server/standardisation.json"
    FEDERATED_DEEP_GLOBAL = "clinical/federated_deep/server/round_{round}.pt"
    #: one row per round and site: round, site, n, loss, update_norm, drift (over the whole state dict)
    FEDERATED_DEEP_ROUNDS = "clinical/federated_deep/rounds.tsv"
    # deep-learning biomarker
    DEEP_CROP = "deep/crops/{scan}.npz"
    DEEP_FEATURES = "deep/features.tsv"
    DEEP_REPEATS = "deep/repeats.tsv"
    #: the DANN network's embeddings (deep.domain_adaptation: dann), for its domain shift
    DANN_FEATURES = "deep/dann/features.tsv"
    DANN_REPEATS = "deep/dann/repeats.tsv"
    GRADCAM = "deep/gradcam/{cohort}/gradcam.tsv"
    GRADCAM_IMAGE = "deep/gradcam/{cohort}/{png}"
    #: integrated gradients (captum) of the cases Grad-CAM shows: one row per case, and its overlay PNG
    INTEGRATED_GRADIENTS = "deep/integrated_gradients/{cohort}/integrated_gradients.tsv"
    INTEGRATED_GRADIENTS_IMAGE = "deep/integrated_gradients/{cohort}/{png}"
    # the dossier
    DOSSIER = "report/dossier.html"
    SUMMARY = "report/summary.json"
    PROVENANCE = "report/provenance.json"
    RULEGRAPH = "report/rulegraph.svg"
    #: every figure the dossier rule draws, as ``{name}.png`` (the bytes embedded in the dossier) and ``{name}.svg``
    REPORT_FIGURES = "report/figures"
    REPORT_FIGURE = "report/figures/{name}.{ext}"
    #: the dossier printed by headless Chromium (rule dossier_pdf; config ``report.pdf``)
    DOSSIER_PDF = "report/dossier.pdf"
    #: METRICS and RQS items, points and the source of each answer (acceflow.study.quality)
    QUALITY_SCORES = "report/quality_scores.json"


_WILDCARD = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})")


def comparator(template: str, model: str = "{model}") -> str:
    """The path a comparator model writes instead of the primary model's ``template``.

    ``comparators/{model}/`` is inserted after the first two parts (``clinical/{cohort}/``,
    ``utility/{cohort}/`` or ``clinical/model/``).
    """
    parts = template.split("/")
    if len(parts) < 3 or parts[0] not in ("clinical", "utility"):
        raise ValueError(f"{template!r} has no comparator version")
    return "/".join([*parts[:2], "comparators", model, *parts[2:]])


def fill(template: str, **wildcards) -> str:
    """``template`` with the given wildcards filled in; the others stay as ``{name}``."""
    return _WILDCARD.sub(lambda m: str(wildcards[m.group(1)]) if m.group(1) in wildcards else m.group(0),
                         template)


def wildcards_of(template: str) -> list[str]:
    """The wildcard names of a template, in order."""
    return _WILDCARD.findall(template)


def path_in(results_dir: str | os.PathLike, template: str, model: str | None = None, **wildcards) -> Path:
    """The file of ``template`` (of comparator ``model`` when given) in a results folder."""
    if model is not None:
        template = comparator(template, model)
    return Path(results_dir) / fill(template, **wildcards)


#: What of the results contract the provenance record hashes and ``acceflow verify`` re-checks:
#: tables, JSON, text lists, model files and figures (images, masks and crops are not included).
RECORDED_SUFFIXES = (".tsv", ".csv", ".json", ".txt", ".skops", ".pt", ".png", ".svg", ".pdf")


def _contract_patterns() -> list[re.Pattern]:
    patterns = []
    for name, template in vars(Results).items():
        if not name.isupper() or not isinstance(template, str):
            continue
        templates = [template]
        parts = template.split("/")
        if len(parts) >= 3 and parts[0] in ("clinical", "utility"):
            templates.append(comparator(template))
        for t in templates:
            regex = "".join("[^/]+" if i % 2 else re.escape(piece) for i, piece in enumerate(_WILDCARD.split(t)))
            if "." not in t.rsplit("/", 1)[-1]:  # a folder of the contract: every file under it
                regex += "/.+"
            patterns.append(re.compile(regex))
    return patterns


def contract_files(results_dir: str | os.PathLike, suffixes=RECORDED_SUFFIXES,
                   exclude: tuple[str, ...] = ("report/",)) -> list[str]:
    """The files of the results contract present in a results folder, relative (POSIX), sorted.

    A file counts when its path matches a template of :class:`Results` (or its comparator
    version) and ends in one of ``suffixes``; paths starting with a prefix in ``exclude`` (the
    report, which records the others) and hidden files (temporary names) are left out.
    """
    root = Path(results_dir)
    if not root.is_dir():
        return []
    patterns = _contract_patterns()
    out = []
    for f in root.rglob("*"):
        if not f.is_file():
            continue
        rel = f.relative_to(root).as_posix()
        if (rel.startswith(exclude) or any(p.startswith(".") for p in rel.split("/"))
                or not rel.endswith(tuple(suffixes))):
            continue
        if any(p.fullmatch(rel) for p in patterns):
            out.append(rel)
    return sorted(out)
