"""Description of the study's cohorts from the feature table (``features/cohorts.tsv``,
``features/feature_summary.json``), written by a rule so that the dossier only reads it."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from acceflow.io.manifest import binary_outcome
from acceflow.study.task import task_for
from acceflow.study.training import feature_columns

__all__ = ["COHORT_COLUMNS", "cohort_table", "feature_summary", "n_candidate_features"]

COHORT_COLUMNS = ["cohort", "role", "n", "n_events", "prevalence"]


def cohort_table(features: pd.DataFrame, config: Mapping, card: Mapping | None = None) -> pd.DataFrame:
    """Cases, events and prevalence per cohort of the feature table, with the cohort's role
    (training / external / not used); ``n_events`` and ``prevalence`` are empty without the outcome column."""
    card = card or {}
    ccol = "cohort" if "cohort" in features else (config.get("cohorts") or {}).get("column", "cohort")
    outcome = config.get("outcome") or card.get("outcome") or {}
    if task_for(outcome).time_to_event:
        col, events = outcome.get("event"), lambda s: pd.to_numeric(s, errors="coerce")
    else:
        col, events = outcome.get("column"), lambda s: binary_outcome(s, outcome.get("positive", 1))
    train = list((config.get("cohorts") or {}).get("train") or card.get("training_cohorts") or [])
    external = list((config.get("cohorts") or {}).get("external") or card.get("external_cohorts") or [])
    rows = []
    groups = features.groupby(ccol, sort=False) if ccol in features else [("all", features)]
    for name, df in groups:
        n = len(df)
        if col in df:
            y = events(df[col])  # 1 event, 0 not, NaN unknown
            ev = int((y == 1).sum())
            prev = ev / int(y.notna().sum()) if y.notna().any() else float("nan")
        else:
            ev, prev = None, None
        role = "training" if name in train else "external" if name in external else "not used"
        rows.append({"cohort": str(name), "role": role, "n": n, "n_events": ev, "prevalence": prev})
    return pd.DataFrame(rows, columns=COHORT_COLUMNS)


def n_candidate_features(features: pd.DataFrame, config: Mapping) -> int:
    """Feature columns of the feature table: named in the config, or every other numeric column."""
    outcome = config.get("outcome") or {}
    exclude = [(config.get("cohorts") or {}).get("column"), outcome.get("column"), outcome.get("time"),
               outcome.get("event"), *(config.get("clinical") or [])]
    try:
        return len(feature_columns(features, exclude=[c for c in exclude if c], explicit=config.get("features")))
    except ValueError:
        return 0


def feature_summary(features: pd.DataFrame, config: Mapping) -> dict:
    """What ``features/feature_summary.json`` holds: ``n_candidate_features``, ``n_cases``."""
    return {"n_candidate_features": n_candidate_features(features, config), "n_cases": int(len(features))}
