"""Which scans a stage works on: selections over the scans table (``ingest/scans.tsv``).

The workflow's input functions (``workflow/rules/common.smk``, ``segmentation_common.smk``) call
these with the table the ingest checkpoint wrote and the config values they need; here they are
plain functions of a DataFrame, tested on small tables (``tests/test_scans.py``).

The scans table has one row per usable scan, indexed by ``scan_id``, with at least ``case_id``,
``cohort``, ``image``, ``mask`` (``""`` when none), ``modality`` and ``primary`` (the first repeat
of each case and modality). Read from the TSV with ``dtype=str``, ``primary`` holds ``"True"`` /
``"False"``; booleans work as well.

The deep-learning crops are selected in :mod:`acceflow.study.deep` (``crop_scans``).
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd


NO_FOLD = -1  # a case outside cross-validation (segmented by the final model)
FINAL = "final"


def _primary(scans: pd.DataFrame) -> pd.Series:
    return scans["primary"].astype(str) == "True"


def _first_cases(scans: pd.DataFrame, max_cases: int | None) -> pd.DataFrame:
    """The rows of the first ``max_cases`` case ids in sorted order (all rows when 0 / None)."""
    if not max_cases:
        return scans
    cases = sorted(scans["case_id"].unique())[: int(max_cases)]
    return scans[scans["case_id"].isin(cases)]


def training_primary_scans(scans: pd.DataFrame, train_cohorts: Iterable[str], max_cases: int | None = None) -> list[str]:
    """Primary scans of the training cohorts, optionally of the first ``max_cases`` cases only.

    The scans the perturbation design perturbs (``reproducibility.perturbation.max_cases``) and
    the segmentation sample readers draw on (``segmentation.uncertainty.max_cases``).

    Parameters
    ----------
    scans : pandas.DataFrame
        The scans table, index ``scan_id``.
    train_cohorts : iterable of str
        ``cohorts.train``.
    max_cases : int, optional
        Keep the first ``max_cases`` case ids in sorted order; 0 or None keeps all.

    Returns
    -------
    list of str
        Scan ids in table order.
    """
    keep = scans[_primary(scans) & scans["cohort"].isin(list(train_cohorts))]
    return list(_first_cases(keep, max_cases).index)


def reader_pairs(scans: pd.DataFrame) -> pd.DataFrame:
    """Scans that share an image with another scan of the same case (two masks of one image).

    Parameters
    ----------
    scans : pandas.DataFrame
        The scans table, index ``scan_id``.

    Returns
    -------
    pandas.DataFrame
        Those rows, with ``scan_id`` as a column (default index), in table order.
    """
    rows = scans.reset_index()
    counts = rows.groupby(["case_id", "image"])["scan_id"].transform("count")
    return rows[counts >= 2]


def reader_masks(scans: pd.DataFrame) -> list[str]:
    """The mask files of the :func:`reader_pairs` scans, sorted, without duplicates or blanks."""
    return sorted(set(reader_pairs(scans)["mask"]) - {""})


def referenced_scans(scans: pd.DataFrame, primary: bool = False) -> list[str]:
    """Scans with a reference mask; with ``primary``, one per case and modality (for the ICC)."""
    keep = scans["mask"] != ""
    if primary:
        keep &= _primary(scans)
    return list(scans[keep].index)


def scan_modality(row) -> str:
    """The modality a scan's segmenter is trained for: its ``modality``, or ``"all"`` when blank."""
    return row["modality"] or "all"


