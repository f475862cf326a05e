"""Model training and internal validation, leakage-safe by construction.

A model is one scikit-learn :class:`~sklearn.pipeline.Pipeline` (imputation, removal of constant
columns, standardisation, optional correlation filter and feature selection, a learner) wrapped
in a :class:`~sklearn.model_selection.GridSearchCV` that chooses the learner and its
hyper-parameters by inner stratified cross-validation (``acceflow.models.pipeline``). Every
fitted step is therefore refitted inside each fold; external cohorts are touched only by the
frozen, refitted model. Internal validation is repeated stratified cross-validation of the
*whole* procedure, inner search included (nested CV; Varma & Simon 2006, BMC Bioinformatics 7:91).

Several named models can be trained on the same cases (``MODEL_KINDS``): ``imaging`` (the
biomarker's features), ``clinical`` (the clinical covariates only, the baseline), and the two
fusions ``combined_early`` (features and covariates concatenated) and ``combined_late`` (an
imaging and a clinical model stacked). The config's ``model.primary`` writes the results
contract's paths; the others are comparators.
"""

from __future__ import annotations

import logging
from time import perf_counter

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV

from acceflow.io.manifest import binary_outcome
from acceflow.metrics.validation import decision_threshold
from acceflow.models.pipeline import (
    build_late_fusion,
    build_search,
    chosen_learner,
    fitted_coefficients,
    internal_validation,
)
from acceflow.study.card import ModelCard
from acceflow.study.settings import MODEL_KINDS, model_names, model_settings, outcome_columns  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

NON_FEATURE_COLUMNS = {"case_id", "cohort", "repeat", "modality", "scan_id", "image", "mask", "primary"}


class CohortError(ValueError):
    """A cohort cannot be used for modelling or validation (e.g. a single outcome class)."""


def feature_columns(table: pd.DataFrame, exclude=(), explicit=None) -> list[str]:
    """Feature columns of a table: ``explicit`` if given, else every numeric column not excluded.

    Parameters
    ----------
    table : pandas.DataFrame
    exclude : iterable of str
        Columns that are never features (ids, cohort, outcomes, clinical covariates).
    explicit : list of str, optional
        The config's ``features`` list; every name must be a column.

    Raises
    ------
    ValueError
        When an explicit feature is missing or no feature column remains.
    """
    if explicit:
        missing = [c for c in explicit if c not in table]
        if missing:
            raise ValueError(f"feature column(s) {missing} named in the config's 'features' are not in the table")
        return list(explicit)
    skip = NON_FEATURE_COLUMNS | set(exclude)
    cols = [c for c in table.columns if c not in skip and pd.api.types.is_numeric_dtype(table[c])]
    if not cols:
        raise ValueError("no numeric feature column in the table; list them under 'features' in the config")
    return cols


def check_binary(y, cohort: str, min_per_class: int = 2) -> np.ndarray:
    """Return ``y`` as int array, raising when a class has fewer than ``min_per_class`` cases."""
    y = np.asarray(y, dtype=float)
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    if min(n_pos, n_neg) < min_per_class:
        raise CohortError(f"cohort {cohort}: {n_pos} positive and {n_neg} negative cases; both outcome "
                          f"classes need at least {min_per_class} cases (check outcome.positive and the cohort)")
    return y.astype(int)


def model_features(table: pd.DataFrame, config: dict, stable: list[str] | None = None) -> tuple[list[str], str]:
    """The imaging model's input columns and a sentence on how they were chosen.

    Imaging features (or the config's explicit ``features``), restricted to the stable ones when
    the reproducibility stage found any and ``reproducibility.filter_model_features`` is on, plus
    the clinical covariates when ``model.include_clinical`` is on.
    """
    clinical = list(config["clinical"])
    feats = feature_columns(table, exclude=[*outcome_columns(config), *clinical], explicit=config["features"])
    note = f"{len(feats)} features"
    if stable is not None and config["reproducibility"]["filter_model_features"]:
        kept = [f for f in feats if f in set(stable)]
        if kept:
            note = f"{len(kept)} of {len(feats)} features stable under the reproducibility criterion"
            feats = kept
        else:
            note = f"{len(feats)} features (no reproducibility filter: no repeats, or no feature met the criterion)"
    if model_settings(config)["include_clinical"]:
        feats = feats + [c for c in clinical if c not in feats]
        note += f" + {len(clinical)} clinical covariates"
    return feats, note


