"""What drives a fitted model: permutation importance and bootstrap stability of coefficients.

* :func:`permutation_importance_auc` measures how much the AUC of a *fitted* model drops on one
  cohort when a feature's values are shuffled; it describes the model on that cohort, not the
  biology, and shares credit unpredictably between correlated features.
* :func:`bootstrap_coefficients` refits the whole modelling procedure (inner C search included)
  on stratified bootstrap samples and reports how often each feature is selected by the L1
  penalty and the spread of its coefficient: a feature chosen in a minority of replicates is not
  a stable finding, whatever its full-data coefficient (Austin & Tu 2004; Heinze et al. 2018).
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.inspection import permutation_importance
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from acceflow.metrics._checks import check_alpha
from acceflow.metrics.validation import (
    _REPLICATE_ERRORS,
    _check_n_boot,
    _check_xy,
    _fit,
    _predict,
    _rows,
    stratified_bootstrap_indices,
)
from acceflow.models.pipeline import fitted_coefficients

__all__ = ["permutation_importance_auc", "acceflow_coefficients", "bootstrap_coefficients"]


def permutation_importance_auc(model, X, y, n_repeats=20, seed=0, fixed=None):
    """Drop in ROC AUC when each feature is permuted, for a fitted model on one cohort.

    Wraps :func:`sklearn.inspection.permutation_importance` with ``scoring="roc_auc"``. The
    importance of a feature is ``AUC(original X) - AUC(X with that column shuffled)`` on the
    cohort given (``X``, ``y``), averaged over ``n_repeats`` shuffles: it is a property of this
    model on this cohort. Computed on the training cohort it reflects what the model learnt
    (over-fitting included); computed on an external cohort it shows what still carries the
    discrimination there. Features the model ignores (zero L1 coefficient) get exactly 0;
    negative values mean shuffling happened to help. Correlated features share (and can hide)
    each other's importance.

    Parameters
    ----------
    model : fitted estimator
        A classifier with ``predict_proba`` fitted on columns named as in ``X``
        (e.g. acceflow's frozen ``GridSearchCV``).
    X : pandas.DataFrame, shape (n, p)
        The cohort's features, columns as the model expects.
    y : array-like, shape (n,)
        Outcome coded 0/1; both classes.
    n_repeats : int
        Number of shuffles per feature.
    seed : int
        ``random_state`` of the shuffles (deterministic for a given seed).
    fixed : pandas.DataFrame, shape (n, k), optional
        Columns the model needs but that are not features, such as ComBat's batch column: they
        are put before ``X``'s columns (row for row) when the model predicts and are never
        permuted or reported.

    Returns
    -------
    pandas.DataFrame, shape (p, 4)
        ``feature``, ``importance_mean`` (mean AUC drop), ``importance_sd`` (sample SD over the
        repeats, ddof=1; NaN when ``n_repeats == 1``; sklearn's ``importances_std`` uses ddof=0)
        and ``auc_baseline`` (AUC of the unpermuted data, the same on every row); sorted by
        ``importance_mean``, largest first (ties keep the column order).

    Raises
    ------
    ValueError
        If ``X`` is not a DataFrame, its rows do not match ``y``, ``y`` is not a two-class 0/1
        outcome, ``n_repeats < 1``, or ``model`` has no ``predict_proba``.

    References
    ----------
    Breiman L (2001). Random forests. Mach Learn 45:5-32.
    Fisher A, Rudin C, Dominici F (2019). All models are wrong, but many are useful: learning a
    variable's importance by studying an entire class of prediction models simultaneously.
    J Mach Learn Res 20(177):1-81.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame(rng.normal(size=(100, 2)), columns=["signal", "noise"])
    >>> y = (X["signal"] + rng.normal(size=100) > 0).astype(int)
    >>> imp = permutation_importance_auc(LogisticRegression().fit(X, y), X, y, n_repeats=5)
    >>> imp["feature"].tolist()
    ['signal', 'noise']
    """
    if not isinstance(X, pd.DataFrame):
        raise ValueError(f"X must be a pandas DataFrame with the model's feature columns; got {type(X).__name__}")
    y = _check_xy(X, y, "the permutation importance (AUC)")
    n_repeats = _check_n_boot(n_repeats, "n_repeats")
    if fixed is not None:
        if not isinstance(fixed, pd.DataFrame) or len(fixed) != len(X):
            raise ValueError(f"fixed must be a DataFrame with one row per row of X ({len(X)})")
        model = _WithFixedColumns(model, fixed)
    baseline = float(roc_auc_score(y, _predict(model, X)))
    res = permutation_importance(model, X, y, scoring="roc_auc", n_repeats=n_repeats,
                                 random_state=seed)
    imp = np.asarray(res.importances, dtype=float)
    sd = imp.std(axis=1, ddof=1) if n_repeats > 1 else np.full(imp.shape[0], np.nan)
    out = pd.DataFrame({"feature": [str(c) for c in X.columns], "importance_mean": imp.mean(axis=1),
                        "importance_sd": sd, "auc_baseline": baseline})
    return out.sort_values("importance_mean", ascending=False, kind="mergesort").reset_index(drop=True)


class _WithFixedColumns(ClassifierMixin, BaseEstimator):
    """A fitted classifier seen through the columns it needs besides the permuted features."""

    def __init__(self, model, fixed):
        self.model = model
        self.fixed = fixed

    @property
    def classes_(self):
        return self.model.classes_

    def _full(self, X):
        return pd.concat([self.fixed.reset_index(drop=True), pd.DataFrame(X).reset_index(drop=True)], axis=1)

    def fit(self, X, y):
        """Fit the wrapped model on the fixed columns followed by ``X`` (sklearn's estimator interface)."""
        self.model.fit(self._full(X), y)
        return self

    def predict_proba(self, X):
        return self.model.predict_proba(self._full(X))


def _changes_columns(step):
    """True when a fitted transformer's output columns differ in number from its input."""
    if step is None or isinstance(step, str):
        return False
    try:
        return len(step.get_feature_names_out()) != step.n_features_in_
    except (AttributeError, ValueError, TypeError):
        return False


def acceflow_coefficients(fitted, features):
    """Coefficients per feature of acceflow's fitted L1-logistic model (0 where dropped).

    For a fitted ``GridSearchCV`` this is :func:`acceflow.models.pipeline.fitted_coefficients`
    (constant-column, correlation and selection steps map back to the input features), checked
    against the number of coefficients; a bare fitted ``Pipeline`` is read the same way by chaining
    the ``get_support`` masks of its steps. A feature dropped before the classifier gets 0.

    Parameters
    ----------
    fitted : GridSearchCV or Pipeline, fitted
        The model; its pipeline ends in a linear binary ``classifier`` step.
    features : sequence of str, length p
        Names of the columns the model was fitted on, in order.

    Returns
    -------
    dict of str to float
        ``feature -> coefficient`` (per training-sample SD when the pipeline standardises),
        every feature present, in the order of ``features``.

    Raises
    ------
    ValueError
        When the chosen learner has no coefficients (random forest, SVM, boosting, stacking), a
        step changes the columns in a way that cannot be traced back to ``features``, or the
        kept columns do not match the coefficients; pass ``coef_fn`` to
        :func:`bootstrap_coefficients` for such models.

    References
    ----------
    Tibshirani R (1996). Regression shrinkage and selection via the lasso.
    J R Stat Soc B 58:267-288.

    Examples
    --------
    >>> from acceflow.models.pipeline import build_model
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame(rng.normal(size=(60, 2)), columns=["a", "b"])
    >>> y = (X["a"] + rng.normal(size=60) > 0).astype(int)
    >>> list(acceflow_coefficients(build_model(Cs=[1.0], inner_folds=3).fit(X, y), ["a", "b"]))
    ['a', 'b']
    """
    features = [str(f) for f in features]
    pipe = getattr(fitted, "best_estimator_", fitted)
    if not isinstance(pipe, Pipeline) or "classifier" not in pipe.named_steps:
        raise ValueError(f"the default coef_fn needs a Pipeline with a 'classifier' step (or a GridSearchCV over "
                         f"one); got {type(pipe).__name__}: pass coef_fn")
    clf = pipe.named_steps["classifier"]
    coef = getattr(clf, "coef_", None)
    if coef is None or np.ndim(coef) != 2 or np.shape(coef)[0] != 1:
        raise ValueError(f"the chosen learner {type(clf).__name__} has no coefficients (not a binary linear "
                         f"model): pass coef_fn")
    coef = np.asarray(coef)[0]
    kept = np.asarray(features)
    for name, step in pipe.steps[:-1]:
        if hasattr(step, "get_support"):
            mask = np.asarray(step.get_support(), dtype=bool)
            if mask.size != kept.size:
                raise ValueError(f"pipeline step {name!r} sees {mask.size} columns, {kept.size} expected "
                                 f"from the features given: pass coef_fn")
            kept = kept[mask]
        elif _changes_columns(step):
            raise ValueError(f"pipeline step {name!r} changes the columns without get_support: pass coef_fn")
    if kept.size != coef.size:
        raise ValueError(f"{kept.size} features reach the classifier but it has {coef.size} coefficients: "
                         "pass coef_fn")
    if isinstance(fitted, GridSearchCV):
        coefs = fitted_coefficients(fitted, features)[0]
        if set(coefs) != set(features):
            raise ValueError("acceflow.models.pipeline.fitted_coefficients returned no coefficient per feature "
                             "for this model: pass coef_fn")
        return {f: float(coefs[f]) for f in features}
    out = dict.fromkeys(features, 0.0)
    out.update({f: float(c) for f, c in zip(kept, coef)})
    return out


def bootstrap_coefficients(X, y, make_model, n_boot=200, seed=0, alpha=0.05, coef_fn=None):
    """Bootstrap stability of an L1 model's coefficients and of its feature selection.

    The model is fitted on all data (the reported ``coefficient``), then refitted from scratch,
    ``make_model().fit(...)`` with its inner cross-validation included, on ``n_boot``
    stratified bootstrap samples (cases and controls resampled separately). For each feature the
    percentile interval of the replicate coefficients (zeros included) and the share of replicates
    with a non-zero coefficient are reported. Replicates whose fit raises a ``ValueError`` /
    ``ArithmeticError`` / ``LinAlgError`` are skipped with a :class:`RuntimeWarning`.

    Parameters
    ----------
    X : pandas.DataFrame or array-like, shape (n, p)
        Predictors; array columns are named ``x0, x1, ...``.
    y : array-like, shape (n,)
        Outcome coded 0/1; both classes.
    make_model : callable
        Zero-argument callable returning a fresh, unfitted estimator
        (e.g. ``lambda: build_model(Cs, inner_folds, seed)``).
    n_boot : int
        Number of bootstrap replicates.
    seed : int
        Seed of ``numpy.random.default_rng`` that draws the samples (deterministic).
    alpha : float
        1 - confidence level of the percentile intervals.
    coef_fn : callable, optional
        ``coef_fn(fitted) -> dict[feature, coefficient]``. Default: :func:`acceflow_coefficients`
        with the columns of ``X``. Features missing from a replicate's dict count as 0 (not
        selected).

    Returns
    -------
    pandas.DataFrame, shape (p, 6)
        ``feature``, ``coefficient`` (full-data fit), ``ci_low``, ``ci_high`` (``alpha/2`` and
        ``1 - alpha/2`` percentiles of the replicates, numpy's linear interpolation),
        ``selected_fraction`` (share of used replicates with a non-zero coefficient) and
        ``n_boot`` (replicates used); rows in the order of the full-data ``coef_fn`` result (the
        columns of ``X`` by default), then any feature only seen in replicates.

    Raises
    ------
    ValueError
        On an invalid outcome, mismatched ``X``/``y``, ``n_boot < 1``, ``alpha`` outside (0, 1),
        a non-callable ``make_model``/``coef_fn``, a model the default ``coef_fn`` cannot read,
        or when every replicate fails.

    References
    ----------
    Austin PC, Tu JV (2004). Bootstrap methods for developing predictive models.
    Am Stat 58(2):131-137.
    Heinze G, Wallisch C, Dunkler D (2018). Variable selection - a review and recommendations for
    the practicing statistician. Biom J 60(3):431-449.
    Meinshausen N, Buehlmann P (2010). Stability selection. J R Stat Soc B 72(4):417-473.

    Examples
    --------
    >>> from acceflow.models.pipeline import build_model
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame(rng.normal(size=(80, 2)), columns=["signal", "noise"])
    >>> y = (2 * X["signal"] + rng.normal(size=80) > 0).astype(int)
    >>> t = bootstrap_coefficients(X, y, lambda: build_model(Cs=[0.1, 1], inner_folds=3), n_boot=10)
    >>> t.loc[0, "feature"], float(t.loc[0, "selected_fraction"])
    ('signal', 1.0)
    """
    y = _check_xy(X, y, "bootstrap coefficients")
    n_boot = _check_n_boot(n_boot)
    check_alpha(alpha)
    if not callable(make_model):
        raise ValueError("make_model must be a zero-argument callable returning an unfitted estimator")
    features = ([str(c) for c in X.columns] if isinstance(X, pd.DataFrame)
                else [f"x{i}" for i in range(np.shape(X)[1])])
    if coef_fn is None:
        coef_fn = functools.partial(acceflow_coefficients, features=features)
    elif not callable(coef_fn):
        raise ValueError("coef_fn must be a callable coef_fn(fitted) -> dict[feature, coefficient]")

    full = dict(coef_fn(_fit(make_model, X, y)))
    rng = np.random.default_rng(seed)
    reps = []
    for _ in range(n_boot):
        idx = stratified_bootstrap_indices(y, rng)
        try:
            reps.append(dict(coef_fn(_fit(make_model, _rows(X, idx), y[idx]))))
        except _REPLICATE_ERRORS:
            continue
    if not reps:
        raise ValueError(f"all {n_boot} bootstrap refits failed; check that make_model() can be fitted on "
                         "a resample of the data")
    if len(reps) < n_boot:
        warnings.warn(f"{n_boot - len(reps)} of {n_boot} bootstrap refits failed and were skipped",
                      RuntimeWarning, stacklevel=2)
    names = list(full)
    for r in reps:
        names.extend(k for k in r if k not in full and k not in names)
    coefs = np.array([[float(r.get(k, 0.0)) for k in names] for r in reps])
    low, high = np.percentile(coefs, [100 * alpha / 2, 100 * (1 - alpha / 2)], axis=0)
    return pd.DataFrame({
        "feature": names,
        "coefficient": [float(full.get(k, 0.0)) for k in names],
        "ci_low": low,
        "ci_high": high,
        "selected_fraction": (coefs != 0).mean(axis=0),
        "n_boot": len(reps),
    })
