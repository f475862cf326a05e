"""Explanations that respect correlated features: correlation clusters, grouped SHAP, grouped
permutation importance, and ratios per SD from an unpenalised refit.

Radiomics features come in families that measure nearly the same thing (|Spearman ρ| of 0.9 and
more is common). An attribution that treats features as independent then splits, moves or
hides credit between such copies arbitrarily: an L1 model keeps one copy by chance, permuting one
copy leaves its twin to carry the signal, and independent-feature SHAP evaluates the model on
combinations of values that never occur. The functions here cluster the features by correlation
first and attribute to the clusters:

* :func:`correlation_clusters`: hierarchical clustering on 1 − |Spearman ρ| (average linkage),
  cut at a distance threshold;
* :func:`grouped_shap`: SHAP values (Owen values) of shap's ``PartitionExplainer`` with that
  hierarchy as its clustering, per case and feature, and their sums per cluster;
* :func:`grouped_permutation_importance`: drop in a score when a cluster's columns are permuted
  together (with the same row permutation, so the within-cluster correlation is kept);
* :func:`unpenalised_ratios`: odds ratios (statsmodels ``Logit``) or hazard ratios (lifelines
  ``CoxPHFitter``, no penalty) per SD with Wald CIs, from a refit on the selected features, with
  separation and non-convergence named instead of absurd numbers.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from scipy.stats import norm

__all__ = [
    "correlation_clusters",
    "grouped_permutation_importance",
    "grouped_shap",
    "shap_summary",
    "unpenalised_ratios",
]


def correlation_clusters(X: pd.DataFrame, threshold: float = 0.3) -> tuple[pd.DataFrame, np.ndarray]:
    """Clusters of correlated features: average-linkage clustering on 1 − |Spearman ρ|.

    Parameters
    ----------
    X : pandas.DataFrame, shape (n, p)
        Numeric features (NaN allowed: ρ is computed on the pairwise complete cases, at least 3).
        A pair without a defined ρ (a constant column, fewer than 3 common cases) gets
        distance 1 (unrelated).
    threshold : float in [0, 1]
        Distance at which the tree is cut (scipy ``fcluster(..., criterion="distance")``): 0.3 joins
        features whose average |ρ| is at least 0.7; 0 keeps every feature apart unless exactly
        rank-identical; 1 puts everything in one cluster.

    Returns
    -------
    clusters : pandas.DataFrame, shape (p, 4)
        ``feature``, ``cluster`` (1, 2, ... numbered in the order of each cluster's first feature
        in ``X``), ``cluster_size``, ``max_abs_rho`` (largest |ρ| with another member; NaN alone).
    tree : numpy.ndarray, shape (p - 1, 4)
        The scipy linkage matrix (the hierarchy shap's Partition masker takes as ``clustering``).

    Raises
    ------
    ValueError
        If ``X`` is not a DataFrame with at least 2 columns, or ``threshold`` is outside [0, 1].

    References
    ----------
    Sokal RR, Michener CD (1958). A statistical method for evaluating systematic relationships
    (UPGMA, average linkage). Univ Kansas Sci Bull 38:1409-1438.
    Dormann CF et al. (2013). Collinearity: a review of methods to deal with it. Ecography 36:27-46
    (|r| > 0.7 as the usual threshold).
    """
    if not isinstance(X, pd.DataFrame) or X.shape[1] < 2:
        raise ValueError("X must be a pandas DataFrame with at least 2 feature columns to cluster")
    if not (isinstance(threshold, (int, float)) and 0 <= threshold <= 1):
        raise ValueError(f"explain.cluster_threshold must be a distance 1 - |rho| in [0, 1]; got {threshold!r}")
    rho = X.apply(pd.to_numeric, errors="coerce").corr(method="spearman", min_periods=3).to_numpy(dtype=float)
    r = np.abs(np.nan_to_num(rho, nan=0.0))
    np.fill_diagonal(r, 1.0)
    dist = np.clip(1.0 - r, 0.0, 1.0)
    dist = (dist + dist.T) / 2
    tree = linkage(squareform(dist, checks=False), method="average")
    raw = fcluster(tree, t=threshold, criterion="distance")
    order = {}
    for label in raw:
        order.setdefault(label, len(order) + 1)
    cluster = np.array([order[label] for label in raw])
    sizes = pd.Series(cluster).map(pd.Series(cluster).value_counts()).to_numpy()
    off = r.copy()
    np.fill_diagonal(off, np.nan)
    max_rho = [float(np.nanmax(np.where(cluster == cluster[i], off[i], np.nan))) if sizes[i] > 1 else np.nan
               for i in range(len(cluster))]
    table = pd.DataFrame({"feature": [str(c) for c in X.columns], "cluster": cluster, "cluster_size": sizes,
                          "max_abs_rho": max_rho})
    return table, tree


def grouped_shap(predict, X: pd.DataFrame, background: pd.DataFrame, tree: np.ndarray, clusters: pd.DataFrame,
                 max_evals: int = 500, max_background: int = 100, fixed: pd.DataFrame | None = None,
                 seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """SHAP values with features grouped by a hierarchy (shap ``PartitionExplainer``, Owen values).

    The explainer masks features by replacing them with background values, coalitions following
    the hierarchy ``tree``: a cluster is switched on or off as one player before credit is split
    inside it, so features in a cluster are never pulled apart against each other's background
    values more than the hierarchy requires, and the sum over a cluster is the credit the cluster
    gets as one player (the quotient game; Owen 1977). That sum is the attribution to read; how
    credit is split between near-copies inside a cluster is not identifiable from data.

    Parameters
    ----------
    predict : callable
        ``predict(DataFrame) -> array (m,)``: the model output explained (e.g. the log-odds of a
        logistic model, the linear predictor of a Cox model), for rows with the columns of ``X``
        (``fixed``'s columns first when given).
    X : pandas.DataFrame, shape (n, p)
        Cases to explain; finite numbers (impute first, with the values the model's imputer uses).
    background : pandas.DataFrame, shape (m, p)
        The reference cases (training cohort); at most ``max_background`` rows are used (shap's
        deterministic sub-sample beyond that).
    tree : numpy.ndarray, shape (p - 1, 4)
        Linkage matrix over the columns of ``X`` (:func:`correlation_clusters`).
    clusters : pandas.DataFrame
        ``feature``, ``cluster`` (:func:`correlation_clusters`), one row per column of ``X``.
    max_evals : int
        Model evaluations per case (shap's budget; about 4p are needed to reach every feature).
    max_background : int
        Background rows used.
    fixed : pandas.DataFrame, shape (n, k), optional
        Columns the model needs that are not explained (ComBat's batch column); each case is
        then explained with its own fixed values put before the features.
    seed : int
        Seed of the background sub-sample.

    Returns
    -------
    values : pandas.DataFrame, shape (n, p)
        SHAP value per case (row, index of ``X``) and feature (columns of ``X``), on the scale of
        ``predict``; each row sums to ``predict(x) - base``.
    groups : pandas.DataFrame, shape (n, k)
        Per case and cluster (columns ``1..k``), the sum of its features' SHAP values.
    base : numpy.ndarray, shape (n,)
        The expected output over the background (shap's ``base_values``).

    Raises
    ------
    ValueError
        If ``X`` and ``background`` differ in columns, hold non-finite values, or ``clusters``
        does not list ``X``'s columns.

    References
    ----------
    Lundberg SM, Lee S-I (2017). A unified approach to interpreting model predictions. NeurIPS 30.
    Owen G (1977). Values of games with a priori unions. In: Essays in Mathematical Economics and
    Game Theory, Springer, 76-88.
    Aas K, Jullum M, Løland A (2021). Explaining individual predictions when features are dependent.
    Artif Intell 298:103502.
    """
    import shap  # heavy optional dependency (numba): imported on first use

    if list(X.columns) != list(background.columns):
        raise ValueError("X and background must have the same columns in the same order")
    if list(clusters["feature"]) != [str(c) for c in X.columns]:
        raise ValueError("clusters must list the columns of X in order (correlation_clusters(X_background))")
    for name, frame in (("X", X), ("background", background)):
        values = frame.to_numpy(dtype=float)
        if not np.isfinite(values).all():
            i, j = (int(k[0]) for k in np.nonzero(~np.isfinite(values)))
            raise ValueError(f"{name} must be finite for SHAP (impute first); row {i} column {frame.columns[j]!r}")
    if len(background) > max_background:
        background = background.sample(max_background, random_state=seed)
    masker = shap.maskers.Partition(background.astype(float), max_samples=max_background,
                                    clustering=np.asarray(tree, dtype=float))

    def explain(frame, model):
        explainer = shap.explainers.Partition(model, masker)
        # all of a case's evaluations in as few model calls as shap allows (the default "auto" batch makes
        # ~50 calls per case, each a full pipeline pass: 3.6x the CPU time on the demo's 51 features)
        return explainer(frame.astype(float), max_evals=max_evals, silent=True, batch_size=max(int(max_evals), 1))

    if fixed is None:
        out = explain(X, lambda Z: np.asarray(predict(pd.DataFrame(Z, columns=X.columns)), float))
        values, base = np.asarray(out.values, float), np.asarray(out.base_values, float).reshape(-1)
    else:
        rows, bases = [], []
        for i in range(len(X)):
            head = fixed.iloc[[i]].reset_index(drop=True)

            def model(Z, head=head):
                Z = pd.DataFrame(Z, columns=X.columns).reset_index(drop=True)
                return np.asarray(predict(pd.concat([pd.concat([head] * len(Z), ignore_index=True), Z], axis=1)),
                                  float)

            out = explain(X.iloc[[i]], model)
            rows.append(np.asarray(out.values, float)[0])
            bases.append(float(np.asarray(out.base_values, float).reshape(-1)[0]))
        values, base = np.vstack(rows), np.asarray(bases)
    values = pd.DataFrame(values, index=X.index, columns=X.columns)
    member = clusters["cluster"].to_numpy()
    groups = pd.DataFrame({int(k): values.loc[:, member == k].sum(axis=1) for k in sorted(set(member))},
                          index=X.index)
    return values, groups, base


def shap_summary(values: pd.DataFrame, groups: pd.DataFrame, clusters: pd.DataFrame) -> pd.DataFrame:
    """Per cluster: its features, mean |group SHAP| over cases, and the sum of its features' mean |SHAP|.

    The two can differ: features of a cluster that push in opposite directions cancel in the group
    value, and the sum of per-feature means counts a shared effect once per copy.

    Returns
    -------
    pandas.DataFrame
        ``cluster``, ``features`` (comma-separated, in column order), ``n_features``,
        ``mean_abs_shap_group``, ``mean_shap_group``, ``sum_mean_abs_shap_features``,
        ``top_feature`` (largest mean |SHAP| in the cluster); sorted by ``mean_abs_shap_group``,
        largest first.
    """
    feature_abs = values.abs().mean(axis=0)
    rows = []
    for k in groups.columns:
        members = clusters.loc[clusters["cluster"] == k, "feature"].tolist()
        rows.append({"cluster": int(k), "features": ", ".join(members), "n_features": len(members),
                     "mean_abs_shap_group": float(groups[k].abs().mean()),
                     "mean_shap_group": float(groups[k].mean()),
                     "sum_mean_abs_shap_features": float(feature_abs[members].sum()),
                     "top_feature": str(feature_abs[members].idxmax())})
    return pd.DataFrame(rows).sort_values("mean_abs_shap_group", ascending=False, kind="mergesort") \
        .reset_index(drop=True)


def grouped_permutation_importance(predict, X: pd.DataFrame, y, clusters: pd.DataFrame, score, n_repeats: int = 20,
                                   seed: int = 0) -> pd.DataFrame:
    """Drop in a score when all columns of a correlation cluster are permuted together.

    Each repeat draws one row permutation per cluster and applies it to every column of the
    cluster, so the cluster's joint distribution (and its correlation with nothing outside) is
    kept while its link to the outcome is broken; a twin left unpermuted can no longer carry the
    signal of a permuted copy, which is what makes single-feature permutation importance
    misleading for correlated features. Importance = score(original) − score(permuted), averaged
    over repeats.

    Parameters
    ----------
    predict : callable
        ``predict(DataFrame) -> array (n,)`` (probability, risk, ...), on frames with ``X``'s columns.
    X : pandas.DataFrame, shape (n, p)
        The cohort's model inputs (columns not listed in ``clusters``, e.g. ComBat's batch column,
        are never permuted).
    y : object
        The outcome as ``score`` takes it.
    clusters : pandas.DataFrame
        ``feature``, ``cluster`` (:func:`correlation_clusters`).
    score : callable
        ``score(y, prediction) -> float``, larger better (ROC AUC, Harrell's C).
    n_repeats : int
        Permutations per cluster (>= 1).
    seed : int
        Seed of ``numpy.random.default_rng`` (deterministic).

    Returns
    -------
    pandas.DataFrame, shape (k, 6)
        ``cluster``, ``features`` (comma-separated), ``n_features``, ``importance_mean``,
        ``importance_sd`` (ddof=1; NaN when ``n_repeats == 1``), ``score_baseline``; sorted by
        ``importance_mean``, largest first.

    Raises
    ------
    ValueError
        If ``n_repeats < 1`` or a clustered feature is not a column of ``X``.

    References
    ----------
    Gregorutti B, Michel B, Saint-Pierre P (2015). Grouped variable importance with random forests
    and application to multiple functional data analysis. Comput Stat Data Anal 90:15-35.
    Fisher A, Rudin C, Dominici F (2019). All models are wrong, but many are useful. J Mach Learn
    Res 20(177):1-81.
    """
    if not isinstance(n_repeats, (int, np.integer)) or n_repeats < 1:
        raise ValueError(f"n_repeats must be an integer >= 1; got {n_repeats!r}")
    missing = [f for f in clusters["feature"] if f not in X.columns]
    if missing:
        raise ValueError(f"clustered feature(s) {missing} are not columns of X")
    rng = np.random.default_rng(seed)
    baseline = float(score(y, predict(X)))
    rows = []
    for k in sorted(clusters["cluster"].unique()):
        members = clusters.loc[clusters["cluster"] == k, "feature"].tolist()
        drops = []
        for _ in range(n_repeats):
            perm = rng.permutation(len(X))
            Z = X.copy()
            Z[members] = X[members].to_numpy()[perm]
            drops.append(baseline - float(score(y, predict(Z))))
        rows.append({"cluster": int(k), "features": ", ".join(members), "n_features": len(members),
                     "importance_mean": float(np.mean(drops)),
                     "importance_sd": float(np.std(drops, ddof=1)) if n_repeats > 1 else np.nan,
                     "score_baseline": baseline})
    return pd.DataFrame(rows).sort_values("importance_mean", ascending=False, kind="mergesort") \
        .reset_index(drop=True)


def _standardise(X: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series, list[str]]:
    """Median-imputed, per-SD (ddof=1) columns; the constant ones are returned apart."""
    X = X.apply(pd.to_numeric, errors="coerce")
    X = X.fillna(X.median())
    sd = X.std(ddof=1)
    constant = [str(c) for c in X.columns if not sd[c] > 0]
    keep = [c for c in X.columns if c not in constant]
    return (X[keep] - X[keep].mean()) / sd[keep], sd[keep], constant


def _empty_ratios(features, measure, note, n, n_events, penalised):
    return pd.DataFrame({"feature": list(features), "measure": measure, "ratio": np.nan, "ci_low": np.nan,
                         "ci_high": np.nan, "p_value": np.nan, "coefficient": np.nan, "se": np.nan,
                         "penalised_coefficient": [penalised.get(f, np.nan) for f in features], "n": n,
                         "n_events": n_events, "converged": False, "note": note})


def unpenalised_ratios(X: pd.DataFrame, y=None, time=None, event=None, alpha: float = 0.05,
                       penalised: dict | None = None, max_abs_coefficient: float = 10.0) -> pd.DataFrame:
    """Odds ratios (logistic) or hazard ratios (Cox) per SD from an unpenalised refit, with Wald CIs.

    A penalised model's coefficients are shrunk on purpose (better predictions, biased effects) and
    carry no standard error. For a table of effect sizes a reviewer can read, the selected
    features are refitted without penalty: each column median-imputed and standardised (per
    training SD, ddof=1), then ``statsmodels.Logit`` (binary ``y``) or lifelines ``CoxPHFitter``
    with ``penalizer=0`` (Efron ties; ``time``/``event``). The ratios are conditional on the other
    features in the refit and ignore that the features were selected on the same data (their CIs
    are too narrow; Heinze et al. 2018). Separation, a fit that does not converge, or a coefficient
    beyond ``max_abs_coefficient`` log-units per SD (a ratio above e^10 per SD, a sign of
    quasi-separation) leave the row's numbers NaN with the reason in ``note``.

    Parameters
    ----------
    X : pandas.DataFrame, shape (n, q)
        The selected features of the training cases (raw units; NaN allowed).
    y : array-like, shape (n,), optional
        Binary outcome 0/1 (logistic refit).
    time, event : array-like, shape (n,), optional
        Survival outcome in days and 0/1 (Cox refit); give either ``y`` or both of these.
    alpha : float
        1 − confidence level.
    penalised : dict, optional
        The model's own (penalised) coefficient per feature, copied to ``penalised_coefficient``.
    max_abs_coefficient : float
        Largest |coefficient| per SD reported as a number.

    Returns
    -------
    pandas.DataFrame, one row per column of ``X``
        ``feature``, ``measure`` ("odds ratio per SD" / "hazard ratio per SD"), ``ratio``,
        ``ci_low``, ``ci_high``, ``p_value`` (Wald), ``coefficient`` (log ratio per SD), ``se``,
        ``penalised_coefficient``, ``n``, ``n_events``, ``converged``, ``note`` (empty when fine).

    Raises
    ------
    ValueError
        If neither or both outcome kinds are given, or rows do not match.

    References
    ----------
    Heinze G, Wallisch C, Dunkler D (2018). Variable selection - a review and recommendations for
    the practicing statistician. Biom J 60(3):431-449.
    Albert A, Anderson JA (1984). On the existence of maximum likelihood estimates in logistic
    regression models. Biometrika 71:1-10.
    Cox DR (1972). Regression models and life-tables. J R Stat Soc B 34:187-220.
    """
    logistic = y is not None
    if logistic == (time is not None or event is not None) or (not logistic and (time is None or event is None)):
        raise ValueError("give either y (binary) or both time and event (survival)")
    penalised = dict(penalised or {})
    features = [str(c) for c in X.columns]
    measure = "odds ratio per SD" if logistic else "hazard ratio per SD"
    n = len(X)
    outcome = np.asarray(y if logistic else event, dtype=float)
    if len(outcome) != n:
        raise ValueError(f"X has {n} rows but the outcome has {len(outcome)}")
    n_events = int(outcome.sum())
    if not features:
        return _empty_ratios([], measure, "", n, n_events, penalised)
    Z, _, constant = _standardise(X)
    z = norm.ppf(1 - alpha / 2)
    note = ""
    if Z.shape[1] + 1 >= min(n_events, n - n_events if logistic else n_events):
        return _empty_ratios(features, measure, f"not estimable: {Z.shape[1]} features for {n_events} events "
                             f"(an unpenalised fit needs far more events than features)", n, n_events, penalised)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if logistic:
                import statsmodels.api as sm
                fit = sm.Logit(outcome, sm.add_constant(Z, has_constant="add")).fit(disp=0, maxiter=200)
                coef, se = fit.params.drop("const"), fit.bse.drop("const")
                converged = bool(fit.mle_retvals.get("converged", True))
            else:
                from acceflow.models.cox import fit_cox
                fit = fit_cox(Z, time, event, penalizer=0.0)
                coef, se = fit.params_, fit.standard_errors_
                converged = True
        messages = [str(w.message) for w in caught]
        if any("separation" in m.lower() for m in messages):
            note = "separation: the outcome is (quasi-)perfectly predicted, maximum-likelihood estimates do not exist"
            converged = False
        elif any("converge" in m.lower() for m in messages):
            converged = False
    except Exception as exc:  # noqa: BLE001 - separation, singular Hessian, ConvergenceError: named, not raised
        reason = "separation" if "separation" in str(exc).lower() else type(exc).__name__
        return _empty_ratios(features, measure, f"not estimable ({reason}): {str(exc).splitlines()[0][:200]}", n,
                             n_events, penalised)
    if not converged and not note:
        note = "the maximum-likelihood fit did not converge"
    out = _empty_ratios(features, measure, note, n, n_events, penalised)
    out["converged"] = converged
    for i, f in enumerate(features):
        if f in constant:
            out.loc[i, "note"] = "constant in the training cases: not estimable"
            continue
        b, s = float(coef[f]), float(se[f])
        out.loc[i, ["coefficient", "se"]] = b, s
        if not converged:
            continue
        if not (np.isfinite(b) and np.isfinite(s)) or abs(b) > max_abs_coefficient:
            out.loc[i, "note"] = (f"not reported: coefficient {b:.3g} per SD (SE {s:.3g}) is beyond "
                                  f"{max_abs_coefficient:g}, a sign of quasi-separation or collinearity")
            continue
        out.loc[i, ["ratio", "ci_low", "ci_high", "p_value"]] = (
            np.exp(b), np.exp(b - z * s), np.exp(b + z * s), float(2 * norm.sf(abs(b / s))))
    return out