def model_spec(kind: str, table: pd.DataFrame, config: dict, stable: list[str] | None = None):
    """Inputs and an unfitted-model factory for one model kind.

    Returns
    -------
    features : list of str
        Input columns.
    note : str
        How the inputs were chosen.
    make : callable
        Zero-argument factory of the unfitted estimator.
    """
    if kind not in MODEL_KINDS:
        raise ValueError(f"model '{kind}' unknown; use one of {MODEL_KINDS}")
    seed, m = config["seed"], model_settings(config)
    search = dict(learners=tuple(m["learners"] or [m["learner"]]), Cs=m["Cs"], inner_folds=m["inner_folds"],
                  seed=seed, scoring=m["scoring"], selection=m["selection"], n_select=m["n_select"],
                  correlation_threshold=m["correlation_threshold"])
    harmonise = m.get("harmonisation", "none") != "none"
    if harmonise:
        # ComBat (fitted per fold) first; X then carries the site column, so every model names its columns
        search.update(harmonisation=m["harmonisation"], batch_column="cohort",
                      unseen=m.get("harmonisation_unseen", "error"))
    clinical = list(config["clinical"])
    imaging, note = model_features(table, {**config, "model": {**m, "include_clinical": False}}, stable)
    if kind == "imaging":
        if m["include_clinical"]:
            imaging, note = imaging + [c for c in clinical if c not in imaging], note + f" + {len(clinical)} clinical covariates"
        return imaging, note, lambda: build_search(**search)
    if kind == "clinical":
        plain = {k: v for k, v in search.items() if k not in ("harmonisation", "batch_column", "unseen")}
        return clinical, f"{len(clinical)} clinical covariates", lambda: build_search(
            **{**plain, "selection": "none", "columns": clinical if harmonise else None})
    both = imaging + [c for c in clinical if c not in imaging]
    if kind == "combined_early":
        return both, note + f" + {len(clinical)} clinical covariates, concatenated (early fusion)", \
            lambda: build_search(**search)
    late = {k: v for k, v in search.items() if k not in ("seed", "inner_folds")}
    return both, note + f" and {len(clinical)} clinical covariates in two models stacked (late fusion)", \
        lambda: build_late_fusion(imaging, clinical, seed=seed, inner_folds=m["inner_folds"], **late)


def training_data(table: pd.DataFrame, config: dict, stable: list[str] | None = None, kind: str | None = None):
    """The training cohorts' rows, inputs and outcome for one model kind.

    Returns
    -------
    rows : pandas.DataFrame
        Training cases of ``table``.
    X : pandas.DataFrame of shape (n_train, n_features)
    y : array of shape (n_train,), 0/1
    features : list of str
    note : str
        How the inputs were chosen.
    make : callable
        Zero-argument factory of the unfitted model.

    Raises
    ------
    CohortError
        When a class has fewer cases than the outer folds, or the rarer class fewer than
        ``model.min_events``.
    """
    kind = kind or model_settings(config)["primary"]
    rows = table[table["cohort"].isin(config["cohorts"]["train"])].reset_index(drop=True)
    y = check_binary(binary_outcome(rows[config["outcome"]["column"]], config["outcome"]["positive"]),
                     "+".join(config["cohorts"]["train"]), min_per_class=config["validation"]["cv_folds"])
    feats, note, make = model_spec(kind, table, config, stable)
    events = int(min(y.sum(), len(y) - y.sum()))
    min_events = int(model_settings(config)["min_events"])
    if events < min_events:
        raise CohortError(
            f"cohort {'+'.join(config['cohorts']['train'])}: {events} events (cases of the rarer outcome class, "
            f"{int(y.sum())} positive / {len(y) - int(y.sum())} negative) for {len(feats)} candidate features; "
            f"a model needs at least model.min_events = {min_events} (Riley et al. 2020, BMJ 368:m441). Add "
            f"training cases, pool training cohorts, or lower model.min_events knowingly (a smaller model "
            f"will overfit and its internal validation is unstable)")
    X = rows[feats].apply(pd.to_numeric, errors="coerce")
    if model_settings(config)["harmonisation"] != "none":
        X.insert(0, "cohort", rows["cohort"].astype(str).to_numpy())  # ComBat's batch column
    return rows, X, y, feats, note, make


