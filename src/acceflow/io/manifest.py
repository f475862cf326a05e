"""Image manifests and feature tables: reading, validation and ingest quality control.

The image manifest has one row per image: ``case_id``, ``image``, ``mask``, the cohort column,
outcome columns, optional clinical covariates, optional ``repeat`` (scan or reader id) and
``modality``, and for DICOM input optional ``series_uid`` (the SeriesInstanceUID to read from an
image folder holding several series) and ``roi`` (the RTSTRUCT ROI name or SEG segment of the
mask; default ``input.roi``). Relative paths resolve against ``data_root`` (default: the manifest's folder).
A *scan* is one row; its ``scan_id`` is ``case_id`` joined with modality and repeat where those
vary, and names the per-scan files of the workflow.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from acceflow.io.schemas import load_schema, validate_rows

REQUIRED_IMAGE_COLUMNS = ("case_id", "image")


class ManifestError(ValueError):
    """A manifest or feature table is unusable; the message names the file, the rows and the fix."""


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a TSV or CSV table (the delimiter is sniffed), keeping ids as strings.

    Parameters
    ----------
    path : path-like
        ``.tsv``/``.txt`` (tab) or ``.csv`` (comma) file with a header row.

    Returns
    -------
    pandas.DataFrame
        ``case_id`` (when present) as ``str``; other columns as parsed by pandas.

    Raises
    ------
    ManifestError
        When the file is missing or empty.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: table not found; check input.images / input.features in the config")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        head = fh.readline()
    sep = "\t" if head.count("\t") >= head.count(",") and "\t" in head else ","
    try:
        df = pd.read_csv(path, sep=sep, dtype={"case_id": str, "repeat": str, "modality": str, "roi": str,
                                               "series_uid": str},
                         encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise ManifestError(f"{path}: the table is empty (no header row); write the column names on its first "
                            "line") from None
    if df.empty:
        raise ManifestError(f"{path}: the table has no rows")
    df.columns = [str(c).strip() for c in df.columns]
    return df


def make_scan_id(case_id: str, modality: str | None = None, repeat: str | None = None) -> str:
    """File-safe id of one manifest row: ``case_id[__modality][__repeat]``."""
    parts = [str(case_id)] + [str(p) for p in (modality, repeat) if p not in (None, "") and not pd.isna(p)]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", "__".join(parts))


def load_manifest(path: str | os.PathLike, data_root: str | os.PathLike | None = None,
                  cohort_column: str = "cohort", default_modality: str = "CT") -> pd.DataFrame:
    """Read and validate an image manifest.

    Parameters
    ----------
    path : path-like
        Manifest (TSV/CSV), one row per image.
    data_root : path-like, optional
        Folder that relative ``image``/``mask`` paths resolve against (default: the manifest's
        folder). Paths that resolve outside it are refused.
    cohort_column : str
        Column naming the cohort (site).
    default_modality : str
        Modality for manifests without a ``modality`` column.

    Returns
    -------
    pandas.DataFrame
        The manifest with absolute ``image`` and ``mask`` paths, ``cohort``, ``modality``,
        ``repeat`` (``""`` when absent), ``scan_id`` and ``primary`` (True for the first repeat
        of each case and modality, the scan the model uses). Optional ``roi`` and ``series_uid``
        columns are kept as stripped strings (``""`` where empty).

    Raises
    ------
    ManifestError
        Missing columns, empty case ids, cells that do not match the row schema
        (``workflow/schemas/manifest.schema.yaml``: an empty image, a mask or modality that is not
        text; each named by line, case, column and fix), duplicate (case_id, modality, repeat)
        rows, paths that escape ``data_root`` (also through links in a DICOM folder), or repeat
        labels outside the repeat design (:func:`check_repeat_design`).
    """
    path = Path(path)
    df = read_table(path)
    missing = [c for c in (*REQUIRED_IMAGE_COLUMNS, cohort_column) if c not in df.columns]
    if missing:
        raise ManifestError(f"{path}: missing column(s) {missing}; an image manifest needs "
                            f"case_id, image, mask and the cohort column '{cohort_column}' "
                            f"(cohorts.column in the config)")
    df = df.copy()
    df["case_id"] = df["case_id"].astype(str).str.strip()
    if (df["case_id"].isin(["", "nan"])).any():
        rows = [int(i) + 2 for i in np.flatnonzero(df["case_id"].isin(["", "nan"]))]
        raise ManifestError(f"{path}: empty case_id on line(s) {rows}")
    problems = validate_rows(df, load_schema("manifest"))
    if problems:
        raise ManifestError(f"{path}: rows that do not match the manifest schema "
                            f"(workflow/schemas/manifest.schema.yaml):\n  " + "\n  ".join(problems))
    df["cohort"] = df[cohort_column].astype(str)
    df["modality"] = df["modality"].fillna(default_modality).astype(str) if "modality" in df else default_modality
    df["repeat"] = df["repeat"].fillna("").astype(str) if "repeat" in df else ""
    if "mask" not in df:
        df["mask"] = ""
    for column in ("roi", "series_uid"):  # optional DICOM selectors, one per row
        if column in df:
            df[column] = df[column].map(lambda v: "" if pd.isna(v) else (
                str(int(v)) if isinstance(v, float) and v.is_integer() else str(v).strip()))
    dup = df.duplicated(["case_id", "modality", "repeat"], keep=False)
    if dup.any():
        raise ManifestError(f"{path}: duplicate rows for case_id(s) {sorted(df.loc[dup, 'case_id'].unique())[:10]} "
                            f"(same modality and repeat); give each repeat its own 'repeat' value")
    root = Path(data_root) if data_root else path.parent
    root = root.resolve()

    def resolve(value, column, row):
        if value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == "":
            return ""
        p = Path(str(value).strip())
        p = (p if p.is_absolute() else root / p).resolve()
        if data_root and not p.is_relative_to(root):
            raise ManifestError(f"{path}: case {row.case_id}: {column} '{value}' lies outside the data root "
                                f"{root}; move the file under it or change input.data_root")
        return str(p)

    for column in ("image", "mask"):
        df[column] = [resolve(v, column, r) for v, r in zip(df[column], df.itertuples())]
        if data_root:
            for value, case in zip(df[column], df["case_id"]):
                _check_folder_inside(path, root, value, column, case)
    check_repeat_design(df, path)
    vary_mod = df["modality"].nunique() > 1
    df["scan_id"] = [make_scan_id(c, m if vary_mod else None, r)
                     for c, m, r in zip(df["case_id"], df["modality"], df["repeat"])]
    if df["scan_id"].duplicated().any():
        raise ManifestError(f"{path}: case ids collide after making them file-safe: "
                            f"{sorted(df.loc[df['scan_id'].duplicated(), 'scan_id'])[:10]}")
    df["primary"] = ~df.duplicated(["case_id", "modality"], keep="first")
    df.attrs["data_root"] = str(root)
    return df


def _check_folder_inside(path: Path, root: Path, value: str, column: str, case: str) -> None:
    """Refuse a folder (DICOM series) whose files resolve outside the data root (symlinks)."""
    if not value or not os.path.isdir(value):
        return
    for entry in sorted(Path(value).iterdir()):
        if not entry.resolve().is_relative_to(root):
            raise ManifestError(f"{path}: case {case}: {column} folder {Path(value).relative_to(root)} holds "
                                f"'{entry.name}', a link to a file outside the data root {root}; copy the "
                                f"file into the folder (or change input.data_root)")


def check_repeat_design(df: pd.DataFrame, path: str | os.PathLike = "manifest") -> None:
    """Refuse repeat labels outside the study's repeat design.

    The design's labels are, per modality, the set of ``repeat`` labels most cases with two or
    more scans share (e.g. ``scan1, scan2``); reproducibility pairs scans by these labels, so a
    case with another label (``scan3`` added to one case) would leave every feature with no
    complete subject. Cases with a single scan may carry any one of the design's labels, or none.

    Raises
    ------
    ManifestError
        Naming the cases, the labels outside the design and the design's labels.
    """
    if "repeat" not in df or not (df["repeat"] != "").any():
        return
    for modality, part in df.groupby("modality", sort=True):
        sets = part.groupby("case_id")["repeat"].agg(lambda r: tuple(sorted(set(r))))
        repeated = sets[sets.map(len) >= 2]
        if repeated.empty:
            continue
        counts = repeated.value_counts()
        design = set(counts.index[0])
        if len(counts) > 1 and counts.iloc[0] == counts.iloc[1]:
            design = set().union(*[set(t) for t in counts.index[counts == counts.iloc[0]]])
        odd = part[~part["repeat"].isin(design | {""})]
        if len(odd):
            cases = sorted(odd["case_id"].unique())[:10]
            labels = sorted(odd["repeat"].unique())[:10]
            raise ManifestError(f"{path}: case(s) {cases} have repeat label(s) {labels} ({modality}) outside the "
                                f"repeat design {sorted(design)}; give those rows one of the design's labels, "
                                f"or drop them")


def binary_outcome(values: pd.Series, positive) -> pd.Series:
    """Map an outcome column to 1 (== ``positive``), 0 (other values) or NaN (missing).

    Comparison is on the string form, so ``positive: "YES"``, ``1`` and ``"1"`` all work.
    """
    pos = str(positive)
    as_str = values.map(lambda v: None if pd.isna(v) else (str(int(v)) if isinstance(v, float) and float(v).is_integer() else str(v)))
    return as_str.map(lambda v: np.nan if v is None else float(v == pos))


def build_manifest_from_layout(root: str, images: dict, masks: dict, cases: str = "*",
                               clinical: str | None = None, clinical_id: str = "case_id",
                               cohort: str = "site") -> pd.DataFrame:
    """Build an image manifest from a folder-per-case layout and a clinical table.

    Parameters
    ----------
    root : str
        Data folder holding one folder per case (the folder name is the case id).
    images, masks : dict
        Modality -> file name inside a case folder, e.g. ``{"MR": "MR_T1_image.nii.gz"}``.
    cases : str
        Glob of case folders under ``root``.
    clinical : str, optional
        Clinical table (CSV/TSV) whose ``clinical_id`` column matches the folder names; its
        columns are joined onto every row of that case.
    cohort : str
        Cohort name given to every case (for single-site data).

    Returns
    -------
    pandas.DataFrame
        Manifest rows ``case_id, modality, image, mask, cohort`` (+ clinical columns), paths
        absolute. Cases missing from the clinical table are kept with empty clinical values
        (ingest then excludes them for a missing outcome).

    Raises
    ------
    ManifestError
        When no case folder matches or the clinical table lacks ``clinical_id``.
    """
    folders = sorted(p for p in glob.glob(os.path.join(root, cases)) if os.path.isdir(p))
    if not folders:
        raise ManifestError(f"{root}: no case folder matches '{cases}'; check input.layout.root and .cases")
    rows = []
    for folder in folders:
        case_id = os.path.basename(folder)
        for modality, image_name in images.items():
            rows.append({"case_id": case_id, "modality": modality,
                         "image": os.path.abspath(os.path.join(folder, image_name)),
                         "mask": os.path.abspath(os.path.join(folder, masks[modality])) if modality in masks else "",
                         "cohort": cohort})
    df = pd.DataFrame(rows)
    if clinical:
        table = read_table(clinical)
        if clinical_id not in table:
            raise ManifestError(f"{clinical}: no column '{clinical_id}' (input.layout.clinical_id)")
        table = table.rename(columns={clinical_id: "case_id"})
        table["case_id"] = table["case_id"].astype(str).str.strip()
        table = table.drop(columns=[c for c in ("modality", "image", "mask", "cohort") if c in table])
        df = df.merge(table, on="case_id", how="left")
    return df
