"""Feature-level domain shift between sites: a domain classifier before / after ComBat, the MMD
between each site and the training pool, and the per-site performance drop against that distance.

* **Domain classifier** (the "site classifier" diagnostic of harmonisation studies, e.g. Orlhac
  et al. 2022 J Nucl Med 63:172; the domain discriminator of Ben-David et al. 2010 and Ganin et
  al. 2016 as a measure): how well the site is predicted from the features, as the
  cross-validated AUC (stratified by site, seeded) of an L2-penalised multinomial logistic
  regression on standardised features (scaler fitted inside each fold); the one-vs-rest macro
  AUC for more than two sites (Hand & Till's one-vs-rest averaging as scikit-learn's
  ``roc_auc_score(multi_class="ovr", average="macro")``). 0.5: the site cannot be told from the
  features; 1: perfectly. Computed on the features as extracted and after ComBat fitted on the
  training sites (sites absent from training mapped on their own location and scale, as the
  site-effect table does): a diagnostic of the features, not a model — ComBat here sees every
  case's features (never an outcome).
* **MMD** (:mod:`acceflow.metrics.domain_shift`): between each site and the training pool (all
  training sites; for a training site when there are several, the other training sites), on
  features standardised by the training pool's mean and SD (so that no feature dominates the
  Euclidean distance by its units), RBF kernel with the median heuristic, permutation p value.
* **Performance drop**: per external site, its AUC (C-index for survival) minus the internal
  out-of-fold AUC of the training cohorts, beside the site's MMD; across three or more external
  sites the Spearman correlation of the drop with the MMD.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from acceflow.metrics.domain_shift import mmd_test
from acceflow.models.harmonisation import ComBat

__all__ = ["domain_classifier_auc", "domain_shift_table", "DOMAIN_SHIFT_COLUMNS"]

DOMAIN_SHIFT_COLUMNS = ["feature_set", "site", "role", "n", "reference", "n_reference", "domain_auc_ovr_before",
                        "domain_auc_ovr_after", "mmd2_before", "mmd_p_before", "mmd2_after", "mmd_p_after",
                        "bandwidth_before", "performance_metric", "performance_internal", "performance_site",
                        "performance_drop"]


def domain_classifier_auc(X, sites, cv_folds: int = 5, seed: int = 0) -> dict:
    """Cross-validated AUC of predicting the site from the features.

    Parameters
    ----------
    X : array (n_cases, n_features)
        Features without missing values.
    sites : array (n_cases,)
        Site label of each case (at least 2 sites, each with at least 2 cases).
    cv_folds : int
        Folds (stratified by site, shuffled with ``seed``); lowered to the smallest site's size.
    seed : int

    Returns
    -------
    dict
        ``auc`` (binary AUC for two sites, one-vs-rest macro AUC for more), ``per_site``
        ({site: one-vs-rest AUC}), ``n_sites``, ``cv_folds`` (the folds used), ``method``.

    Raises
    ------
    ValueError
        Fewer than 2 sites, or a site with fewer than 2 cases (named).
    """
    X = np.asarray(X, dtype=float)
    sites = np.asarray(sites).astype(str)
    labels, counts = np.unique(sites, return_counts=True)
    if len(labels) < 2:
        raise ValueError(f"the domain classifier needs at least 2 sites; got {list(labels)}")
    if counts.min() < 2:
        raise ValueError(f"site {str(labels[counts.argmin()])!r} has {counts.min()} case; the domain classifier needs "
                         "at least 2 per site (leave the site out or add cases)")
    k = int(min(cv_folds, counts.min()))
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
    proba = cross_val_predict(clf, X, sites, cv=StratifiedKFold(k, shuffle=True, random_state=seed),
                              method="predict_proba")
    per_site = {str(s): float(roc_auc_score(sites == s, proba[:, i])) for i, s in enumerate(labels)}
    auc = per_site[str(labels[1])] if len(labels) == 2 else float(
        roc_auc_score(sites, proba, multi_class="ovr", average="macro", labels=labels))
    return {"auc": float(auc), "per_site": per_site, "n_sites": int(len(labels)), "cv_folds": k,
            "method": "L2 logistic regression (C = 1) on standardised features; stratified "
                      f"{k}-fold cross-validated probabilities; " +
                      ("AUC" if len(labels) == 2 else "one-vs-rest macro AUC")}


def _usable(table: pd.DataFrame, features, site_column: str):
    """Numeric features with no missing value and some spread; the others with the reason."""
    kept, dropped = [], {}
    for f in features:
        v = pd.to_numeric(table[f], errors="coerce")
        if v.isna().any():
            dropped[f] = f"{int(v.isna().sum())} missing value(s)"
        elif v.nunique() < 2:
            dropped[f] = "constant"
        else:
            kept.append(f)
    return kept, dropped


def domain_shift_table(table: pd.DataFrame, features, feature_set: str, site_column: str = "cohort",
                       train_sites=None, performance: dict | None = None, performance_metric: str = "auc",
                       n_permutations: int = 1000, cv_folds: int = 5, seed: int = 0):
    """Domain classifier AUC before / after ComBat, MMD per site and the performance drop.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per case: ``site_column`` and the features.
    features : list of str
        The feature columns (a feature with a missing value or no spread is left out and named in
        the summary's ``dropped_features``).
    feature_set : str
        Name written in the ``feature_set`` column (``radiomics``, ``deep``).
    site_column : str
    train_sites : list of str
        The training sites (the reference pool and ComBat's fitting sites).
    performance : dict, optional
        ``{"internal": out-of-fold value of the training cohorts, site: external value, ...}``.
    performance_metric : str
        Its name (``auc``, ``c_index``).
    n_permutations, cv_folds, seed : int
        Permutations of each MMD test; folds of the domain classifier; seed of both.

    Returns
    -------
    (pandas.DataFrame, dict)
        One row per site with :data:`DOMAIN_SHIFT_COLUMNS`, and the summary: ``feature_set``,
        ``n_features``, ``n_cases``, ``sites``, ``training_sites``, ``domain_auc_before``,
        ``domain_auc_after``, ``domain_classifier``, ``dropped_features``, ``mmd`` (kernel, bandwidth
        rule, standardisation, permutations), ``drop_vs_mmd`` (Spearman rho and p across external
        sites with a performance value, when there are at least 3; otherwise ``null`` with the reason).

    Raises
    ------
    ValueError
        Fewer than 2 sites or no usable feature.
    """
    performance = dict(performance or {})
    data = table.copy()
    data[site_column] = data[site_column].astype(str)
    sites_all = sorted(data[site_column].unique())
    train_sites = [str(s) for s in (train_sites or sites_all) if str(s) in sites_all]
    if len(sites_all) < 2:
        raise ValueError(f"domain shift needs at least 2 sites; the table has {sites_all}")
    kept, dropped = _usable(data, list(features), site_column)
    if not kept:
        raise ValueError(f"domain shift ({feature_set}): no usable feature (all missing or constant)")
    values = data[kept].apply(pd.to_numeric, errors="coerce")
    sites = data[site_column].to_numpy()
    combat = ComBat(batch=site_column, unseen="self")
    combat.fit(pd.concat([data[[site_column]], values], axis=1)[np.isin(sites, train_sites)])
    after = combat.transform(pd.concat([data[[site_column]], values], axis=1))
    before_clf = domain_classifier_auc(values.to_numpy(), sites, cv_folds, seed)
    after_clf = domain_classifier_auc(after.to_numpy(), sites, cv_folds, seed)

    def standardised(frame):
        ref = frame[np.isin(sites, train_sites)]
        sd = ref.std(ddof=1).replace(0, 1.0).fillna(1.0)
        return ((frame - ref.mean()) / sd).to_numpy()

    z_before, z_after = standardised(values), standardised(after)
    internal = performance.get("internal")
    rows = []
    for i, s in enumerate(sites_all):
        role = "training" if s in train_sites else "external"
        here = sites == s
        if role == "training":
            ref = np.isin(sites, [t for t in train_sites if t != s])
            reference = "other training sites"
        else:
            ref = np.isin(sites, train_sites)
            reference = "training pool"
        row = {"feature_set": feature_set, "site": s, "role": role, "n": int(here.sum()), "reference": reference,
               "n_reference": int(ref.sum()), "domain_auc_ovr_before": before_clf["per_site"][s],
               "domain_auc_ovr_after": after_clf["per_site"][s], "performance_metric": performance_metric}
        if here.sum() >= 2 and ref.sum() >= 2:
            tb = mmd_test(z_before[here], z_before[ref], n_permutations, seed + i)
            ta = mmd_test(z_after[here], z_after[ref], n_permutations, seed + i)
            row.update(mmd2_before=tb["mmd2"], mmd_p_before=tb["p_value"], mmd2_after=ta["mmd2"],
                       mmd_p_after=ta["p_value"], bandwidth_before=tb["bandwidth"])
        else:
            row["reference"] = ("no other training site" if role == "training" else reference)
        if role == "external" and internal is not None and performance.get(s) is not None:
            row.update(performance_internal=float(internal), performance_site=float(performance[s]),
                       performance_drop=float(performance[s]) - float(internal))
        rows.append(row)
    out = pd.DataFrame(rows).reindex(columns=DOMAIN_SHIFT_COLUMNS)
    ext = out[(out["role"] == "external") & out["performance_drop"].notna() & out["mmd2_before"].notna()]
    if len(ext) >= 3:
        rho, p = stats.spearmanr(ext["mmd2_before"], ext["performance_drop"])
        trend = {"spearman_rho": float(rho), "p_value": float(p), "n_sites": int(len(ext)), "note": None}
    else:
        trend = {"spearman_rho": None, "p_value": None, "n_sites": int(len(ext)),
                 "note": f"{len(ext)} external site(s) with a performance value: a correlation across sites "
                         "needs at least 3; the per-site pairs are in the table"}
    summary = {
        "feature_set": feature_set, "n_features": len(kept), "n_cases": int(len(data)), "sites": sites_all,
        "training_sites": train_sites, "domain_auc_before": before_clf["auc"], "domain_auc_after": after_clf["auc"],
        "domain_classifier": before_clf["method"], "domain_classifier_folds": before_clf["cv_folds"],
        "harmonisation": "ComBat (Johnson et al. 2007) fitted on the training sites; other sites on their own "
                         "location and scale (features only, no outcome)",
        "mmd": {"estimate": "unbiased MMD^2 (Gretton et al. 2012)", "kernel": "Gaussian RBF",
                "bandwidth": "median heuristic on the pooled pair", "permutations": int(n_permutations),
                "standardisation": "z-scores by the training sites' mean and SD"},
        "performance_metric": performance_metric, "performance_internal": internal,
        "drop_vs_mmd": trend, "dropped_features": dropped,
    }
    return out, summary