def _augmented(X, y, augment):
    return augment(X, np.asarray(y))


class AugmentedFit:
    """An estimator whose every fit sees its training cases passed through ``augment`` first.

    ``augment(X, y) -> (X', y')`` adds synthetic cases to (or, train-synthetic-test-real, replaces)
    the cases a fit is given; predictions are those of the inner model. Internal validation fits
    it on each training fold, so synthetic cases enter training folds only, never a test fold.
    When the model is a hyper-parameter search over a pipeline (the radiomics model), the
    augmentation runs inside the search as the pipeline's first step (imbalanced-learn's
    ``FunctionSampler``, which resamples at fit only): each inner training fold is augmented from
    its own real cases, and every inner validation fold holds real cases only, so the search does
    not choose its penalty on synthetic cases (SMOTE's interpolants of a validation case's
    neighbours made that choice optimistic). After fitting, the step is removed; only the inner
    model (``model_``, the search) is frozen and saved.
    """

    def __init__(self, make, augment):
        self.make, self.augment = make, augment

    def fit(self, X, y):
        from imblearn import FunctionSampler
        from imblearn.pipeline import Pipeline as ResamplingPipeline
        from sklearn.pipeline import Pipeline

        model = self.make()
        if not (isinstance(model, GridSearchCV) and isinstance(model.estimator, Pipeline)):
            Xa, ya = self.augment(X, np.asarray(y))
            self.model_ = model.fit(Xa, ya)
            return self
        template = model.estimator
        sampler = FunctionSampler(func=_augmented, kw_args={"augment": self.augment}, validate=False)
        model.estimator = ResamplingPipeline([("augment", sampler), *template.steps])
        model.fit(X, y)
        model.estimator = template
        model.best_estimator_ = Pipeline(model.best_estimator_.steps[1:])  # fitted steps, without the sampler
        self.model_ = model
        return self

    def predict_proba(self, X):
        return self.model_.predict_proba(X)


