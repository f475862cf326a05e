"""Explanations of a frozen model that respect correlated features (rule ``explain``).

One call, :func:`explain_model`, turns a frozen model, its card and the feature table into the
tables of ``clinical/explain/`` (:class:`acceflow.study.results.Results`): the correlation
clusters of the model's features, grouped SHAP values, grouped permutation importance per cohort,
and odds or hazard ratios per SD from an unpenalised refit on the features the model selected
(the statistics are in :mod:`acceflow.models.grouped`).

Choices stated once here:

* clusters and the SHAP background come from the training cases (the data the model learnt);
  the SHAP values are computed for the training cases (at most ``max_cases``);
* the explained output is the model's log-odds (binary: logit of the predicted probability) or
  its Cox linear predictor (survival), scales on which a linear model's SHAP values are its
  coefficient times (x − mean);
* missing values are filled with the training median before SHAP (the model's own imputer does
  the same, so predictions do not change);
* grouped permutation importance scores ROC AUC (binary) or Harrell's C (survival) on every
  cohort, training included (apparent: what the model uses, not what generalises).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from acceflow.io.manifest import binary_outcome
from acceflow.metrics.survival import check_survival, harrell_c
from acceflow.models.grouped import (
    correlation_clusters,
    grouped_permutation_importance,
    grouped_shap,
    shap_summary,
    unpenalised_ratios,
)
from acceflow.study.task import task_for
from acceflow.study.training import batch_column

log = logging.getLogger(__name__)

__all__ = ["EXPLAIN_TABLES", "explain_model"]

#: The tables :func:`explain_model` returns, by their :class:`~acceflow.study.results.Results` name.
EXPLAIN_TABLES = ("FEATURE_CLUSTERS", "SHAP_VALUES", "SHAP_GROUPS", "SHAP_SUMMARY", "GROUPED_IMPORTANCE",
                  "REFIT_RATIOS")


def _design(card: dict, rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    X = rows[card["features"]].apply(pd.to_numeric, errors="coerce").reset_index(drop=True)
    batch = batch_column(card)
    fixed = pd.DataFrame({batch: rows["cohort"].astype(str).to_numpy()}) if batch else None
    return X, fixed


def _with_fixed(fixed, X):
    return X if fixed is None else pd.concat([fixed.reset_index(drop=True), X.reset_index(drop=True)], axis=1)


def explain_model(model, card: dict, table: pd.DataFrame, cohorts, settings: dict, seed: int = 0,
                  n_repeats: int = 20, alpha: float = 0.05) -> dict[str, pd.DataFrame]:
    """The grouped explanations of one frozen model.

    Parameters
    ----------
    model : fitted estimator
        The frozen model (``predict_proba`` for binary, ``predict`` = Cox linear predictor for survival).
    card : dict
        Its model card (``features``, ``coefficients``, ``outcome``, ``training_cohorts``,
        ``harmonisation``).
    table : pandas.DataFrame
        ``features/features.tsv``.
    cohorts : sequence of str
        Cohorts for the grouped permutation importance (``train`` means the training cohorts).
    settings : dict
        The config's ``explain`` section (``cluster_threshold``, ``max_evals``, ``max_background``,
        ``max_cases``).
    seed, n_repeats, alpha
        Seed of the background sample and of the permutations; permutations per cluster; 1 −
        confidence level of the ratios' CIs.

    Returns
    -------
    dict of str to pandas.DataFrame
        Keyed by :data:`EXPLAIN_TABLES`:
        ``FEATURE_CLUSTERS`` (``feature, cluster, cluster_size, max_abs_rho, mean_abs_shap``),
        ``SHAP_VALUES`` (long: ``case_id, feature, cluster, value, shap``),
        ``SHAP_GROUPS`` (long: ``case_id, cluster, features, shap, base_value, output``),
        ``SHAP_SUMMARY`` (per cluster, :func:`acceflow.models.grouped.shap_summary`, plus
        ``output_scale``, ``n_cases``, ``cluster_threshold``),
        ``GROUPED_IMPORTANCE`` (per cohort and cluster; ``score`` names AUC or Harrell's C; ``note``),
        ``REFIT_RATIOS`` (:func:`acceflow.models.grouped.unpenalised_ratios`, ``n_selected``,
        ``n_candidate``).

    Raises
    ------
    ValueError
        When the training cohorts have no case in ``table``.
    """
    task = task_for(card)
    survival = task.time_to_event
    o = card["outcome"]
    train = table[table["cohort"].isin(card["training_cohorts"])].reset_index(drop=True)
    if train.empty:
        raise ValueError(f"no case of the training cohorts {card['training_cohorts']} in the feature table")
    X, fixed = _design(card, train)
    features = list(X.columns)
    medians = X.median()
    filled = X.fillna(medians).fillna(0.0)  # a column missing everywhere: the imputer keeps it empty (0)

    def output(frame):  # the explained scale
        if survival:
            return np.asarray(model.predict(frame), float)
        p = np.clip(np.asarray(model.predict_proba(frame), float)[:, 1], 1e-12, 1 - 1e-12)
        return np.log(p / (1 - p))

    def prediction(frame):  # what the permutation score takes
        return np.asarray(model.predict(frame) if survival else model.predict_proba(frame)[:, 1], float)

    scale = "Cox linear predictor (log relative hazard)" if survival else "log-odds of the predicted probability"
    # clusters
    if len(features) >= 2:
        clusters, tree = correlation_clusters(X, settings["cluster_threshold"])
    else:
        clusters = pd.DataFrame({"feature": features, "cluster": [1] * len(features),
                                 "cluster_size": [1] * len(features), "max_abs_rho": [np.nan] * len(features)})
        tree = None
    # grouped SHAP on the training cases
    cases = filled.iloc[: int(settings["max_cases"])]
    case_ids = train["case_id"].astype(str).iloc[: len(cases)].to_numpy()
    if tree is not None:
        values, groups, base = grouped_shap(
            output, cases, filled, tree, clusters, max_evals=int(settings["max_evals"]), max_background=int(settings["max_background"]),
            fixed=None if fixed is None else fixed.iloc[: len(cases)], seed=seed)
        summary = shap_summary(values, groups, clusters).assign(output_scale=scale, n_cases=len(cases),
                                                                cluster_threshold=settings["cluster_threshold"])
        out_val = output(_with_fixed(None if fixed is None else fixed.iloc[: len(cases)], cases))
        long = values.set_axis(case_ids).rename_axis("case_id").reset_index() \
            .melt(id_vars="case_id", var_name="feature", value_name="shap")
        raw = X.iloc[: len(cases)].set_axis(case_ids).rename_axis("case_id").reset_index() \
            .melt(id_vars="case_id", var_name="feature", value_name="value")
        shap_values = long.merge(raw, on=["case_id", "feature"]).merge(clusters[["feature", "cluster"]], on="feature")
        shap_values = shap_values[["case_id", "feature", "cluster", "value", "shap"]]
        names = clusters.groupby("cluster")["feature"].agg(", ".join)
        g = groups.set_axis(case_ids).rename_axis("case_id").reset_index() \
            .melt(id_vars="case_id", var_name="cluster", value_name="shap")
        g["cluster"] = g["cluster"].astype(int)
        g["features"] = g["cluster"].map(names)
        g = g.merge(pd.DataFrame({"case_id": case_ids, "base_value": base, "output": out_val}), on="case_id")
        shap_groups = g[["case_id", "cluster", "features", "shap", "base_value", "output"]]
        clusters = clusters.assign(mean_abs_shap=clusters["feature"].map(values.abs().mean()).to_numpy())
        log.info("grouped SHAP: %d cases x %d features in %d clusters (threshold %s)", len(cases), len(features),
                 clusters["cluster"].nunique(), settings["cluster_threshold"])
    else:
        shap_values = pd.DataFrame(columns=["case_id", "feature", "cluster", "value", "shap"])
        shap_groups = pd.DataFrame(columns=["case_id", "cluster", "features", "shap", "base_value", "output"])
        summary = pd.DataFrame(columns=["cluster", "features", "n_features", "mean_abs_shap_group", "mean_shap_group",
                                        "sum_mean_abs_shap_features", "top_feature", "output_scale", "n_cases",
                                        "cluster_threshold"])
        clusters = clusters.assign(mean_abs_shap=np.nan)
        log.info("grouped SHAP: a single feature, nothing to group")
    # grouped permutation importance per cohort
    parts = []
    score_name = "Harrell's C" if survival else "ROC AUC"
    for cohort in cohorts:
        rows = train if cohort == "train" else table[table["cohort"] == cohort].reset_index(drop=True)
        if rows.empty:
            continue
        Xc, fc = _design(card, rows)
        if survival:
            y = check_survival(rows[o["time"]], rows[o["event"]])
            score, ok = (lambda yy, r: harrell_c(yy[0], yy[1], r)), bool(y[1].sum())
        else:
            y = binary_outcome(rows[o["column"]], o["positive"]).astype(int).to_numpy()
            score, ok = roc_auc_score, len(set(y)) == 2
        if not ok:
            parts.append(pd.DataFrame({"cohort": [cohort], "note": [f"{score_name} undefined on this cohort "
                                                                      "(one outcome class / no event)"]}))
            continue
        imp = grouped_permutation_importance(lambda frame, fc=fc: prediction(_with_fixed(fc, frame)), Xc, y,
                                             clusters, score, n_repeats=n_repeats, seed=seed)
        parts.append(imp.assign(cohort=cohort, score=score_name, n=len(rows), note=""))
    columns = ["cohort", "cluster", "features", "n_features", "importance_mean", "importance_sd", "score_baseline",
               "score", "n", "note"]
    importance = pd.concat(parts, ignore_index=True).reindex(columns=columns) if parts else pd.DataFrame(columns=columns)
    # unpenalised refit on the selected features
    coefs = {k: float(v) for k, v in (card.get("coefficients") or {}).items()}
    selected = [f for f in features if abs(coefs.get(f, 0.0)) > 1e-8]
    if not coefs:
        ratios = pd.DataFrame([{"feature": "", "note": f"the chosen learner ({(card.get('chosen') or {}).get('estimator', card.get('learner'))}) "
                                                      "has no coefficients: no refit"}])
    elif survival:
        t, e = check_survival(train[o["time"]], train[o["event"]])
        ratios = unpenalised_ratios(X[selected], time=t, event=e, alpha=alpha, penalised=coefs)
    else:
        y = binary_outcome(train[o["column"]], o["positive"]).astype(int).to_numpy()
        ratios = unpenalised_ratios(X[selected], y=y, alpha=alpha, penalised=coefs)
    ratios = ratios.assign(n_selected=len(selected), n_candidate=len(features))
    return {"FEATURE_CLUSTERS": clusters, "SHAP_VALUES": shap_values, "SHAP_GROUPS": shap_groups,
            "SHAP_SUMMARY": summary, "GROUPED_IMPORTANCE": importance, "REFIT_RATIOS": ratios}
