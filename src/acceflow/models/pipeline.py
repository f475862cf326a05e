"""Leakage-safe modelling pipelines: selection steps, learners and their search grids.

Every step that learns from data (imputation, constant-column removal, scaling, correlation
filter, feature selection, the learner) sits in one scikit-learn :class:`Pipeline`, and the whole
pipeline is wrapped in a :class:`GridSearchCV` whose grid may swap the learner itself. Fitting
the search object therefore chooses the learner and its hyper-parameters by inner stratified
cross-validation, and refitting it inside each outer fold (``acceflow.study.training``) gives
nested cross-validation in which nothing is fitted on the data that judges it
(Varma & Simon 2006, BMC Bioinformatics 7:91; Hastie et al. 2009, ESL section 7.10.2).
"""

from __future__ import annotations

import logging
from time import perf_counter

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier, StackingClassifier
from sklearn.feature_selection import SelectFromModel, SelectKBest, SelectorMixin, VarianceThreshold, f_classif
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils.validation import check_is_fitted, validate_data

from acceflow.models.harmonisation import ComBat

LEARNERS = ("l1_logistic", "elasticnet_logistic", "random_forest", "svm", "gradient_boosting")
SELECTIONS = ("none", "lasso", "univariate", "mrmr")

log = logging.getLogger(__name__)


class CorrelationFilter(SelectorMixin, BaseEstimator):
    """Drop one feature of every highly correlated pair (caret's ``findCorrelation`` rule).

    For each pair with ``|r| > threshold`` (Pearson on the training data), the feature with the
    larger mean absolute correlation to all others is dropped (Kuhn & Johnson 2013, Applied
    Predictive Modeling, section 3.5).

    Parameters
    ----------
    threshold : float in (0, 1]
        Absolute correlation above which one feature of a pair is removed; 1 keeps everything.
    """

    def __init__(self, threshold: float = 0.9):
        self.threshold = threshold

    def fit(self, X, y=None):
        X = validate_data(self, X, dtype=float)
        n = X.shape[1]
        keep = np.ones(n, bool)
        if n > 1 and self.threshold < 1:
            with np.errstate(invalid="ignore", divide="ignore"):
                r = np.abs(np.corrcoef(X, rowvar=False))
            r = np.nan_to_num(r, nan=0.0)
            np.fill_diagonal(r, 0.0)
            mean_r = r.mean(axis=0)
            # visit pairs from the most correlated down, as findCorrelation(exact=FALSE) does
            order = np.argsort(-mean_r, kind="stable")
            for i in order:
                if not keep[i]:
                    continue
                partners = np.flatnonzero(keep & (r[i] > self.threshold))
                for j in partners:
                    if not keep[i]:
                        break
                    drop = i if mean_r[i] >= mean_r[j] else j
                    keep[drop] = False
        self.support_ = keep
        return self

    def _get_support_mask(self):
        check_is_fitted(self, "support_")
        return self.support_


