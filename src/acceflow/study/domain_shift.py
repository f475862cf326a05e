"""Feature-level domain shift of a study (rule ``domain_shift``): which features, which sites,
which performance figures, read from the config and the run's files; the statistics are
:func:`acceflow.models.domain_shift.domain_shift_table`.

Feature sets: ``radiomics`` (the imaging model's candidate features: stable, numeric, without the
clinical covariates, as the site-effect table) and, when the deep model ran with embeddings,
``deep`` (its penultimate-layer embedding, ``deep/features.tsv``) and ``deep_dann`` (the
domain-adapted network's, ``deep/dann/features.tsv``): whether DANN made the embedding
site-invariant is read off its domain-classifier AUC beside the unadapted one. The performance
beside each site's distance is the model built on those features: the primary model for the
radiomics features, the ``deep`` / ``deep_dann`` comparator for the embeddings (AUC; C-index for
survival), internal = the training cohorts' out-of-fold value.
"""

from __future__ import annotations

import math

import pandas as pd

from acceflow.models.domain_shift import DOMAIN_SHIFT_COLUMNS, domain_shift_table
from acceflow.study.settings import section_settings
from acceflow.study.training import model_features

__all__ = ["assess_domain_shift", "performance_from_metrics"]


def performance_from_metrics(metrics: dict[str, dict]) -> tuple[dict, str]:
    """``{"internal": train value, cohort: value}`` and the metric name from per-cohort ``metrics.json`` contents.

    ``metrics`` maps ``train`` and each external cohort to its metrics (``auc``, else ``c_index``).
    """
    name = "auc" if any("auc" in (m or {}) for m in metrics.values()) else "c_index"
    out = {}
    for cohort, m in metrics.items():
        value = (m or {}).get(name)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        out["internal" if cohort == "train" else cohort] = float(value)
    return out, name


def assess_domain_shift(table: pd.DataFrame, stable: list[str] | None, config: dict, metrics: dict[str, dict],
                        deep_table: pd.DataFrame | None = None, deep_metrics: dict[str, dict] | None = None,
                        log=print, dann_table: pd.DataFrame | None = None,
                        dann_metrics: dict[str, dict] | None = None) -> tuple[pd.DataFrame, dict]:
    """Domain shift of the radiomics features (and of the deep embeddings when given).

    Parameters
    ----------
    table : pandas.DataFrame
        ``features/features.tsv``.
    stable : list of str or None
        ``analytical/stable_features.txt``.
    config : dict
        ``seed``, ``cohorts``, ``outcome``, ``clinical``, ``features``, ``model``,
        ``reproducibility`` and ``domain_shift`` sections.
    metrics, deep_metrics : dict cohort -> metrics.json contents
        Of the primary model and of the deep comparator (``train`` and the external cohorts).
    deep_table, dann_table : pandas.DataFrame, optional
        ``deep/features.tsv``, ``deep/dann/features.tsv`` (``case_id``, ``cohort``, ``deep_*``).
    dann_metrics : dict cohort -> metrics.json contents
        Of the ``deep_dann`` comparator.

    Returns
    -------
    (pandas.DataFrame, dict)
        The rows of every feature set (:data:`DOMAIN_SHIFT_COLUMNS`) and the summary
        ``{"assessed": bool, "reason": str | None, "feature_sets": {name: summary}, ...}``.
    """
    s = section_settings("domain_shift", config.get("domain_shift"))
    seed = int(config["seed"])
    train = [str(c) for c in config["cohorts"]["train"]]
    sites = sorted(table["cohort"].astype(str).unique())
    summary = {"assessed": False, "reason": None, "feature_sets": {}, "sites": sites, "training_sites": train}
    if len(sites) < 2:
        summary["reason"] = f"one site ({', '.join(sites)}): no domain shift to assess"
        return pd.DataFrame(columns=DOMAIN_SHIFT_COLUMNS), summary
    sets = []
    feats, _ = model_features(table, {**config, "model": {**config["model"], "include_clinical": False}}, stable)
    feats = [f for f in feats if pd.api.types.is_numeric_dtype(table[f])]
    if feats:
        perf, name = performance_from_metrics(metrics)
        sets.append(("radiomics", table, feats, perf, name))
    for set_name, emb, emb_metrics in (("deep", deep_table, deep_metrics), ("deep_dann", dann_table, dann_metrics)):
        if emb is not None and len(emb):
            cols = [c for c in emb if c.startswith("deep_")]
            perf, name = performance_from_metrics(emb_metrics or {})
            sets.append((set_name, emb, cols, perf, name))
    frames = []
    for name, data, cols, perf, metric in sets:
        try:
            rows, summ = domain_shift_table(data, cols, name, "cohort", train, perf, metric, s["permutations"],
                                            s["cv_folds"], seed)
        except ValueError as exc:  # e.g. a site with one case: the other feature set still counts
            log(f"domain shift of the {name} features not assessed: {exc}")
            summary["feature_sets"][name] = {"feature_set": name, "assessed": False, "reason": str(exc)}
            continue
        log(f"{name}: {summ['n_features']} features, domain classifier AUC {summ['domain_auc_before']:.3f} before "
            f"ComBat, {summ['domain_auc_after']:.3f} after")
        frames.append(rows)
        summary["feature_sets"][name] = {**summ, "assessed": True}
    summary["assessed"] = bool(frames)
    if not frames:
        summary["reason"] = "no feature set could be assessed (see the log)"
    table_out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=DOMAIN_SHIFT_COLUMNS)
    return table_out, summary