def train(table: pd.DataFrame, config: dict, stable: list[str] | None = None, kind: str | None = None,
          augment=None, augment_note: str | None = None):
    """Train one frozen model on the training cohorts and validate it internally.

    Parameters
    ----------
    table : pandas.DataFrame
        ``features/features.tsv``: ``case_id``, ``cohort``, outcome and feature columns.
    config : dict
        The validated configuration (cohorts, outcome, model, validation, seed).
    stable : list of str, optional
        Stable features from the reproducibility stage.
    kind : str, optional
        Which model (:data:`MODEL_KINDS`); default the config's ``model.primary``.
    augment : callable ``(X, y) -> (X', y')``, optional
        Synthetic augmentation (``acceflow.study.synthetic``): applied to the training part of
        every outer fold and to the final refit, never to a test fold (:class:`AugmentedFit`);
        ``augment_note`` says what it does (model card ``synthetic``).

    Returns
    -------
    model : fitted estimator
        Refitted on all training cases.
    card : acceflow.study.card.ModelCard
        Model card (name, features, learner, hyper-parameters, cohorts, seed, coefficients, ...);
        ``model_file`` and ``model_sha256`` are set when the model is saved.
    predictions : pandas.DataFrame
        Training cases: ``case_id, outcome, probability`` (out-of-fold, averaged over repeats).
    folds : pandas.DataFrame
        Per outer fold: ``repeat, fold, n, n_events, auc``.

    Raises
    ------
    CohortError
        When the training cohorts lack either outcome class, or have fewer events (cases of the
        rarer class) than ``model.min_events``.
    """
    kind = kind or model_settings(config)["primary"]
    seed, m, v = config["seed"], model_settings(config), config["validation"]
    train_rows, X, y, feats, note, make = training_data(table, config, stable, kind)
    start = perf_counter()
    log.info("model %s: %d training cases (%d events), %d candidate features, learner(s) %s, %d inner folds",
             kind, len(y), int(np.sum(y)), len(feats), m["learners"] or m["learner"], m["inner_folds"])
    fitter = make if augment is None else (lambda: AugmentedFit(make, augment))
    oof, folds = internal_validation(X, y, fitter, v["cv_folds"], v["cv_repeats"], seed)
    log.info("model %s: internal validation done, mean fold AUC %.3f; refitting on all %d training cases",
             kind, float(np.nanmean(folds["auc"])) if len(folds) else float("nan"), len(y))
    model = make().fit(X, y) if augment is None else fitter().fit(X, y).model_
    log.info("model %s: final fit done (%s), %.1f s in all", kind, chosen_learner(model).get("estimator", "?"),
             perf_counter() - start)
    coefs, intercept = fitted_coefficients(model, feats)
    primary, _ = model_names(config)
    card = {
        "model": kind,
        "role": "primary" if kind == primary else "comparator",
        "learner": m["learners"] or m["learner"],
        "chosen": chosen_learner(model),
        "pipeline": _describe(model),
        "hyperparameters": {**{k: v for k, v in chosen_learner(model).items() if k != "estimator"},
                            "Cs_searched": list(m["Cs"]), "inner_folds": m["inner_folds"], "scoring": m["scoring"],
                            "selection": m["selection"], "n_select": m["n_select"],
                            "correlation_threshold": m["correlation_threshold"]},
        "features": feats,
        "feature_selection": note,
        "n_nonzero": int(sum(c != 0 for c in coefs.values())) if coefs else len(feats),
        "coefficients": coefs,
        "intercept": intercept,
        "coefficient_scale": "per standard deviation of the training cohort",
        "training_cohorts": list(config["cohorts"]["train"]),
        "external_cohorts": list(config["cohorts"]["external"]),
        "outcome": dict(config["outcome"]),
        "n_train": int(len(y)),
        "n_events_train": int(y.sum()),
        "events_per_candidate_feature": int(min(y.sum(), len(y) - y.sum())) / len(feats),
        "min_events": int(m.get("min_events", 10)),
        "seed": seed,
        "validation": "external" if config["cohorts"]["external"] else "internal",
        "internal_validation": (f"repeated stratified {v['cv_folds']}-fold cross-validation, {v['cv_repeats']} "
                                f"repeats, of the whole pipeline (learner and hyper-parameters chosen by inner "
                                f"{m['inner_folds']}-fold CV in each outer fold); out-of-fold probabilities "
                                f"averaged over repeats"),
        "harmonisation": {"method": m.get("harmonisation", "none"), "batch_column": "cohort",
                          "training_sites": sorted(train_rows["cohort"].astype(str).unique()),
                          "unseen": m.get("harmonisation_unseen", "error"),
                          "applied_to": "not applied (clinical covariates only)" if kind == "clinical" else "model inputs"},
        "cv_auc_mean": float(folds["auc"].mean()),
        "cv_auc_sd": float(folds["auc"].std(ddof=1)) if len(folds) > 1 else float("nan"),
        "apparent_auc": float(roc_auc_score(y, model.predict_proba(X)[:, 1])),
        "threshold": {"method": m["threshold"], "target": m["threshold_target"],
                      "value": float(decision_threshold(y, oof, m["threshold"], m["threshold_target"])),
                      "fixed_on": "out-of-fold predictions of the training cohorts"},
    }
    if augment is not None:
        card["synthetic"] = augment_note or "training cases augmented"
    predictions = pd.DataFrame({"case_id": train_rows["case_id"], "outcome": y, "probability": oof})
    return model, ModelCard.from_dict(card), predictions, folds