class MRMRSelector(SelectorMixin, BaseEstimator):
    """Minimum-redundancy maximum-relevance selection of ``k`` features (FCQ variant).

    Relevance is the ANOVA F statistic of each feature against the outcome; redundancy is the
    mean absolute Pearson correlation with the features already chosen; at each step the
    feature maximising relevance / redundancy is added (Ding & Peng 2005, J Bioinform Comput
    Biol 3:185, "FCQ"; Peng, Long & Ding 2005, IEEE TPAMI 27:1226).

    Parameters
    ----------
    k : int
        Number of features to keep (all if fewer exist).
    """

    def __init__(self, k: int = 10):
        self.k = k

    def fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=float)
        f, _ = f_classif(X, y)
        f = np.nan_to_num(f, nan=0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.nan_to_num(np.abs(np.corrcoef(X, rowvar=False)), nan=0.0).reshape(X.shape[1], X.shape[1])
        k = min(self.k, X.shape[1])
        chosen = [int(np.argmax(f))]
        redundancy = r[chosen[0]].copy()
        while len(chosen) < k:
            score = f / np.maximum(redundancy / len(chosen), 1e-12)
            score[chosen] = -np.inf
            nxt = int(np.argmax(score))
            chosen.append(nxt)
            redundancy += r[nxt]
        self.support_ = np.zeros(X.shape[1], bool)
        self.support_[chosen] = True
        self.ranking_ = chosen
        return self

    def _get_support_mask(self):
        check_is_fitted(self, "support_")
        return self.support_


def _selection_step(selection: str, n_select: int, seed: int):
    if selection == "none":
        return "passthrough"
    if selection == "lasso":
        # L1 logistic with a fixed moderate penalty; the learner after it is tuned by the search
        return SelectFromModel(LogisticRegression(l1_ratio=1.0, solver="liblinear", C=0.1, random_state=seed,
                                                  intercept_scaling=100.0))
    if selection == "univariate":
        return SelectKBest(f_classif, k=n_select)
    if selection == "mrmr":
        return MRMRSelector(k=n_select)
    raise ValueError(f"model.selection '{selection}' unknown; use one of {SELECTIONS}")


def learner_grid(learner: str, Cs, seed: int) -> dict:
    """Search-grid entry for one learner: the estimator and its hyper-parameter values.

    Parameters
    ----------
    learner : str
        One of :data:`LEARNERS`.
    Cs : sequence of float
        Inverse regularisation strengths (logistic models, SVM).
    seed : int
        ``random_state`` of the stochastic learners.

    Returns
    -------
    dict
        ``{"classifier": [estimator], "classifier__<param>": [values], ...}`` for GridSearchCV.
    """
    Cs = list(Cs)
    if learner == "l1_logistic":
        # liblinear penalises the intercept; a large intercept_scaling makes that penalty negligible
        return {"classifier": [LogisticRegression(l1_ratio=1.0, solver="liblinear", intercept_scaling=100.0,
                                                  max_iter=1000, random_state=seed)],
                "classifier__C": Cs}
    if learner == "elasticnet_logistic":
        return {"classifier": [LogisticRegression(solver="saga", max_iter=5000, random_state=seed)],
                "classifier__C": Cs, "classifier__l1_ratio": [0.2, 0.5, 0.8]}
    if learner == "random_forest":
        return {"classifier": [RandomForestClassifier(n_estimators=300, random_state=seed, n_jobs=1)],
                "classifier__min_samples_leaf": [1, 5], "classifier__max_features": ["sqrt", 0.3]}
    if learner == "svm":
        # Platt scaling by an inner 3-fold CV gives calibrated probabilities (Platt 1999)
        return {"classifier": [CalibratedClassifierCV(SVC(kernel="rbf", random_state=seed), method="sigmoid",
                                                      cv=3)],
                "classifier__estimator__C": [c for c in Cs if c >= 0.1] or Cs}
    if learner == "gradient_boosting":
        return {"classifier": [GradientBoostingClassifier(n_estimators=150, learning_rate=0.05, subsample=0.8,
                                                          random_state=seed)],
                "classifier__max_depth": [2, 3]}
    raise ValueError(f"model.learner '{learner}' unknown; use one of {LEARNERS}")


def build_search(learners=("l1_logistic",), Cs=(0.01, 0.0316, 0.1, 0.316, 1.0, 3.16, 10.0), inner_folds: int = 5,
                 seed: int = 42, scoring: str = "roc_auc", selection: str = "none", n_select: int = 10,
                 correlation_threshold: float | None = None, columns=None, harmonisation: str = "none",
                 batch_column: str = "cohort", unseen: str = "error") -> GridSearchCV:
    """The model as a search over learners and hyper-parameters (unfitted).

    Parameters
    ----------
    learners : sequence of str
        Candidate learners (:data:`LEARNERS`); with several, the inner CV also chooses the learner.
    Cs : sequence of float
        Inverse regularisation strengths for the logistic learners and the SVM.
    inner_folds : int
        Folds of the inner stratified cross-validation.
    seed : int
        Seed of the inner folds and the stochastic learners.
    scoring : str
        scikit-learn scorer maximised by the search (``roc_auc``, ``neg_brier_score``, ...).
    selection : {"none", "lasso", "univariate", "mrmr"}
        Feature-selection step after scaling.
    n_select : int
        Features kept by ``univariate`` and ``mrmr``.
    correlation_threshold : float, optional
        Correlation filter threshold (None: no filter).
    columns : list of int or str, optional
        Restrict the model to these input columns (used by late fusion); None uses all.
    harmonisation : {"none", "combat"}
        ``"combat"`` puts :class:`acceflow.models.harmonisation.ComBat` first: X (a DataFrame)
        must then hold ``batch_column`` (the site), and ComBat is refitted wherever the pipeline
        is (Johnson, Li & Rabinovic 2007, Biostatistics 8:118).
    batch_column, unseen : str
        ComBat's site column and its policy for sites it never saw (``"error"`` or ``"self"``).

    Returns
    -------
    sklearn.model_selection.GridSearchCV
        Pipeline steps: (``harmonise``), ``select_columns``, ``impute``, ``drop_constant``,
        ``scale``, ``decorrelate``, ``select``, ``classifier``.
    """
    if harmonisation not in ("none", "combat"):
        raise ValueError(f"harmonisation must be 'none' or 'combat'; got {harmonisation!r}")
    harmonise = []
    if harmonisation == "combat":
        harmonise = [("harmonise", ComBat(batch=batch_column, unseen=unseen))]
    steps = harmonise + [
        ("select_columns", ColumnTransformer([("keep", "passthrough", list(columns))], remainder="drop")
         if columns is not None else "passthrough"),
        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
        ("drop_constant", VarianceThreshold(0.0)),
        ("scale", StandardScaler()),
        ("decorrelate", CorrelationFilter(correlation_threshold) if correlation_threshold else "passthrough"),
        ("select", _selection_step(selection, n_select, seed)),
        ("classifier", LogisticRegression()),
    ]
    grid = [learner_grid(name, Cs, seed) for name in learners]
    return GridSearchCV(Pipeline(steps), grid, scoring=scoring, refit=True, error_score="raise",
                        cv=StratifiedKFold(inner_folds, shuffle=True, random_state=seed))


def build_late_fusion(imaging_columns, clinical_columns, seed: int = 42, inner_folds: int = 5, **search) -> StackingClassifier:
    """Late fusion: an imaging model and a clinical model stacked by a logistic regression.

    Each branch is a :func:`build_search` restricted to its columns; the stacker is fitted on the
    branches' out-of-fold probabilities (internal ``inner_folds``-fold CV), so it never sees
    predictions made on the cases it learns from (Wolpert 1992, Neural Networks 5:241).

    Parameters
    ----------
    imaging_columns, clinical_columns : list of str
        Column names of the input DataFrame for each branch.
    seed, inner_folds
        As in :func:`build_search`.
    **search
        Further :func:`build_search` arguments for both branches.

    Returns
    -------
    sklearn.ensemble.StackingClassifier
    """
    branches = [("imaging", build_search(columns=list(imaging_columns), seed=seed, inner_folds=inner_folds, **search)),
                ("clinical", build_search(columns=list(clinical_columns), seed=seed, inner_folds=inner_folds, **search))]
    return StackingClassifier(branches, final_estimator=LogisticRegression(), stack_method="predict_proba",
                              cv=StratifiedKFold(inner_folds, shuffle=True, random_state=seed + 1))


def chosen_learner(model) -> dict:
    """The learner and hyper-parameters a fitted search chose (``{}`` for other estimators)."""
    if isinstance(model, GridSearchCV):
        params = {k: v for k, v in model.best_params_.items() if k != "classifier"}
        est = model.best_params_.get("classifier", model.best_estimator_.named_steps["classifier"])
        name = type(est.estimator if isinstance(est, CalibratedClassifierCV) else est).__name__
        return {"estimator": name, **{k.replace("classifier__", ""): v for k, v in params.items()}}
    if isinstance(model, StackingClassifier):
        return {"estimator": "StackingClassifier",
                **{f"{n}.{k}": v for n, m in model.named_estimators_.items() for k, v in chosen_learner(m).items()}}
    return {}


def clone_unfitted(model):
    """A fresh unfitted copy (for refitting inside folds)."""
    return clone(model)


def build_model(Cs=(0.01, 0.0316, 0.1, 0.316, 1.0, 3.16, 10.0), inner_folds: int = 5, seed: int = 42,
                scoring: str = "roc_auc", learners=("l1_logistic",), selection: str = "none", n_select: int = 10,
                correlation_threshold: float | None = None, harmonisation: str = "none",
                batch_column: str = "cohort", unseen: str = "error") -> GridSearchCV:
    """The default model: L1 logistic regression with C chosen by inner stratified cross-validation.

    Parameters
    ----------
    Cs : sequence of float
        Inverse regularisation strengths searched.
    inner_folds : int
        Folds of the inner cross-validation.
    seed : int
        Seed of the inner fold assignment and of stochastic learners.
    scoring : str
        scikit-learn scorer the search maximises.
    learners, selection, n_select, correlation_threshold, harmonisation, batch_column, unseen
        See :func:`acceflow.models.pipeline.build_search`.

    Returns
    -------
    sklearn.model_selection.GridSearchCV
        Unfitted; ``fit(X, y)`` refits the best pipeline on all of X.
    """
    return build_search(learners=learners, Cs=Cs, inner_folds=inner_folds, seed=seed, scoring=scoring,
                        selection=selection, n_select=n_select, correlation_threshold=correlation_threshold,
                        harmonisation=harmonisation, batch_column=batch_column, unseen=unseen)


def fitted_coefficients(model, features: list[str]) -> tuple[dict, float]:
    """Coefficients per standardised input feature and the intercept of a fitted linear model.

    Features removed by the constant-column, correlation or selection steps get 0. Returns
    ``({}, nan)`` when the chosen learner has no coefficients (random forest, SVM, boosting,
    stacking).
    """
    if not isinstance(model, GridSearchCV):
        return {}, float("nan")
    pipe = model.best_estimator_
    clf = pipe.named_steps["classifier"]
    if not hasattr(clf, "coef_"):
        return {}, float("nan")
    names = np.asarray(features)
    for step in ("drop_constant", "decorrelate", "select"):
        est = pipe.named_steps[step]
        if est != "passthrough":
            names = names[est.get_support()]
    coefs = dict.fromkeys(features, 0.0)
    coefs.update({f: float(c) for f, c in zip(names, clf.coef_[0])})
    return coefs, float(clf.intercept_[0])


def internal_validation(X: pd.DataFrame, y: np.ndarray, make_model, folds: int = 5, repeats: int = 5,
                        seed: int = 42) -> tuple[np.ndarray, pd.DataFrame]:
    """Repeated stratified cross-validation of the whole modelling procedure.

    Parameters
    ----------
    X : pandas.DataFrame of shape (n_cases, n_features)
    y : array of shape (n_cases,), 0/1
    make_model : callable
        Returns a fresh unfitted estimator (e.g. ``lambda: build_model(...)``).
    folds, repeats : int
        Outer folds and repeats.
    seed : int
        Repeat ``r`` uses ``StratifiedKFold(shuffle=True, random_state=seed + r)``.

    Returns
    -------
    oof : array of shape (n_cases,)
        Out-of-fold predicted probability per case, averaged over the repeats.
    folds_table : pandas.DataFrame
        ``repeat, fold, n, n_events, auc`` per outer fold.
    """
    y = np.asarray(y)
    per_repeat = np.zeros((repeats, len(y)))
    rows = []
    start, total = perf_counter(), folds * repeats
    log.info("internal validation: %d repeats x %d outer folds (%d fits of the whole procedure) on %d cases, "
             "%d features", repeats, folds, total, len(y), X.shape[1])
    for r in range(repeats):
        for k, (tr, te) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=seed + r).split(X, y)):
            model = make_model().fit(X.iloc[tr], y[tr])
            per_repeat[r, te] = model.predict_proba(X.iloc[te])[:, 1]
            auc = roc_auc_score(y[te], per_repeat[r, te]) if len(set(y[te])) == 2 else np.nan
            rows.append({"repeat": r + 1, "fold": k + 1, "n": len(te), "n_events": int(y[te].sum()), "auc": auc})
            log.info("repeat %d/%d, fold %d/%d (fit %d of %d): %d test cases, AUC %.3f, %.1f s elapsed",
                     r + 1, repeats, k + 1, folds, len(rows), total, len(te), auc, perf_counter() - start)
    return per_repeat.mean(axis=0), pd.DataFrame(rows)