def segmentation_cases(scans: pd.DataFrame, train_cohorts: Iterable[str], cv_folds: int, seed: int) -> pd.DataFrame:
    """Training-cohort primary scans with a reference mask, with their case-level fold.

    Parameters
    ----------
    scans : pandas.DataFrame
        The scans table, index ``scan_id``.
    train_cohorts : iterable of str
        ``cohorts.train``.
    cv_folds : int
        ``segmentation.cv_folds``; 0 trains only the final model.
    seed : int
        Seed of the fold assignment (:func:`acceflow.imaging.segment_model.assign_folds`).

    Returns
    -------
    pandas.DataFrame
        Those rows with two more columns: ``fold`` (0..cv_folds-1, or ``NO_FOLD`` = -1 without
        cross-validation) and ``seg_modality`` (:func:`scan_modality`).
    """
    train = scans[_primary(scans) & scans["cohort"].isin(list(train_cohorts)) & (scans["mask"] != "")]
    k = int(cv_folds)
    # imported here: the workflow parses this module in every job (a SLURM job step runs Snakemake
    # again), and segment_model pulls SimpleITK, which only segmentation studies need at parse time
    from acceflow.imaging.segment_model import assign_folds

    folds = assign_folds(train["case_id"], k, seed) if k else {}
    return train.assign(fold=[folds.get(c, NO_FOLD) for c in train["case_id"]],
                        seg_modality=[scan_modality(r) for _, r in train.iterrows()])


def segmentation_model_names(cv_folds: int) -> list[str]:
    """The segmenters trained per modality: ``fold0`` .. ``fold{k-1}``, then ``final``."""
    return [f"fold{i}" for i in range(int(cv_folds))] + [FINAL]


def training_scans(cases: pd.DataFrame, modality: str, model: str) -> list[str]:
    """The scans a segmenter trains on: its modality, all folds but its own (``final``: all).

    Parameters
    ----------
    cases : pandas.DataFrame
        :func:`segmentation_cases`.
    modality : str
        The segmenter's modality (``seg_modality``).
    model : str
        ``foldN`` or ``final``.
    """
    cases = cases[cases["seg_modality"] == modality]
    if model != FINAL:
        cases = cases[cases["fold"] != int(model[len("fold"):])]
    return list(cases.index)


def segmenter_of(row, cases: pd.DataFrame, train_cohorts: Iterable[str], cv_folds: int) -> str:
    """The model that segments a scan: out-of-fold for a training case (cross-validation), else final.

    Parameters
    ----------
    row : mapping
        The scan's row of the scans table (``case_id``, ``cohort``).
    cases : pandas.DataFrame
        :func:`segmentation_cases`.
    train_cohorts : iterable of str
        ``cohorts.train``.
    cv_folds : int
        ``segmentation.cv_folds``.

    Returns
    -------
    str
        ``foldN`` or ``final``.
    """
    if int(cv_folds) and row["cohort"] in list(train_cohorts):
        folds = dict(zip(cases["case_id"], cases["fold"]))
        if row["case_id"] in folds:
            return f"fold{folds[row['case_id']]}"
    return FINAL


def segmentation_modalities(cases: pd.DataFrame) -> list[str]:
    """The modalities a segmenter is trained for (sorted)."""
    return sorted(set(cases["seg_modality"]))


#: The nnU-Net inference batch of the scans segmented by the ensemble of the fold models.
ENSEMBLE = "ensemble"


def nnunet_batches(scans: pd.DataFrame, cases: pd.DataFrame, train_cohorts: Iterable[str],
                   cv_folds: int) -> dict[tuple[str, str], list[str]]:
    """The nnU-Net inference batches: one per modality and fold model, one per modality for the ensemble.

    Each batch is one job that loads its network once (rule ``nnunet_segment``). A scan's batch is its
    modality (:func:`scan_modality`) and its segmenter (:func:`segmenter_of`): ``foldN`` for a
    training case in the folds (its out-of-fold model; every scan of the case, retests included),
    :data:`ENSEMBLE` for every other scan (external cohorts, training scans without a reference mask).

    Parameters
    ----------
    scans : pandas.DataFrame
        The scans table, index ``scan_id``.
    cases, train_cohorts, cv_folds
        As :func:`segmenter_of` (``segmentation.nnunet.folds``).

    Returns
    -------
    dict
        ``(modality, batch)`` -> the batch's scan ids, sorted; batches without a scan are absent.
    """
    batches: dict[tuple[str, str], list[str]] = {}
    for scan_id, row in scans.sort_index().iterrows():
        model = segmenter_of(row, cases, train_cohorts, cv_folds)
        batches.setdefault((scan_modality(row), ENSEMBLE if model == FINAL else model), []).append(scan_id)
    return batches
