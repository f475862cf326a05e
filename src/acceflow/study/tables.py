"""Feature tables: the ready-table entry and the assembly of per-scan radiomics features.

``features/features.tsv`` (the results contract) has one row per case: ``case_id``, ``cohort``,
the outcome columns, the clinical covariates, then one column per feature.
``features/repeats.tsv`` is the long repeat table (``case_id``, ``repeat``, features) for the
reproducibility stage.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from acceflow.io.manifest import ManifestError, read_table
from acceflow.io.qc import QC_COLUMNS, CaseError
from acceflow.io.schemas import load_schema, validate_rows
from acceflow.study.settings import outcome_columns
from acceflow.study.task import task_for


def _outcome_known(df: pd.DataFrame, outcome: dict) -> pd.Series:
    return task_for(outcome).outcome_known(df, outcome)


class FeatureTableError(ValueError):
    """Extracted features that cannot form a feature table (non-finite values, mismatched columns)."""


def check_finite(rows: pd.DataFrame, feature_cols: list[str]) -> None:
    """Refuse per-scan feature rows holding NaN or infinite values, naming columns and scans.

    Parameters
    ----------
    rows : pandas.DataFrame
        One row per extracted scan: ``scan_id`` and the feature columns.
    feature_cols : list of str
        The feature columns to check.

    Raises
    ------
    FeatureTableError
        When any value is NaN or infinite; the message gives the number of affected columns and
        scans and names the first ones.
    """
    if not feature_cols or rows.empty:
        return
    values = rows[feature_cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        cols = [c for c, b in zip(feature_cols, bad.any(axis=0)) if b]
        scans = rows["scan_id"].to_numpy()[bad.any(axis=1)].tolist()
        raise FeatureTableError(
            f"{len(cols)} feature column(s) hold NaN/inf for {len(scans)} extracted scan(s): columns "
            f"{cols[:10]}{' ...' if len(cols) > 10 else ''}, scans {scans[:10]}{' ...' if len(scans) > 10 else ''}. "
            "Per-scan feature files disagree (e.g. extracted with different parameter files) or were "
            "written before the NaN check; delete features/cases/ for their cases and re-run")


def assemble_diagnostics(scans_path: str, diagnostic_files: list[str]) -> pd.DataFrame:
    """Join pyradiomics' per-scan diagnostics into one provenance table (``features/diagnostics.tsv``).

    Parameters
    ----------
    scans_path : str
        ``ingest/scans.tsv`` (usable scans with ``scan_id, case_id, repeat, modality``).
    diagnostic_files : list of str
        ``features/case_diagnostics/{case}.tsv``: one row per scan, ``scan_id`` and pyradiomics'
        ``diagnostics_*`` entries (empty for a scan whose extraction failed).

    Returns
    -------
    pandas.DataFrame
        One row per scan: ``scan_id, case_id, repeat, modality`` then the ``diagnostics_*``
        columns (versions, settings, image and mask hashes, ROI statistics), as text; empty
        cells for a scan whose extraction failed. Never holds a feature value.
    """
    scans = pd.read_csv(scans_path, sep="\t", dtype=str, keep_default_na=False)
    frames = [pd.read_csv(f, sep="\t", dtype=str, keep_default_na=False) for f in diagnostic_files]
    diag = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["scan_id"])
    keys = [c for c in ("scan_id", "case_id", "repeat", "modality") if c in scans]
    out = scans[keys].merge(diag, on="scan_id", how="left", validate="one_to_one").fillna("")
    return out.sort_values("scan_id", kind="stable").reset_index(drop=True)


AGGREGATES = {"max": np.max, "min": np.min, "mean": np.mean, "count": len}


def derive_columns(df: pd.DataFrame, derived: dict | None) -> pd.DataFrame:
    """Add numeric columns aggregated from list-valued cells (``input.derived``).

    Parameters
    ----------
    df : pandas.DataFrame
    derived : dict
        New column -> ``{"column": source, "aggregate": "max" | "min" | "mean" | "count"}``. A
        source cell such as ``"4,2"`` holds comma-separated values (one per lesion); entries that
        are not numbers (``N/A``) are ignored; a cell with no number gives NaN (``count``: 0).

    Returns
    -------
    pandas.DataFrame
        A copy with the new columns.

    Raises
    ------
    ManifestError
        When a source column is missing or an aggregate is unknown.
    """
    df = df.copy()
    for name, spec in (derived or {}).items():
        source, how = spec.get("column"), spec.get("aggregate", "max")
        if source not in df:
            raise ManifestError(f"input.derived.{name}: source column '{source}' is not in the table")
        if how not in AGGREGATES:
            raise ManifestError(f"input.derived.{name}: aggregate '{how}' unknown; use one of {sorted(AGGREGATES)}")

        def one(cell):
            values = []
            for part in ("" if pd.isna(cell) else str(cell)).split(","):
                try:
                    values.append(float(part))
                except ValueError:
                    continue
            if how == "count":
                return float(len(values))
            return float(AGGREGATES[how](values)) if values else np.nan

        df[name] = df[source].map(one)
    return df


def _refuse_mixed_columns(path, df: pd.DataFrame, columns: list[str]) -> None:
    """Refuse a column of numbers with some text cells: it would be dropped from the features silently."""
    for col in columns:
        if pd.api.types.is_numeric_dtype(df[col]) or pd.api.types.is_bool_dtype(df[col]):
            continue
        present = df[col].notna() & (df[col].astype(str).str.strip() != "")
        numeric = pd.to_numeric(df[col].where(present), errors="coerce").notna()
        text = present & ~numeric
        if numeric.any() and text.any():
            i = int(np.flatnonzero(text.to_numpy())[0])
            raise FeatureTableError(
                f"{path}: column '{col}' holds numbers and {int(text.sum())} text cell(s), e.g. line {i + 2} "
                f"(case {df['case_id'].iloc[i]}): {str(df[col].iloc[i])[:40]!r}; fix the cell(s) (leave a missing "
                f"value empty), or list the features to use under 'features' in the config")


def _refuse_infinite(path, df: pd.DataFrame, columns: list[str]) -> None:
    """Refuse infinite feature values (missing values are imputed; an infinite one is an export error)."""
    for col in columns:
        values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        bad = np.isinf(values)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise FeatureTableError(
                f"{path}: column '{col}' has {int(bad.sum())} infinite value(s), e.g. line {i + 2} "
                f"(case {df['case_id'].iloc[i]}); fix the export, or leave the cell empty for a missing value")


def ingest_feature_table(path: str, config: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate a ready feature table (``input.features``).

    Parameters
    ----------
    path : str
        TSV/CSV with the id column (``input.id_column``), the cohort column, outcome columns and
        feature columns; missing feature values are allowed (imputed inside the model pipeline).
    config : dict
        The validated configuration.

    Returns
    -------
    qc : pandas.DataFrame
        One row per case: ``case_id, repeat, modality, cohort, scan_id, status, reason``.
    features : pandas.DataFrame
        Usable cases: ``case_id, cohort``, outcome columns, clinical columns, feature columns.

    Raises
    ------
    ManifestError
        Missing id, cohort, outcome or feature columns; duplicate case ids; a configured cohort
        absent from the table; cells that do not match the row schema
        (``workflow/schemas/features.schema.yaml``: an empty case id or cohort, text in a feature
        column; each named by line, case, column and fix).
    FeatureTableError
        A column of numbers with text cells (which would otherwise drop out of the features), or
        an infinite feature value; each named by column, line and case.
    """
    df = derive_columns(read_table(path), config["input"].get("derived"))
    id_col, cohort_col = config["input"]["id_column"], config["cohorts"]["column"]
    for col, key in ((id_col, "input.id_column"), (cohort_col, "cohorts.column")):
        if col not in df:
            raise ManifestError(f"{path}: no column '{col}' ({key}); columns are {list(df.columns)[:20]}")
    df = df.copy()
    df["case_id"] = df[id_col].astype(str).str.strip()
    df["cohort"] = df[cohort_col].astype(str)
    dup = df["case_id"].duplicated(keep=False)
    if dup.any():
        raise ManifestError(f"{path}: duplicate case id(s) {sorted(df.loc[dup, 'case_id'].unique())[:10]} "
                            f"in column '{id_col}'; each case needs one row (repeats go to input.repeats)")
    train, external = config["cohorts"]["train"], config["cohorts"]["external"]
    absent = [c for c in [*train, *external] if c not in set(df["cohort"])]
    if absent:
        raise ManifestError(f"{path}: cohort(s) {absent} named in the config are not in column '{cohort_col}' "
                            f"(found {sorted(set(df['cohort']))})")
    outcomes = outcome_columns(config)
    clinical = list(config["clinical"])
    missing = [c for c in outcomes + clinical + list(config["features"] or []) if c not in df]
    if missing:
        raise ManifestError(f"{path}: column(s) {missing} named in the config are not in the table")
    named = {id_col, cohort_col, "case_id", "cohort", *outcomes, *clinical}
    if config["features"]:
        feats = list(config["features"])
    else:
        _refuse_mixed_columns(path, df, [c for c in df.columns if c not in named])
        feats = [c for c in df.columns if c not in named and pd.api.types.is_numeric_dtype(df[c])]
    if not feats:
        raise ManifestError(f"{path}: no numeric feature column; list them under 'features' in the config")
    rows = df[[c for c in feats if c not in ("case_id", "cohort")]].assign(
        case_id=df[id_col].map(lambda v: None if pd.isna(v) or not str(v).strip() else str(v).strip()),
        cohort=df["cohort"])
    problems = validate_rows(rows, load_schema("features"))
    if problems:
        raise ManifestError(f"{path}: rows that do not match the feature-table schema "
                            f"(workflow/schemas/features.schema.yaml):\n  " + "\n  ".join(problems))
    _refuse_infinite(path, df, [c for c in feats if c not in ("case_id", "cohort")])
    reason = np.where(~df["cohort"].isin(train + external), "cohort is in neither cohorts.train nor cohorts.external",
                      np.where(~_outcome_known(df, config["outcome"]), "outcome missing", ""))
    failing = (reason != "") & df["cohort"].isin(train + external).to_numpy()
    if config.get("on_case_error") == "stop" and failing.any():
        i = int(np.flatnonzero(failing)[0])
        raise CaseError(f"{path}: case {df['case_id'].iloc[i]}: {reason[i]}. on_case_error is 'stop'; fix the "
                        f"row, drop it, or set on_case_error: exclude to go on without it")
    qc = pd.DataFrame({"case_id": df["case_id"], "repeat": "", "modality": "", "cohort": df["cohort"],
                       "scan_id": df["case_id"], "status": np.where(reason == "", "ok", "excluded"),
                       "reason": reason})[QC_COLUMNS]
    cols = ["case_id", "cohort", *outcomes, *[c for c in clinical if c not in feats], *feats]
    features = df.loc[qc["status"].values == "ok", cols].reset_index(drop=True)
    return qc, features