def _describe(model) -> list[str]:
    if isinstance(model, GridSearchCV):
        return [f"{name}: {type(step).__name__ if step != 'passthrough' else 'none'}"
                for name, step in model.best_estimator_.steps]
    return [f"{name}: {' -> '.join(_describe(est))}" for name, est in getattr(model, "named_estimators_", {}).items()] \
        + [f"stacker: {type(getattr(model, 'final_estimator_', None)).__name__}"]


def cohort_design(card: dict, table: pd.DataFrame, cohort: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows of one cohort and the design matrix a frozen model expects for them.

    Parameters
    ----------
    card : dict
        The model card (``features``; ``harmonisation`` when ComBat is in the pipeline).
    table : pandas.DataFrame
        The feature table (``case_id``, ``cohort``, feature and outcome columns).
    cohort : str
        The cohort to select.

    Returns
    -------
    rows : pandas.DataFrame, shape (n, ...)
        The cohort's rows of ``table``, index reset.
    X : pandas.DataFrame, shape (n, p) or (n, p + 1)
        The card's features as numbers (unparseable values NaN), preceded by the ComBat batch
        column (the cohort label) when the model harmonises.

    Raises
    ------
    CohortError
        When the cohort has no case in the table.
    """
    rows = table[table["cohort"] == cohort].reset_index(drop=True)
    if rows.empty:
        raise CohortError(f"cohort {cohort}: no usable case in the feature table (see ingest/qc.tsv)")
    X = rows[card["features"]].apply(pd.to_numeric, errors="coerce")
    batch = batch_column(card)
    if batch is not None:
        X.insert(0, batch, rows["cohort"].astype(str).to_numpy())
    return rows, X


def batch_column(card: dict) -> str | None:
    """Name of the ComBat batch column a frozen model expects, or None when it does not harmonise."""
    harmonisation = card.get("harmonisation") or {}
    return harmonisation["batch_column"] if harmonisation.get("method", "none") != "none" else None


def predict_cohort(model, card: dict, table: pd.DataFrame, cohort: str) -> pd.DataFrame:
    """Apply a frozen model to one cohort.

    Returns
    -------
    pandas.DataFrame
        ``case_id, outcome, probability`` for the cohort's cases.

    Raises
    ------
    CohortError
        When the cohort has no case in the table, or fewer than 2 cases of an outcome class (AUC
        with its DeLong CI and calibration are then undefined).
    """
    rows, X = cohort_design(card, table, cohort)
    y = binary_outcome(rows[card["outcome"]["column"]], card["outcome"]["positive"]).astype(int)
    n_pos = int(y.sum())
    if min(n_pos, len(y) - n_pos) < 2:
        raise CohortError(f"cohort {cohort}: {n_pos} positive and {len(y) - n_pos} negative cases (outcome.positive "
                          f"is {card['outcome']['positive']!r}); external validation needs at least 2 of each (AUC "
                          f"with DeLong CI, calibration): check outcome.positive and ingest/qc.tsv, add cases, or "
                          f"drop the cohort from cohorts.external")
    return pd.DataFrame({"case_id": rows["case_id"], "outcome": y, "probability": model.predict_proba(X)[:, 1]})