def assemble_feature_table(scans_path: str, feature_files: list[str], config: dict):
    """Join per-scan feature rows into the case-level table and the long repeat table.

    Parameters
    ----------
    scans_path : str
        ``ingest/scans.tsv`` (usable scans with their manifest columns).
    feature_files : list of str
        ``features/cases/{case}.tsv`` files, one row per scan: ``scan_id, error`` and one column
        per feature.
    config : dict
        The validated configuration.

    Returns
    -------
    features : pandas.DataFrame
        One row per case with every primary scan extracted; feature columns are prefixed with the
        modality (``MR_original_firstorder_Mean``) when the study has several modalities.
    repeats : pandas.DataFrame
        ``case_id, repeat`` and the feature columns, for cases with two or more repeats.
    qc : pandas.DataFrame
        One row per scan (``QC_COLUMNS``): ok, or excluded with the extraction error.

    Raises
    ------
    FeatureTableError
        When an extracted scan has a NaN or infinite feature value (e.g. per-scan files written
        with different parameter files, so that their feature columns differ). The extraction
        step turns a non-finite pyradiomics value into a failed scan, so a NaN here is never a
        measurement and is not passed on to be imputed silently.
    """
    scans = pd.read_csv(scans_path, sep="\t", dtype={"case_id": str, "repeat": str, "modality": str},
                        keep_default_na=True)
    scans["repeat"] = scans["repeat"].fillna("")
    rows = pd.concat([pd.read_csv(f, sep="\t", dtype={"scan_id": str, "error": str}) for f in feature_files],
                     ignore_index=True) if feature_files else pd.DataFrame(columns=["scan_id", "error"])
    rows["error"] = rows["error"].fillna("")
    merged = scans.merge(rows, on="scan_id", how="left", validate="one_to_one")
    merged["error"] = merged["error"].fillna("no feature file")
    qc = merged[["case_id", "repeat", "modality", "cohort", "scan_id"]].copy()
    qc["status"] = np.where(merged["error"] == "", "ok", "excluded")
    qc["reason"] = merged["error"]
    feature_cols = [c for c in rows.columns if c not in ("scan_id", "error")]
    ok = merged[merged["error"] == ""]
    check_finite(ok, feature_cols)
    modalities = sorted(scans["modality"].unique())

    def wide(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
        parts = []
        for mod in modalities:
            part = frame.loc[frame["modality"] == mod, keys + feature_cols]
            if len(modalities) > 1:
                part = part.rename(columns={c: f"{mod}_{c}" for c in feature_cols})
            parts.append(part.set_index(keys))
        return pd.concat(parts, axis=1, join="inner" if keys == ["case_id"] else "outer").reset_index()

    primary = ok[ok["primary"].astype(str) == "True"]
    bad_cases = set(qc.loc[(qc["status"] != "ok") & (merged["primary"].astype(str) == "True").values, "case_id"])
    primary = primary[~primary["case_id"].isin(bad_cases)]
    feats = wide(primary, ["case_id"])
    meta_cols = ["cohort", *outcome_columns(config), *config["clinical"]]
    missing = [c for c in meta_cols if c not in scans]
    if missing:
        raise ManifestError(f"column(s) {missing} named in the config are not in the manifest")
    meta = scans[scans["primary"].astype(str) == "True"].drop_duplicates("case_id").set_index("case_id")[meta_cols]
    features = meta.join(feats.set_index("case_id"), how="inner").reset_index()
    features = features.sort_values("case_id", kind="stable").reset_index(drop=True)
    counts = ok.groupby("case_id")["repeat"].nunique()
    repeated = ok[ok["case_id"].isin(counts[counts >= 2].index)]
    repeats = wide(repeated, ["case_id", "repeat"]) if len(repeated) else pd.DataFrame(columns=["case_id", "repeat"])
    repeats = repeats.sort_values(["case_id", "repeat"], kind="stable").reset_index(drop=True)
    return features, repeats, qc


def assemble_perturbation_table(scans_path: str, perturbation_files: list[str]) -> pd.DataFrame:
    """Long repeat table (``case_id, repeat``, features) from ``features/perturbations/{scan}.tsv``.

    Each file holds one row per perturbed copy of a scan (``scan_id, perturbation``, features);
    ``repeat`` is the perturbation id (``p01``, ...). With several modalities the features are
    prefixed with the modality, as in ``features/features.tsv``; a case is kept for the
    perturbations that every modality has.
    """
    scans = pd.read_csv(scans_path, sep="\t", dtype={"case_id": str, "modality": str, "scan_id": str})
    frames = [pd.read_csv(f, sep="\t", dtype={"scan_id": str, "perturbation": str}) for f in perturbation_files]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=["case_id", "repeat"])
    rows = pd.concat(frames, ignore_index=True).merge(scans[["scan_id", "case_id", "modality"]], on="scan_id")
    feature_cols = [c for c in rows.columns if c not in ("scan_id", "perturbation", "case_id", "modality")]
    modalities = sorted(rows["modality"].fillna("").unique())
    parts = []
    for mod in modalities:
        part = rows.loc[rows["modality"].fillna("") == mod, ["case_id", "perturbation", *feature_cols]]
        if len(modalities) > 1:
            part = part.rename(columns={c: f"{mod}_{c}" for c in feature_cols})
        parts.append(part.set_index(["case_id", "perturbation"]))
    long = pd.concat(parts, axis=1, join="inner").reset_index().rename(columns={"perturbation": "repeat"})
    return long.sort_values(["case_id", "repeat"], kind="stable").reset_index(drop=True)
